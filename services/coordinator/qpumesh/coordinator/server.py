"""The coordinator's gRPC service: jobs, progress streams, predictions, results, node stats.

``create_server(config)`` builds a started server (tests bind port 0) and
``serve(config)`` runs one until SIGTERM/SIGINT. Next to ``qpumesh.v1.Coordinator``
the server registers the standard health service (SERVING for "" and
"qpumesh.v1.Coordinator") and server reflection.

The servicer only translates: requests become ``JobManager`` calls and domain
exceptions become status codes, in one place (``STATUSES``, applied by
``qpumesh.wire.status.answer``, which the node uses too):

==========================  =====================
``SpecError``, bad series   INVALID_ARGUMENT (message names the field)
unknown job                 NOT_FOUND
no checkpoint yet           FAILED_PRECONDITION
mesh unreachable            UNAVAILABLE
anything else               INTERNAL (and logged with its traceback)
==========================  =====================
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from functools import partial
from types import FrameType
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from qpumesh.coordinator.config import MAX_MESSAGE_BYTES, CoordinatorConfig
from qpumesh.coordinator.custom_ansatz import custom_ansatz, parse_circuits
from qpumesh.coordinator.data import DataError
from qpumesh.coordinator.executor import Executor
from qpumesh.coordinator.jobs import JobManager
from qpumesh.coordinator.monitoring import CoordinatorMetrics, MeshCollector
from qpumesh.coordinator.planner import plan_partitions
from qpumesh.coordinator.predictions import NoCheckpointError
from qpumesh.coordinator.store import EventRecord, JobNotFoundError, JobRecord
from qpumesh.coordinator.training import load_series
from qpumesh.coordinator.web.http_server import AccessPolicy, DashboardServer
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.channels import bind, listen_address, server_options
from qpumesh.wire.errors import MeshError
from qpumesh.wire.handlers import add_servicer
from qpumesh.wire.job_spec import INPUT_DIM, JobSpec, SpecError, spec_from_proto, spec_to_proto
from qpumesh.wire.job_state import JobState
from qpumesh.wire.port_file import write_port_file
from qpumesh.wire.records import from_record
from qpumesh.wire.reflection import enable_reflection
from qpumesh.wire.server_telemetry import ServerTelemetry
from qpumesh.wire.status import StatusMap, abort, answer

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Coordinator"].full_name
_WATCH_POLL_SECONDS = 0.5
"""How long a WatchJob stream waits for an event before checking the client and the job."""

_MAX_SEQ = 2**63 - 1
"""The largest event sequence number the job store can hold (SQLite INTEGER)."""

_HANDLER_EXIT_SECONDS = 5.0
"""After the grace period, how long ``stop`` waits for handler threads before closing the store."""

_T = TypeVar("_T")


class InvalidRequestError(ValueError):
    """A request field other than the spec is unusable; the message names the field."""


STATUSES = StatusMap(
    ((SpecError, InvalidRequestError), grpc.StatusCode.INVALID_ARGUMENT),
    (JobNotFoundError, grpc.StatusCode.NOT_FOUND),
    (NoCheckpointError, grpc.StatusCode.FAILED_PRECONDITION),
    (MeshError, grpc.StatusCode.UNAVAILABLE),
)
"""The coordinator's domain errors and their status codes; anything else is INTERNAL."""


# --------------------------------------------------------------------------- messages


def job_to_proto(job: JobRecord, manager: JobManager, *, details: bool = True) -> pb.Job:
    """Return the ``Job`` message of ``job``; with ``details`` also its history and faults."""
    msg = pb.Job(
        id=job.id,
        spec=spec_to_proto(job.spec),
        state=job.state.to_proto(),
        epochs_done=job.epochs_done,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error=job.error,
        final_test_r2=job.final_test_r2,
        convergence_epoch=job.convergence_epoch,
        nodes=[from_record(pb.NodeStats, n) for n in job.nodes],
    )
    if details:
        msg.history.extend(from_record(pb.EpochMetrics, m) for m in manager.history(job.id))
        msg.faults.extend(from_record(pb.FaultEvent, f) for f in manager.faults(job.id))
    return msg


