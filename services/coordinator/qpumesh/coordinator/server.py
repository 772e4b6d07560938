"""The coordinator's gRPC service: jobs, progress streams, predictions, results, node stats.

``create_server(config)`` builds a started server (tests bind port 0) and
``serve(config)`` runs one until SIGTERM/SIGINT. Next to ``qpumesh.v1.Coordinator``
the server registers the standard health service (SERVING for "" and
"qpumesh.v1.Coordinator") and server reflection.

The servicer only translates: requests become ``JobManager`` calls and domain
exceptions become status codes, in one place (``_status_of``):

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
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from qpumesh.coordinator import convert
from qpumesh.coordinator.config import MAX_MESSAGE_BYTES, CoordinatorConfig
from qpumesh.coordinator.data import DataError
from qpumesh.coordinator.executor import Executor
from qpumesh.coordinator.jobs import JobManager, NoCheckpointError
from qpumesh.coordinator.spec import JobSpec, SpecError
from qpumesh.coordinator.store import EventRecord, JobNotFoundError, JobRecord
from qpumesh.coordinator.training import load_series
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.settings import write_port_file

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Coordinator"].full_name
_WATCH_POLL_SECONDS = 0.5
"""How long a WatchJob stream waits for an event before checking the client and the job."""

_HANDLER_EXIT_SECONDS = 5.0
"""After the grace period, how long ``stop`` waits for handler threads before closing the store."""

_T = TypeVar("_T")


class InvalidRequestError(ValueError):
    """A request field other than the spec is unusable; the message names the field."""


# --------------------------------------------------------------------------- messages


def job_to_proto(job: JobRecord, manager: JobManager, *, details: bool = True) -> pb.Job:
    """Return the ``Job`` message of ``job``; with ``details`` also its history and faults."""
    msg = pb.Job(
        id=job.id,
        spec=convert.spec_to_proto(job.spec),
        state=convert.state_to_proto(job.state),
        epochs_done=job.epochs_done,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error=job.error,
        final_test_r2=job.final_test_r2,
        convergence_epoch=job.convergence_epoch,
        nodes=[convert.node_stats_to_proto(n) for n in job.nodes],
    )
    if details:
        msg.history.extend(convert.epoch_metrics_to_proto(m) for m in manager.store.epochs(job.id))
        msg.faults.extend(convert.fault_to_proto(f) for f in manager.store.faults(job.id))
    return msg


def event_to_proto(event: EventRecord) -> pb.JobEvent:
    """Return the ``JobEvent`` message of a stored event."""
    msg = pb.JobEvent(job_id=event.job_id, seq=event.seq, time=event.time)
    payload = event.payload
    if event.kind == "epoch":
        msg.epoch.CopyFrom(convert.epoch_metrics_to_proto(payload["metrics"]))
        msg.nodes.extend(convert.node_stats_to_proto(n) for n in payload.get("nodes", ()))
    elif event.kind == "state":
        msg.state = convert.state_to_proto(str(payload["state"]))
    elif event.kind == "fault":
        msg.fault.CopyFrom(convert.fault_to_proto(payload))
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
        """Run a handler body, turning errors into status codes (see ``_fail``).

        Any failure while the coordinator shuts down is UNAVAILABLE: the client
        should try again once it is back, whatever broke on the way down.
        """
        try:
            return run()
        except Exception as error:
            if self.stopping.is_set():
                _abort(context, grpc.StatusCode.UNAVAILABLE, "coordinator shutting down; try again later")
            _fail(method, context, error)

    def SubmitJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.SubmitJobRequest, context: grpc.ServicerContext
    ) -> pb.SubmitJobResponse:
        """Validate the spec and queue the job."""

        def run() -> pb.SubmitJobResponse:
            spec = convert.spec_from_proto(request.spec)
            if spec.task == "csv":
                _check_csv(spec)
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
        store = self.manager.store
        job_id = request.job_id
        self._answer("WatchJob", context, lambda: store.get_job(job_id))
        after = request.after_seq
        while context.is_active():
            if self.stopping.is_set():
                # UNAVAILABLE tells a client to watch again (from its last seq) once we are back.
                _abort(context, grpc.StatusCode.UNAVAILABLE, "coordinator shutting down; watch again later")
            events = self._answer(
                "WatchJob", context, partial(store.wait_for_events, job_id, after, _WATCH_POLL_SECONDS)
            )
            for event in events:
                yield event_to_proto(event)
                after = event.seq
            if not events or events[-1].kind == "state":
                job = self._answer("WatchJob", context, lambda: store.get_job(job_id))
                if job.final and not self._answer("WatchJob", context, partial(store.events, job_id, after)):
                    return

    def GetJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.GetJobRequest, context: grpc.ServicerContext
    ) -> pb.Job:
        """Return the job with its history, last node stats and faults."""
        return self._answer(
            "GetJob", context, lambda: job_to_proto(self.manager.store.get_job(request.job_id), self.manager)
        )

    def ListJobs(  # noqa: N802 (name fixed by the proto)
        self, request: pb.ListJobsRequest, context: grpc.ServicerContext
    ) -> pb.ListJobsResponse:
        """Return jobs newest first, optionally of one state, at most ``limit``."""

        def run() -> pb.ListJobsResponse:
            try:
                state = convert.state_from_proto(request.state)
            except ValueError as error:
                raise InvalidRequestError(str(error)) from None
            jobs = self.manager.store.list_jobs(state, request.limit)
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
            job = self.manager.store.get_job(request.job_id)
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
            lambda: pb.ListNodesResponse(
                nodes=[convert.node_stats_to_proto(n) for n in self.manager.node_stats()]
            ),
        )


def _check_csv(spec: JobSpec) -> None:
    """Load a CSV task's series now, so a bad file is refused at submission, naming the field."""
    try:
        series = load_series(spec)
    except DataError as error:
        field = "csv_column" if "column" in str(error) else "csv_path"
        raise SpecError(field, str(error)) from None
    if len(series) < spec.window + 3:
        needed = spec.window + 3
        raise SpecError("csv_path", f"{len(series)} values; window {spec.window} needs at least {needed}")


