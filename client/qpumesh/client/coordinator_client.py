"""A blocking Python client for the coordinator's ``qpumesh.v1.Coordinator`` service.

``CoordinatorClient`` wraps the generated stub so that callers deal in plain values
(``JobSpec``, numpy arrays, job ids) and one exception type: every failed call
raises ``QpuMeshError`` carrying the gRPC status code and the server's details.
Unary calls carry a deadline, so a hung coordinator turns into an error instead of
a hang. ``watch`` survives a coordinator restart: on UNAVAILABLE it reconnects
and resumes after the last event it delivered, within a bounded retry budget.
With ``tls`` the channel is TLS (mutual with a client certificate); with ``token``
every call carries ``authorization: Bearer <token>`` (``qpumesh.wire.auth``).
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import grpc
import numpy as np
import numpy.typing as npt

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.auth import bearer_metadata
from qpumesh.wire.channels import open_channel
from qpumesh.wire.errors import QpuMeshError, from_rpc_error
from qpumesh.wire.job_spec import JobSpec, spec_to_proto
from qpumesh.wire.job_state import JobState
from qpumesh.wire.tls import TlsConfig

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
"""The largest page a coordinator serves."""


def state_name(state: int) -> str:
    """Return the lower-case short name of a ``JobState`` ("running", "succeeded", ...)."""
    try:
        known = JobState.from_proto(state)
    except ValueError:
        return f"state {state}"
    return "unspecified" if known is None else known.label


def parse_state(value: str | int | None) -> pb.JobState:
    """Turn a state name ("running", "JOB_STATE_RUNNING") or number into a ``JobState``.

    ``None`` and "" mean "any state" (``JOB_STATE_UNSPECIFIED``).

    Raises:
        ValueError: for a name or number that is not a job state.
    """
    if value is None or value == "":
        return pb.JOB_STATE_UNSPECIFIED
    if isinstance(value, int):
        JobState.from_proto(value)
        return cast(pb.JobState, value)
    return JobState.parse(value).to_proto()


class CoordinatorClient:
    """Submit, follow and query training jobs on one coordinator.

    Use it as a context manager (or call ``close``) so the channel is released::

        with CoordinatorClient("localhost:50051") as client:
            job_id = client.submit({"task": "pendulum", "epochs": 5})
            for event in client.watch(job_id):
                ...
            job = client.get(job_id)

    Args:
        address: ``host:port`` of the coordinator.
        timeout: deadline in seconds of every unary call.
        watch_retries: how many consecutive reconnection attempts ``watch`` makes
            on UNAVAILABLE before giving up (the count resets whenever an event
            arrives). The defaults keep trying for about a minute, long enough
            for a coordinator to restart (it imports torch).
        retry_backoff: first pause between reconnection attempts; it doubles on
            every attempt, up to ``max_backoff``.
        max_backoff: longest pause between reconnection attempts.
        channel: an existing channel to use instead of opening one (the client
            then does not close it).
        tls: TLS settings (``qpumesh.wire.tls.load_tls``; ``client_tls_from_environment``
            reads ``QPUMESH_TLS_*``); None: plaintext.
        token: bearer token for a coordinator started with ``--auth-tokens``.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 30.0,
        watch_retries: int = 15,
        retry_backoff: float = 0.25,
        max_backoff: float = 5.0,
        channel: grpc.Channel | None = None,
        tls: TlsConfig | None = None,
        token: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.address = address
        self.timeout = timeout
        self.watch_retries = watch_retries
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self._owns_channel = channel is None
        # A short reconnect backoff, so a restarted coordinator is found on the next watch attempt.
        self._channel = channel or open_channel(address, tls=tls, reconnect_max_ms=int(max_backoff * 1000))
        self._metadata = bearer_metadata(token)
        self._stub = pb_grpc.CoordinatorStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (if this client opened it)."""
        if self._owns_channel:
            self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        """Invoke a unary stub method with a deadline, translating gRPC errors."""
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    def submit(self, spec: JobSpec | Mapping[str, Any] | pb.JobSpec) -> str:
        """Submit a training job and return its id.

        A mapping is validated locally with ``JobSpec.from_dict`` first, so an
        unknown field or bad value fails fast with ``SpecError`` naming it.

        Raises:
            SpecError: the mapping is not a valid job spec.
            QpuMeshError: the coordinator refused the job (INVALID_ARGUMENT
                naming the field) or could not be reached.
        """
        if isinstance(spec, pb.JobSpec):
            message = spec
        else:
            job_spec = spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)
            message = spec_to_proto(job_spec)
        response: pb.SubmitJobResponse = self._call(self._stub.SubmitJob, pb.SubmitJobRequest(spec=message))
        return response.job_id

    def get(self, job_id: str) -> pb.Job:
        """Return the job with its history, node stats and fault events."""
        job: pb.Job = self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id))
        return job

    def list(self, state: str | int | None = None, limit: int = 0) -> builtins.list[pb.Job]:
        """Return jobs, newest first, optionally only those in ``state`` and at most ``limit``.

        Follows the coordinator's pages. Listed jobs carry no history, faults or series
        values (``get`` has them); a caller sees its own jobs unless it is an admin.

        Args:
            state: a state name ("running"), a ``JobState`` value, or None for all.
            limit: maximum number of jobs; 0 = no limit.
        """
        jobs: builtins.list[pb.Job] = []
        token = ""
        while True:
            wanted = limit - len(jobs) if limit else 0
            page, token = self.list_page(state, page_size=min(wanted, MAX_PAGE_SIZE), page_token=token)
            jobs.extend(page)
            if not token or (limit and len(jobs) >= limit):
                return jobs[:limit] if limit else jobs

    def list_page(
        self, state: str | int | None = None, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[builtins.list[pb.Job], str]:
        """Return one page of jobs and the token of the next page ("" after the last).

        Args:
            state: as for ``list``.
            page_size: jobs per page (0: the coordinator's default, 50; at most 500).
            page_token: "" for the first page, else the token the previous page returned.
        """
        request = pb.ListJobsRequest(state=parse_state(state), page_size=page_size, page_token=page_token)
        response: pb.ListJobsResponse = self._call(self._stub.ListJobs, request)
        return builtins.list(response.jobs), response.next_page_token

    def delete(self, job_id: str) -> None:
        """Delete a finished job: its records, events, checkpoints (FAILED_PRECONDITION while it runs)."""
        self._call(self._stub.DeleteJob, pb.DeleteJobRequest(job_id=job_id))

    def cancel(self, job_id: str) -> pb.Job:
        """Ask the coordinator to cancel a job; returns the job as it now stands."""
        job: pb.Job = self._call(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id))
        return job

    def predict(self, job_id: str, series: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Predict with the job's best checkpoint.

        Args:
            job_id: a job with at least one checkpoint.
            series: a raw (unscaled) series of at least ``window`` values.

        Returns:
            ``predictions[i]``: the one-step-ahead prediction after
            ``series[i : i + window]``.
        """
        values = np.asarray(series, dtype=np.float64).ravel()
        request = pb.PredictRequest(job_id=job_id, series=values.tolist())
        response: pb.PredictResponse = self._call(self._stub.Predict, request)
        return np.asarray(response.predictions, dtype=np.float64)

    def results(self, job_id: str) -> pb.GetResultsResponse:
        """Return the job plus targets and predictions over every window of its series."""
        response: pb.GetResultsResponse = self._call(
            self._stub.GetResults, pb.GetResultsRequest(job_id=job_id)
        )
        return response

    def nodes(self) -> builtins.list[pb.NodeStats]:
        """Return the coordinator's node pool view of every QPU node."""
        response: pb.ListNodesResponse = self._call(self._stub.ListNodes, pb.ListNodesRequest())
        return builtins.list(response.nodes)

    def watch(self, job_id: str, after_seq: int = 0) -> Iterator[pb.JobEvent]:
        """Yield the job's progress events until it reaches a final state.

        On UNAVAILABLE (coordinator restarting, network blip) the stream is
        reopened with ``after_seq`` set to the last delivered event, so no event
        is lost or repeated; after ``watch_retries`` consecutive failed attempts
        the last error is raised.

        Raises:
            QpuMeshError: the job does not exist, or the coordinator stayed
                unreachable for the whole retry budget.
        """
        yield from self._watch(job_id, after_seq, deadline=None)

    def _watch(self, job_id: str, after_seq: int, deadline: float | None) -> Iterator[pb.JobEvent]:
        """``watch`` with an optional absolute ``time.monotonic()`` deadline."""
        last_seq = after_seq
        failures = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _deadline_error(job_id)
            request = pb.WatchJobRequest(job_id=job_id, after_seq=last_seq)
            call = self._stub.WatchJob(request, timeout=remaining, metadata=self._metadata)
            try:
                for event in call:
                    if event.seq <= last_seq:
                        continue
                    failures = 0  # progress: the retry budget counts consecutive failures
                    last_seq = event.seq
                    yield event
                return
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.Call) else None
                if code != grpc.StatusCode.UNAVAILABLE or failures >= self.watch_retries:
                    raise from_rpc_error(err) from err
                pause = min(self.max_backoff, self.retry_backoff * 2**failures)
                failures += 1
                log.warning(
                    "watch %s: coordinator unavailable (%s); reconnecting in %.2f s (attempt %d/%d)",
                    job_id,
                    err.details() if isinstance(err, grpc.Call) else err,
                    pause,
                    failures,
                    self.watch_retries,
                )
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
            finally:
                call.cancel()

    def wait(self, job_id: str, timeout: float | None = None) -> pb.Job:
        """Block until the job reaches a final state and return it.

        Follows the progress stream (so it reacts at once and survives a
        coordinator restart like ``watch``), then fetches the final job.

        Args:
            job_id: the job to wait for.
            timeout: seconds to wait at most; None waits indefinitely.

        Raises:
            QpuMeshError: DEADLINE_EXCEEDED when the job is still running after
                ``timeout`` seconds, or any error of ``watch``/``get``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_seq = 0
        while True:
            for event in self._watch(job_id, last_seq, deadline):
                last_seq = event.seq
            job = self.get(job_id)
            if job_finished(job):
                return job
            # The stream ended without a final state (e.g. the coordinator shut
            # down cleanly); keep following until the deadline.
            if deadline is not None and time.monotonic() >= deadline:
                raise _deadline_error(job_id)
            time.sleep(min(self.max_backoff, self.retry_backoff))


def _deadline_error(job_id: str) -> QpuMeshError:
    """Return the error ``wait`` raises when its timeout runs out."""
    return QpuMeshError(grpc.StatusCode.DEADLINE_EXCEEDED, f"job {job_id} did not finish in time")


def job_finished(job: pb.Job) -> bool:
    """Whether the job is in a final state (succeeded, failed or cancelled)."""
    state = JobState.from_proto(job.state)
    return state is not None and state.final
