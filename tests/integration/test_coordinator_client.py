"""CoordinatorClient against a scripted in-process Coordinator servicer on port 0.

The fake servicer lets the tests break a WatchJob stream with UNAVAILABLE at a
chosen point, which a real coordinator would only do while restarting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

from qpumesh.client.coordinator_client import CoordinatorClient, parse_state, state_name
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.errors import QpuMeshError
from qpumesh.wire.job_spec import SpecError

EPOCHS = 4


class FakeCoordinator(pb_grpc.CoordinatorServicer):  # type: ignore[misc]
    """One job "j1" whose events are epochs 1..4, then SUCCEEDED."""

    def __init__(self) -> None:
        self.submitted: list[pb.JobSpec] = []
        self.watch_requests: list[int] = []
        self.break_after: list[int] = []  # per WatchJob call: abort with UNAVAILABLE after N events
        self.hold_stream = threading.Event()  # when set, WatchJob blocks instead of finishing
        self.events = [
            pb.JobEvent(
                job_id="j1",
                seq=e,
                epoch=pb.EpochMetrics(epoch=e, train_loss=1.0 / e, test_loss=2.0 / e, test_r2=0.2 * e),
            )
            for e in range(1, EPOCHS + 1)
        ]
        self.events.append(pb.JobEvent(job_id="j1", seq=EPOCHS + 1, state=pb.JOB_STATE_SUCCEEDED))

    def _job(self) -> pb.Job:
        return pb.Job(id="j1", state=pb.JOB_STATE_SUCCEEDED, epochs_done=EPOCHS, final_test_r2=0.8)

    def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.ServicerContext) -> pb.SubmitJobResponse:
        if request.spec.epochs > 1000:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "epochs: too many")
        self.submitted.append(request.spec)
        return pb.SubmitJobResponse(job_id="j1")

    def WatchJob(self, request: pb.WatchJobRequest, context: grpc.ServicerContext) -> Iterator[pb.JobEvent]:
        if request.job_id != "j1":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id}")
        self.watch_requests.append(request.after_seq)
        limit = self.break_after.pop(0) if self.break_after else None
        sent = 0
        for event in self.events:
            if event.seq <= request.after_seq:
                continue
            if limit is not None and sent >= limit:
                context.abort(grpc.StatusCode.UNAVAILABLE, "coordinator restarting")
            while self.hold_stream.is_set() and context.is_active():
                time.sleep(0.05)
            yield event
            sent += 1

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.Job:
        if request.job_id != "j1":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id}")
        return self._job()

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> pb.ListJobsResponse:
        jobs = [self._job()]
        if request.state not in (pb.JOB_STATE_UNSPECIFIED, pb.JOB_STATE_SUCCEEDED):
            jobs = []
        return pb.ListJobsResponse(jobs=jobs)

    def CancelJob(self, request: pb.CancelJobRequest, context: grpc.ServicerContext) -> pb.Job:
        return self._job()

    def Predict(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
        window = 2
        series = list(request.series)
        return pb.PredictResponse(
            predictions=[sum(series[i : i + window]) for i in range(len(series) - window + 1)]
        )

    def GetResults(
        self, request: pb.GetResultsRequest, context: grpc.ServicerContext
    ) -> pb.GetResultsResponse:
        return pb.GetResultsResponse(
            job=self._job(), targets=[1.0, 2.0], predictions=[1.1, 2.1], train_size=1
        )

    def ListNodes(self, request: pb.ListNodesRequest, context: grpc.ServicerContext) -> pb.ListNodesResponse:
        return pb.ListNodesResponse(nodes=[pb.NodeStats(address="a:1", node_id="n0", healthy=True)])


@pytest.fixture()
def fake() -> Iterator[tuple[FakeCoordinator, str]]:
    servicer = FakeCoordinator()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_CoordinatorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _client(address: str, **kwargs: Any) -> CoordinatorClient:
    return CoordinatorClient(address, timeout=5.0, retry_backoff=0.01, **kwargs)


def test_submit_validates_locally_and_sends_every_field(fake: tuple[FakeCoordinator, str]) -> None:
    servicer, address = fake
    with _client(address) as client:
        assert client.submit({"task": "narma", "epochs": 3}) == "j1"
        with pytest.raises(SpecError) as info:
            client.submit({"qubitz": 3})
        assert info.value.field == "qubitz"
        with pytest.raises(QpuMeshError) as error:
            client.submit(pb.JobSpec(epochs=5000))
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    spec = servicer.submitted[0]
    assert (spec.task, spec.epochs) == ("narma", 3)
    assert spec.HasField("layers")  # defaults are explicit on the wire


def test_watch_resumes_after_unavailable_without_gaps(fake: tuple[FakeCoordinator, str]) -> None:
    servicer, address = fake
    servicer.break_after = [2, 0, 1]
    with _client(address) as client:
        seqs = [event.seq for event in client.watch("j1")]
    assert seqs == [1, 2, 3, 4, 5]
    assert servicer.watch_requests == [0, 2, 2, 3]


def test_watch_gives_up_after_the_retry_budget(fake: tuple[FakeCoordinator, str]) -> None:
    servicer, address = fake
    servicer.break_after = [0, 0, 0, 0]
    with _client(address, watch_retries=2) as client, pytest.raises(QpuMeshError) as error:
        list(client.watch("j1"))
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.watch_requests) == 3


def test_errors_are_qpumesh_errors(fake: tuple[FakeCoordinator, str]) -> None:
    _, address = fake
    with _client(address) as client:
        with pytest.raises(QpuMeshError) as error:
            client.get("nope")
        assert error.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(QpuMeshError) as error:
            list(client.watch("nope"))
        assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_unreachable_coordinator_fails_within_the_deadline() -> None:
    started = time.monotonic()
    with CoordinatorClient("127.0.0.1:1", timeout=0.5) as client, pytest.raises(QpuMeshError) as error:
        client.nodes()
    assert error.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 5


def test_wait_returns_the_final_job_and_honours_its_timeout(fake: tuple[FakeCoordinator, str]) -> None:
    servicer, address = fake
    with _client(address) as client:
        job = client.wait("j1", timeout=5)
        assert job.state == pb.JOB_STATE_SUCCEEDED
        servicer.hold_stream.set()
        started = time.monotonic()
        with pytest.raises(QpuMeshError) as error:
            client.wait("j1", timeout=0.5)
        assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5


def test_unary_calls(fake: tuple[FakeCoordinator, str]) -> None:
    _, address = fake
    with _client(address) as client:
        assert [j.id for j in client.list()] == ["j1"]
        assert client.list(state="running") == []
        assert client.cancel("j1").id == "j1"
        predictions = client.predict("j1", np.array([1.0, 2.0, 4.0]))
        assert predictions.dtype == np.float64
        np.testing.assert_array_equal(predictions, [3.0, 6.0])
        assert list(client.results("j1").predictions) == [1.1, 2.1]
        assert [n.node_id for n in client.nodes()] == ["n0"]


def test_state_names() -> None:
    assert parse_state("running") == pb.JOB_STATE_RUNNING
    assert parse_state("JOB_STATE_FAILED") == pb.JOB_STATE_FAILED
    assert parse_state(None) == pb.JOB_STATE_UNSPECIFIED
    assert state_name(pb.JOB_STATE_SUCCEEDED) == "succeeded"
    with pytest.raises(ValueError):
        parse_state("sleeping")