def _status_of(error: Exception) -> grpc.StatusCode | None:
    """Return the status code of an expected error; None for a bug (INTERNAL)."""
    from qpumesh.coordinator.pool import MeshError

    if isinstance(error, SpecError | InvalidRequestError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, JobNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, NoCheckpointError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, MeshError):
        return grpc.StatusCode.UNAVAILABLE
    return None


def _fail(method: str, context: grpc.ServicerContext, error: Exception) -> NoReturn:
    """Abort the call with the status of a domain error, or INTERNAL (logged) for a bug."""
    code = _status_of(error)
    if code is None:
        logger.error("%s failed", method, exc_info=error)
        message = f"{method}: internal error: {type(error).__name__}: {error}"
        _abort(context, grpc.StatusCode.INTERNAL, message)
    _abort(context, code, str(error))


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("grpc.ServicerContext.abort returned")  # abort always raises


# --------------------------------------------------------------------------- server


class CoordinatorServer(grpc.Server):  # type: ignore[misc]
    """A started coordinator: the gRPC server plus the job manager it serves.

    It is a ``grpc.Server`` whose ``stop`` also turns health NOT_SERVING, ends
    WatchJob streams and stops the job manager (a running job goes back to
    QUEUED and resumes on the next start).
    """

    def __init__(
        self, server: grpc.Server, manager: JobManager, health_servicer: health.HealthServicer
    ) -> None:
        self.server = server
        self.manager = manager
        self.health = health_servicer
        self.stopping = threading.Event()
        self._stopped = False
        self._stop_lock = threading.Lock()

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        """Delegate to the wrapped server."""
        self.server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        """Delegate to the wrapped server."""
        add: Callable[[str, Any], None] = getattr(self.server, "add_registered_method_handlers")  # noqa: B009
        add(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        """Delegate to the wrapped server."""
        return int(self.server.add_insecure_port(address))

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        """Delegate to the wrapped server."""
        return int(self.server.add_secure_port(address, server_credentials))

    def start(self) -> None:
        """Delegate to the wrapped server (already started by ``create_server``)."""
        self.server.start()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Delegate to the wrapped server."""
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
            self.manager.store.wake_waiters()
        done: threading.Event = self.server.stop(grace)
        if first:
            self.manager.stop()
            if not done.wait((grace or 0.0) + _HANDLER_EXIT_SECONDS):
                logger.warning("gRPC handlers still running after the grace period")
            self.manager.close()
        return done


def create_server(
    config: CoordinatorConfig, port: int | None = None, *, executor: Executor | None = None
) -> tuple[CoordinatorServer, int]:
    """Build, bind and start a coordinator and its job manager.

    Args:
        config: data directory, nodes and server settings.
        port: overrides ``config.port`` when given (0 binds a free port).
        executor: run circuits on this executor instead of the configured one (tests).

    Returns:
        The started server (stop it with ``server.stop(grace)``, which also stops
        the job manager) and the bound port.

    Raises:
        OSError: when the address cannot be bound.
    """
    bind = f"{config.host}:{config.port if port is None else port}"
    manager = JobManager(config, executor=executor)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="qpumesh-coordinator"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.HealthServicer()
    wrapper = CoordinatorServer(server, manager, health_servicer)
    servicer = CoordinatorServicer(manager, wrapper.stopping)
    pb_grpc.add_CoordinatorServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        bound = server.add_insecure_port(bind)
    except RuntimeError as error:
        manager.stop()
        raise OSError(f"cannot listen on {bind}: {error}") from error
    if bound == 0:
        manager.stop()
        raise OSError(f"cannot listen on {bind}")
    manager.start()
    server.start()
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return wrapper, bound


def serve(config: CoordinatorConfig, *, port_file: Path | None = None) -> None:
    """Run the coordinator until SIGTERM or SIGINT, then shut it down gracefully.

    On a signal the health status turns NOT_SERVING, WatchJob streams end,
    in-flight calls get ``config.grace_seconds``, and the running job stops at its
    next round and is re-queued (it resumes from its last checkpoint on the next
    start). Must run in the main thread (signal handlers).

    Args:
        config: the coordinator's settings.
        port_file: if given, the bound port is written there (atomically) once serving.
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
            config.host, port, config.data_dir, placement,
        )
        if port_file is not None:
            write_port_file(port_file, port)
        stop.wait()
        server.stop(config.grace_seconds).wait()
        logger.info("coordinator stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