def event_to_proto(event: EventRecord) -> pb.JobEvent:
    """Return the ``JobEvent`` message of a stored event."""
    msg = pb.JobEvent(job_id=event.job_id, seq=event.seq, time=event.time)
    payload = event.payload
    if event.kind == "epoch":
        msg.epoch.CopyFrom(from_record(pb.EpochMetrics, payload["metrics"]))
        msg.nodes.extend(from_record(pb.NodeStats, n) for n in payload.get("nodes", ()))
    elif event.kind == "state":
        msg.state = JobState.parse(str(payload["state"])).to_proto()
    elif event.kind == "fault":
        msg.fault.CopyFrom(from_record(pb.FaultEvent, payload))
    else:
        msg.log = str(payload.get("message", ""))
    return msg


# --------------------------------------------------------------------------- servicer


class CoordinatorServicer(pb_grpc.CoordinatorServicer):  # type: ignore[misc]
    """``qpumesh.v1.Coordinator`` over a ``JobManager``.

    Args:
        manager: the job runner (started by the caller).
        stopping: set when the server shuts down, so WatchJob streams end.
    """

    def __init__(self, manager: JobManager, stopping: threading.Event) -> None:
        self.manager = manager
        self.stopping = stopping

    def _answer(self, method: str, context: grpc.ServicerContext, run: Callable[[], _T]) -> _T:
        """Run a handler body, turning errors into status codes (``STATUSES``).

        Any failure while the coordinator shuts down is UNAVAILABLE: the client
        should try again once it is back, whatever broke on the way down.
        """
        return answer(method, context, run, STATUSES, stopping=self.stopping)

    def SubmitJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.SubmitJobRequest, context: grpc.ServicerContext
    ) -> pb.SubmitJobResponse:
        """Validate the spec and queue the job."""

        def run() -> pb.SubmitJobResponse:
            spec = spec_from_proto(request.spec)
            if spec.task == "csv":
                _check_csv(spec)
            if spec.ansatz == "custom":
                _check_custom(spec)
            return pb.SubmitJobResponse(job_id=self.manager.submit(spec).id)

        return self._answer("SubmitJob", context, run)

    def WatchJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.JobEvent]:
        """Replay the job's events after ``after_seq``, then stream new ones until it is final.

        The stream ends (OK) after the event that put the job in a final state. A
        coordinator shutting down ends open streams with UNAVAILABLE; the client
        watches again with the last ``seq`` it saw and misses nothing.
        """
        manager = self.manager
        job_id = request.job_id
        self._answer("WatchJob", context, lambda: manager.job(job_id))
        after = min(request.after_seq, _MAX_SEQ)  # no event has a larger seq; SQLite's INTEGER ends there
        while context.is_active():
            if self.stopping.is_set():
                # UNAVAILABLE tells a client to watch again (from its last seq) once we are back.
                abort(context, grpc.StatusCode.UNAVAILABLE, "coordinator shutting down; watch again later")
            events = self._answer(
                "WatchJob", context, partial(manager.wait_for_events, job_id, after, _WATCH_POLL_SECONDS)
            )
            for event in events:
                yield event_to_proto(event)
                after = event.seq
            if not events or events[-1].kind == "state":
                job = self._answer("WatchJob", context, lambda: manager.job(job_id))
                if job.final and not self._answer(
                    "WatchJob", context, partial(manager.events, job_id, after)
                ):
                    return

    def GetJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.GetJobRequest, context: grpc.ServicerContext
    ) -> pb.Job:
        """Return the job with its history, last node stats and faults."""
        return self._answer(
            "GetJob", context, lambda: job_to_proto(self.manager.job(request.job_id), self.manager)
        )

    def ListJobs(  # noqa: N802 (name fixed by the proto)
        self, request: pb.ListJobsRequest, context: grpc.ServicerContext
    ) -> pb.ListJobsResponse:
        """Return jobs newest first, optionally of one state, at most ``limit``."""

        def run() -> pb.ListJobsResponse:
            try:
                state = JobState.from_proto(request.state)
            except ValueError as error:
                raise InvalidRequestError(str(error)) from None
            jobs = self.manager.jobs(state, request.limit)
            return pb.ListJobsResponse(jobs=[job_to_proto(job, self.manager) for job in jobs])

        return self._answer("ListJobs", context, run)

    def CancelJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.CancelJobRequest, context: grpc.ServicerContext
    ) -> pb.Job:
        """Cancel the job (waits briefly for a running one to stop) and return it."""
        wait = 10.0
        remaining = context.time_remaining()
        if remaining is not None:
            wait = max(0.0, min(wait, remaining - 0.5))
        return self._answer(
            "CancelJob",
            context,
            lambda: job_to_proto(self.manager.cancel(request.job_id, wait_seconds=wait), self.manager),
        )

    def Predict(  # noqa: N802 (name fixed by the proto)
        self, request: pb.PredictRequest, context: grpc.ServicerContext
    ) -> pb.PredictResponse:
        """Predict with the job's best checkpoint (lowest training loss)."""

        def run() -> pb.PredictResponse:
            job = self.manager.job(request.job_id)
            series = list(request.series)
            if len(series) < job.spec.window:
                raise InvalidRequestError(
                    f"series: needs at least window={job.spec.window} values, got {len(series)}"
                )
            try:
                predictions, epoch = self.manager.predict(request.job_id, series)
            except ValueError as error:
                raise InvalidRequestError(f"series: {error}") from None
            return pb.PredictResponse(predictions=predictions.tolist(), epoch=epoch)

        return self._answer("Predict", context, run)

    def GetResults(  # noqa: N802 (name fixed by the proto)
        self, request: pb.GetResultsRequest, context: grpc.ServicerContext
    ) -> pb.GetResultsResponse:
        """Return the job and its best model's predictions over every window (none before epoch 1)."""

        def run() -> pb.GetResultsResponse:
            job, predictions = self.manager.results(request.job_id)
            response = pb.GetResultsResponse(job=job_to_proto(job, self.manager))
            if predictions is not None:
                response.targets.extend(predictions["target"].tolist())
                response.predictions.extend(predictions["prediction"].tolist())
                response.train_size = int(predictions["split"])
            return response

        return self._answer("GetResults", context, run)

    def ListNodes(  # noqa: N802 (name fixed by the proto)
        self, request: pb.ListNodesRequest, context: grpc.ServicerContext
    ) -> pb.ListNodesResponse:
        """Return the node pool's view of every node."""
        return self._answer(
            "ListNodes",
            context,
            lambda: pb.ListNodesResponse(nodes=self.manager.node_stats()),
        )


