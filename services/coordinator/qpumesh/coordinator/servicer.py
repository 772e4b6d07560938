"""``CoordinatorServicer``: the ``qpumesh.v1.Coordinator`` methods on the asyncio server.

Unary handlers run their (blocking: SQLite, torch) bodies on the server's handler
threads (``_call``); a WatchJob stream is a coroutine waiting for its job's next event
(``qpumesh.coordinator.watch``), bounded by ``config.max_streams``. A caller sees,
cancels and deletes only the jobs it owns unless its role is admin
(``qpumesh.coordinator.auth``); someone else's job is NOT_FOUND, exactly like a job
that does not exist.

The servicer only translates: requests become ``JobManager`` calls and domain
exceptions become status codes, in one place (``STATUSES``, applied by
``qpumesh.wire.status.answer_async``):

==========================  =====================
``SpecError``, bad request  INVALID_ARGUMENT (message names the field and the bound)
unknown (or others') job    NOT_FOUND
no checkpoint yet, or a     FAILED_PRECONDITION
job still running (delete)
mesh unreachable            UNAVAILABLE
anything else               INTERNAL (and logged with its traceback)
==========================  =====================
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import grpc
import numpy as np

from qpumesh.coordinator.auth import Principal, current_principal
from qpumesh.coordinator.config import CoordinatorConfig
from qpumesh.coordinator.custom_ansatz import custom_ansatz, parse_circuits
from qpumesh.coordinator.data import DataError, make_dataset
from qpumesh.coordinator.data_root import DataFileError, read_data_file
from qpumesh.coordinator.jobs import JobActiveError, JobManager
from qpumesh.coordinator.messages import event_to_proto, job_to_proto, page_cursor, page_token
from qpumesh.coordinator.planner import plan_partitions
from qpumesh.coordinator.predictions import NoCheckpointError
from qpumesh.coordinator.store import JobNotFoundError, JobRecord
from qpumesh.coordinator.watch import JobChanges, StreamLimit
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.errors import MeshError
from qpumesh.wire.job_spec import INPUT_DIM, JobSpec, SpecError, spec_from_proto
from qpumesh.wire.job_state import JobState
from qpumesh.wire.series import MAX_SERIES_POINTS
from qpumesh.wire.status import StatusMap, answer_async

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_JOB_ID_CHARS = 64

_T = TypeVar("_T")

_MAX_SEQ = 2**63 - 1
"""The largest event sequence number the job store can hold (SQLite INTEGER)."""


class InvalidRequestError(ValueError):
    """A request field other than the spec is unusable; the message names the field."""


STATUSES = StatusMap(
    ((SpecError, InvalidRequestError), grpc.StatusCode.INVALID_ARGUMENT),
    (JobNotFoundError, grpc.StatusCode.NOT_FOUND),
    ((NoCheckpointError, JobActiveError), grpc.StatusCode.FAILED_PRECONDITION),
    (MeshError, grpc.StatusCode.UNAVAILABLE),
)
"""The coordinator's domain errors and their status codes; anything else is INTERNAL."""


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it can name a job.

    Raises:
        InvalidRequestError: it is empty or longer than ``MAX_JOB_ID_CHARS``.
    """
    if not job_id:
        raise InvalidRequestError("job_id: required")
    if len(job_id) > MAX_JOB_ID_CHARS:
        raise InvalidRequestError(f"job_id: {len(job_id)} characters; at most {MAX_JOB_ID_CHARS}")
    return job_id


# --------------------------------------------------------------------------- servicer


class CoordinatorServicer(pb_grpc.CoordinatorServicer):  # type: ignore[misc]
    """``qpumesh.v1.Coordinator`` over a ``JobManager``, on an asyncio server.

    Args:
        manager: the job runner (started by the caller).
        config: data root and stream bound.
        stopping: set when the server shuts down, so streams end and calls answer UNAVAILABLE.
        handlers: the threads blocking handler bodies run on.
        changes: wakes streams when their job gets events.
    """

    def __init__(
        self,
        manager: JobManager,
        config: CoordinatorConfig,
        stopping: threading.Event,
        handlers: ThreadPoolExecutor,
        changes: JobChanges,
    ) -> None:
        self.manager = manager
        self.config = config
        self.stopping = stopping
        self.handlers = handlers
        self.changes = changes
        self.streams = StreamLimit(config.max_streams)

    async def _call(self, method: str, context: Any, body: Callable[[], _T]) -> _T:
        """Run a blocking handler body on a handler thread; errors become statuses (``STATUSES``)."""
        loop = asyncio.get_running_loop()
        return await answer_async(
            method,
            context,
            lambda: loop.run_in_executor(self.handlers, body),
            STATUSES,
            stopping=self.stopping,
        )

    def _visible(self, principal: Principal, job_id: str) -> JobRecord:
        """Return the job if ``principal`` may see it; someone else's job is "not found"."""
        job = self.manager.job(check_job_id(job_id))
        if not principal.may_access(job.owner):
            raise JobNotFoundError(job_id)
        return job

    async def SubmitJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.SubmitJobRequest, context: Any
    ) -> pb.SubmitJobResponse:
        """Validate the spec (reading a data-root file into its series) and queue the job."""
        principal = current_principal()

        def run() -> pb.SubmitJobResponse:
            spec = self._with_series(spec_from_proto(request.spec))
            if spec.ansatz == "custom":
                _check_custom(spec)
            return pb.SubmitJobResponse(job_id=self.manager.submit(spec, principal.name).id)

        return await self._call("SubmitJob", context, run)

    def _with_series(self, spec: JobSpec) -> JobSpec:
        """Fill a "csv" spec's series from its ``csv_path`` under the data root, and check the data."""
        if spec.task != "csv":
            return spec
        if not spec.series:
            try:
                values = read_data_file(self.config.data_root, spec.csv_path, spec.csv_column)
            except DataFileError as error:
                field = "csv_column" if "column" in str(error) else "csv_path"
                raise SpecError(field, str(error)) from None
            if len(values) < spec.window + 3:
                raise SpecError(
                    "csv_path", f"{len(values)} values; window {spec.window} needs at least {spec.window + 3}"
                )
            spec = JobSpec.from_dict(spec.to_dict() | {"series": values})
        try:
            make_dataset(np.asarray(spec.series), spec.window, spec.train_fraction)
        except DataError as error:
            raise SpecError("series", str(error)) from None
        return spec

    async def WatchJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.WatchJobRequest, context: Any
    ) -> AsyncIterator[pb.JobEvent]:
        """Replay the job's events after ``after_seq``, then stream new ones until it is final.

        The stream ends (OK) after the event that put the job in a final state. A
        coordinator shutting down ends open streams with UNAVAILABLE; the client
        watches again with the last ``seq`` it saw and misses nothing.
        """
        principal = current_principal()
        job_id = request.job_id
        manager = self.manager
        await self._call("WatchJob", context, lambda: self._visible(principal, job_id))
        if not self.streams.acquire():
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.streams.limit} WatchJob streams are open, the most this coordinator serves "
                "(--max-streams, QPUMESH_MAX_STREAMS); close one or watch again later",
            )
        try:
            after = min(request.after_seq, _MAX_SEQ)  # no event has a larger seq (SQLite INTEGER)
            while True:
                if self.stopping.is_set():
                    # UNAVAILABLE tells a client to watch again (from its last seq) once we are back.
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, "coordinator shutting down; watch again later"
                    )
                with self.changes.waiter(job_id) as changed:
                    events = await self._call("WatchJob", context, partial(manager.events, job_id, after))
                    for event in events:
                        yield event_to_proto(event)
                        after = event.seq
                    if not events or events[-1].kind == "state":
                        job = await self._call("WatchJob", context, partial(manager.job, job_id))
                        if job.final and not await self._call(
                            "WatchJob", context, partial(manager.events, job_id, after)
                        ):
                            return
                    if not events:
                        await self.changes.wait(changed)
        finally:
            self.streams.release()

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.Job:  # noqa: N802
        """Return the job with its history, last node stats and faults."""
        principal = current_principal()

        def run() -> pb.Job:
            return job_to_proto(self._visible(principal, request.job_id), self.manager)

        return await self._call("GetJob", context, run)

    async def ListJobs(  # noqa: N802 (name fixed by the proto)
        self, request: pb.ListJobsRequest, context: Any
    ) -> pb.ListJobsResponse:
        """Return one page of the caller's jobs (everyone's for admins), newest first."""
        principal = current_principal()

        def run() -> pb.ListJobsResponse:
            try:
                state = JobState.from_proto(request.state)
            except ValueError as error:
                raise InvalidRequestError(str(error)) from None
            size = request.page_size or DEFAULT_PAGE_SIZE
            if size > MAX_PAGE_SIZE:
                raise InvalidRequestError(f"page_size: {size}; at most {MAX_PAGE_SIZE}")
            try:
                cursor = page_cursor(request.page_token)
                owner = None if principal.is_admin else principal.name
                jobs, after = self.manager.page(state, owner, size, cursor)
            except ValueError as error:
                raise InvalidRequestError(f"page_token: {error}") from None
            return pb.ListJobsResponse(
                jobs=[job_to_proto(job, self.manager, details=False) for job in jobs],
                next_page_token=page_token(after),
            )

        return await self._call("ListJobs", context, run)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Any) -> pb.Job:  # noqa: N802
        """Cancel the job (waits briefly for a running one to stop) and return it."""
        principal = current_principal()
        wait = 10.0
        remaining = context.time_remaining()
        if remaining is not None:
            wait = max(0.0, min(wait, remaining - 0.5))

        def run() -> pb.Job:
            job = self._visible(principal, request.job_id)
            return job_to_proto(self.manager.cancel(job.id, wait_seconds=wait), self.manager)

        return await self._call("CancelJob", context, run)

    async def DeleteJob(  # noqa: N802 (name fixed by the proto)
        self, request: pb.DeleteJobRequest, context: Any
    ) -> pb.DeleteJobResponse:
        """Delete a final job of the caller (any job for admins): rows, events, checkpoints."""
        principal = current_principal()

        def run() -> pb.DeleteJobResponse:
            job = self._visible(principal, request.job_id)
            self.manager.delete(job.id)
            logger.info("job %s deleted by %s", job.id, principal.name or "anonymous")
            return pb.DeleteJobResponse()

        return await self._call("DeleteJob", context, run)

    async def Predict(  # noqa: N802 (name fixed by the proto)
        self, request: pb.PredictRequest, context: Any
    ) -> pb.PredictResponse:
        """Predict with the job's best checkpoint (lowest training loss)."""
        principal = current_principal()

        def run() -> pb.PredictResponse:
            job = self._visible(principal, request.job_id)
            series = list(request.series)
            if len(series) > MAX_SERIES_POINTS:
                raise InvalidRequestError(f"series: {len(series)} values; at most {MAX_SERIES_POINTS}")
            if len(series) < job.spec.window:
                raise InvalidRequestError(
                    f"series: needs at least window={job.spec.window} values, got {len(series)}"
                )
            try:
                predictions, epoch = self.manager.predict(job.id, series)
            except ValueError as error:
                raise InvalidRequestError(f"series: {error}") from None
            return pb.PredictResponse(predictions=predictions.tolist(), epoch=epoch)

        return await self._call("Predict", context, run)

    async def GetResults(  # noqa: N802 (name fixed by the proto)
        self, request: pb.GetResultsRequest, context: Any
    ) -> pb.GetResultsResponse:
        """Return the job and its best model's predictions over every window (none before epoch 1)."""
        principal = current_principal()

        def run() -> pb.GetResultsResponse:
            job = self._visible(principal, request.job_id)
            job, predictions = self.manager.results(job.id)
            response = pb.GetResultsResponse(job=job_to_proto(job, self.manager))
            if predictions is not None:
                response.targets.extend(predictions["target"].tolist())
                response.predictions.extend(predictions["prediction"].tolist())
                response.train_size = int(predictions["split"])
            return response

        return await self._call("GetResults", context, run)

    async def ListNodes(  # noqa: N802 (name fixed by the proto)
        self, request: pb.ListNodesRequest, context: Any
    ) -> pb.ListNodesResponse:
        """Return the node pool's view of every node."""
        return await self._call(
            "ListNodes", context, lambda: pb.ListNodesResponse(nodes=self.manager.node_stats())
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