def _check_custom(spec: JobSpec) -> None:
    """Check a custom ansatz now: its JSON and symbols, and a circuit for every width of the plan.

    The plan is the one for nodes of any size; a mesh of small nodes may split the model
    further, which the job then reports when it starts.
    """
    circuits = parse_circuits(spec.ansatz_circuit)
    partitions = 1 if spec.model == "centric" else spec.partitions
    try:
        plan = plan_partitions(INPUT_DIM, spec.hidden_size, partitions, ())
    except ValueError:
        return  # the job reports the planner's own error when it starts
    for qubits, outputs in zip(plan.input_sizes, plan.output_sizes, strict=True):
        custom_ansatz(circuits, qubits, outputs)


def _check_csv(spec: JobSpec) -> None:
    """Load a CSV task's series now, so a bad file is refused at submission, naming the field."""
    try:
        series = load_series(spec)
    except DataError as error:
        field = "csv_column" if "column" in str(error) else "csv_path"
        raise SpecError(field, str(error)) from None
    except (OSError, ValueError) as error:  # a path the OS refuses: too long, a NUL byte...
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not a usable path"
        raise SpecError("csv_path", f"cannot read the file: {reason}") from None
    if len(series) < spec.window + 3:
        needed = spec.window + 3
        raise SpecError("csv_path", f"{len(series)} values; window {spec.window} needs at least {needed}")


# --------------------------------------------------------------------------- server


class CoordinatorServer:
    """A started coordinator: the gRPC server plus the job manager it serves.

    ``stop`` stops both: health turns NOT_SERVING, WatchJob streams end, and the job
    manager stops (a running job goes back to QUEUED and resumes on the next start).

    Attributes:
        server: the started gRPC server.
        manager: the job runner.
        health: the health servicer.
        registry: the coordinator's Prometheus metrics.
        http: the dashboard and ``/metrics`` server (None without ``http_port``).
        stopping: set once ``stop`` was called (handlers answer UNAVAILABLE from then on).
    """

    def __init__(
        self,
        server: grpc.Server,
        manager: JobManager,
        health_servicer: health.HealthServicer,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.server = server
        self.manager = manager
        self.health = health_servicer
        self.registry = registry or CollectorRegistry()
        self.http: DashboardServer | None = None
        self.stopping = threading.Event()
        self._stopped = False
        self._stop_lock = threading.Lock()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` passes); True if it stopped."""
        return bool(self.server.wait_for_termination(timeout))

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop serving and stop the job manager; returns once both are down.

        Order matters: health turns NOT_SERVING and open WatchJob streams are woken
        so they end with UNAVAILABLE; the gRPC server stops (in-flight calls get
        ``grace`` seconds); the running job is interrupted and re-queued; only when
        no handler can use it any more is the job store closed.
        """
        with self._stop_lock:
            first = not self._stopped
            self._stopped = True
        if first:
            self.health.enter_graceful_shutdown()
            self.stopping.set()
            self.manager.wake_watchers()
        done: threading.Event = self.server.stop(grace)
        if first:
            if self.http is not None:
                self.http.stop()
            self.manager.stop()
            if not done.wait((grace or 0.0) + _HANDLER_EXIT_SECONDS):
                logger.warning("gRPC handlers still running after the grace period")
            self.manager.close()
        return done


def create_server(
    config: CoordinatorConfig,
    port: int | None = None,
    *,
    executor: Executor | None = None,
    http_policy: AccessPolicy | None = None,
) -> tuple[CoordinatorServer, int]:
    """Build, bind and start a coordinator and its job manager (and HTTP side with ``http_port``).

    Args:
        config: data directory, nodes and server settings.
        port: overrides ``config.port`` when given (0 binds a free port).
        executor: run circuits on this executor instead of the configured one (tests).
        http_policy: who may use the HTTP side (default: everybody reads; see
            ``web.http_server.AccessPolicy``).

    Returns:
        The started server (stop it with ``server.stop(grace)``, which also stops
        the job manager) and the bound port.

    Raises:
        OSError: when the address cannot be bound.
    """
    address = listen_address(config.host, config.port if port is None else port)
    registry = CollectorRegistry()
    manager = JobManager(config, executor=executor, metrics=CoordinatorMetrics(registry))
    registry.register(MeshCollector(manager))
    registry.register(ProcessCollector(registry=None))
    registry.register(PlatformCollector(registry=None))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="qpumesh-coordinator"),
        interceptors=[ServerTelemetry(registry)],
        options=server_options(MAX_MESSAGE_BYTES),
    )
    health_servicer = health.HealthServicer()
    wrapper = CoordinatorServer(server, manager, health_servicer, registry)
    servicer = CoordinatorServicer(manager, wrapper.stopping)
    # Requests are decoded in the handlers: bytes that are no message get INVALID_ARGUMENT.
    add_servicer(server, servicer, pb.DESCRIPTOR.services_by_name["Coordinator"])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection((SERVICE_NAME, health.SERVICE_NAME), server)
    try:
        bound = bind(server, address)
        if config.http_port is not None:
            wrapper.http = DashboardServer(manager, registry, config.host, config.http_port, http_policy)
    except OSError:
        server.stop(None)
        manager.stop()
        raise
    manager.start()
    server.start()
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return wrapper, bound


def serve(config: CoordinatorConfig) -> None:
    """Run the coordinator until SIGTERM or SIGINT, then shut it down gracefully.

    On a signal the health status turns NOT_SERVING, WatchJob streams end,
    in-flight calls get ``config.grace_seconds``, and the running job stops at its
    next round and is re-queued (it resumes from its last checkpoint on the next
    start). Must run in the main thread (signal handlers).

    Args:
        config: the coordinator's settings (``config.port_file``: where to write the bound port).
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server, port = create_server(config)
        placement = "in process" if config.in_process else f"on nodes {config.nodes}"
        logger.info(
            "coordinator serving on %s:%d (data dir %s, circuits %s)",
            config.host,
            port,
            config.data_dir,
            placement,
        )
        if server.http is not None:
            logger.info("dashboard on http://%s:%d/ (metrics at /metrics)", config.host, server.http.port)
            if config.http_port_file is not None:
                write_port_file(config.http_port_file, server.http.port)
        if config.port_file is not None:
            write_port_file(config.port_file, port)
        stop.wait()
        server.stop(config.grace_seconds).wait()
        logger.info("coordinator stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
