"""The Coordinator service over gRPC, in-process circuits: every RPC's happy path and its errors."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cirq
import grpc
import pytest
import sympy
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.coordinator.config import CoordinatorConfig
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, LocalExecutor
from qpumesh.coordinator.server import create_server
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel

TINY = pb.JobSpec(
    model="distributed", qubits=4, partitions=2, layers=1, epochs=2, series_length=40, name="tiny"
)
WINDOW = 4  # the JobSpec default


@pytest.fixture
def stub(coordinator_server: Any) -> Iterator[pb_grpc.CoordinatorStub]:
    address, _ = coordinator_server(in_process=True)
    with open_channel(address) as channel:
        yield pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]


def _watch(stub: pb_grpc.CoordinatorStub, job_id: str, after_seq: int = 0) -> list[pb.JobEvent]:
    return list(stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_seq=after_seq), timeout=60))


def _wait_for_epoch(stub: pb_grpc.CoordinatorStub, job_id: str) -> None:
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=60):
        if event.WhichOneof("kind") == "epoch":
            return
    raise AssertionError("the job ended before its first epoch")


def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details() or ""


def test_a_job_runs_to_completion_and_every_rpc_reports_it(stub: pb_grpc.CoordinatorStub) -> None:
    job_id = stub.SubmitJob(pb.SubmitJobRequest(spec=TINY), timeout=10).job_id

    events = _watch(stub, job_id)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] == 1
    states = [e.state for e in events if e.WhichOneof("kind") == "state"]
    assert states == [pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING, pb.JOB_STATE_SUCCEEDED]
    epochs = [e.epoch for e in events if e.WhichOneof("kind") == "epoch"]
    assert [m.epoch for m in epochs] == [1, 2]
    assert all(m.circuit_evaluations > 0 and m.rounds > 0 for m in epochs)

    # Replay from a sequence number: exactly the later events, then the stream ends.
    assert [e.seq for e in _watch(stub, job_id, after_seq=seqs[2])] == seqs[3:]

    job = stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
    assert job.state == pb.JOB_STATE_SUCCEEDED and job.epochs_done == 2 and not job.error
    assert [m.epoch for m in job.history] == [1, 2]
    assert job.history[1].test_r2 == pytest.approx(job.final_test_r2)
    assert job.spec.name == "tiny" and job.spec.HasField("seed") and job.spec.batch_size == 10
    assert job.created_at <= job.updated_at

    listed = stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_SUCCEEDED), timeout=10).jobs
    assert [j.id for j in listed] == [job_id]
    assert not stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_RUNNING), timeout=10).jobs

    series = [0.1, 0.4, -0.2, 0.3, 0.5, 0.0]
    predicted = stub.Predict(pb.PredictRequest(job_id=job_id, series=series), timeout=30)
    assert len(predicted.predictions) == len(series) - WINDOW + 1 == 3
    best = min(job.history, key=lambda m: m.train_loss)
    assert predicted.epoch == best.epoch

    results = stub.GetResults(pb.GetResultsRequest(job_id=job_id), timeout=30)
    windows = len(results.targets)
    assert len(results.predictions) == windows >= TINY.series_length - 2 * WINDOW
    assert 0 < results.train_size < windows
    assert results.job.id == job_id and len(results.job.history) == 2

    nodes = stub.ListNodes(pb.ListNodesRequest(), timeout=10).nodes
    assert [n.address for n in nodes] == ["in-process"] and nodes[0].healthy


def test_cancel_stops_a_running_job_and_removes_a_queued_one(stub: pb_grpc.CoordinatorStub) -> None:
    long = pb.JobSpec()
    long.CopyFrom(TINY)
    long.epochs = 500
    running = stub.SubmitJob(pb.SubmitJobRequest(spec=long), timeout=10).job_id
    queued = stub.SubmitJob(pb.SubmitJobRequest(spec=TINY), timeout=10).job_id
    _wait_for_epoch(stub, running)

    # A queued job has no checkpoint: Predict cannot answer yet.
    code, details = _code(
        lambda: stub.Predict(pb.PredictRequest(job_id=queued, series=[0.0] * 8), timeout=10)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "no checkpoint" in details
    # GetResults still answers, without predictions.
    assert not stub.GetResults(pb.GetResultsRequest(job_id=queued), timeout=10).predictions

    assert stub.CancelJob(pb.CancelJobRequest(job_id=queued), timeout=10).state == pb.JOB_STATE_CANCELLED
    start = time.monotonic()
    job = stub.CancelJob(pb.CancelJobRequest(job_id=running), timeout=30)
    assert job.state == pb.JOB_STATE_CANCELLED
    assert time.monotonic() - start < 10
    assert 1 <= job.epochs_done < 500
    assert _watch(stub, running)[-1].state == pb.JOB_STATE_CANCELLED
    # Cancelling a final job changes nothing.
    assert stub.CancelJob(pb.CancelJobRequest(job_id=running), timeout=10).state == pb.JOB_STATE_CANCELLED
    # The cancelled job still predicts from its best checkpoint.
    assert len(stub.Predict(pb.PredictRequest(job_id=running, series=[0.0] * 4), timeout=30).predictions) == 1


_CUSTOM_THETA = cirq.to_json(cirq.Circuit(cirq.ry(sympy.Symbol("theta")).on(cirq.LineQubit(0))))
_CUSTOM_3Q = cirq.to_json(cirq.Circuit(cirq.ry(sympy.Symbol("x_0")).on_each(*cirq.LineQubit.range(3))))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"qubits": 1}, "qubits: must be between 2 and 1024, got 1"),
        ({"epochs": 0}, "epochs: must be between 1 and"),
        ({"model": "transformer"}, "model: must be one of centric, distributed, classical"),
        ({"task": "csv"}, "series: task 'csv' needs"),
        ({"task": "csv", "csv_path": "series.csv"}, "csv_path: this coordinator reads no files"),
        ({"lr": -0.5}, "lr: must be a positive finite number"),
        ({"gradient_mode": "adjoint"}, "gradient_mode: must be one of jacobian, vjp; got 'adjoint'"),
        ({"train_fraction": 1.5}, "train_fraction: must be in (0, 1)"),
        ({"qubits": 3, "partitions": 4}, "partitions: 4 parts exceed the hidden size d_h = 2"),
        ({"window": 50, "series_length": 40}, "series_length: must be between 53"),
        ({"ansatz": "custom"}, "ansatz_circuit: ansatz 'custom' needs its circuit"),
        (
            {"ansatz": "custom", "ansatz_circuit": _CUSTOM_THETA},
            "ansatz_circuit: circuit 0: unknown symbol 'theta'",
        ),
        # qubits 4 over 2 partitions needs 2-qubit circuits; this one has 3 qubits.
        (
            {"ansatz": "custom", "ansatz_circuit": _CUSTOM_3Q},
            "a 2-qubit sub-circuit, but the circuits given act on [3]",
        ),
    ],
)
def test_bad_specs_are_invalid_argument_naming_the_field(
    stub: pb_grpc.CoordinatorStub, fields: dict[str, Any], expected: str
) -> None:
    code, details = _code(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=pb.JobSpec(**fields)), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in details
    assert not stub.ListJobs(pb.ListJobsRequest(), timeout=10).jobs


def test_csv_task_with_a_short_or_bad_file_is_refused(coordinator_server: Any, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "short.csv").write_text("value\n1\n2\n3\n")
    (root / "flat.csv").write_text("value\n" + "2\n" * 20)
    address, _ = coordinator_server(in_process=True, data_root=root)
    with open_channel(address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]

        def submit(**fields: Any) -> tuple[grpc.StatusCode, str]:
            return _code(
                lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=pb.JobSpec(task="csv", **fields)), timeout=10)
            )

        code, details = submit(csv_path="short.csv")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("csv_path: 3 values")
        code, details = submit(csv_path="short.csv", csv_column="price")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("csv_column: ")
        code, details = submit(csv_path="flat.csv")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "constant" in details


def test_unknown_jobs_and_bad_requests(stub: pb_grpc.CoordinatorStub) -> None:
    for call in (
        lambda: stub.GetJob(pb.GetJobRequest(job_id="nope"), timeout=10),
        lambda: stub.CancelJob(pb.CancelJobRequest(job_id="nope"), timeout=10),
        lambda: stub.Predict(pb.PredictRequest(job_id="nope", series=[1.0] * 10), timeout=10),
        lambda: stub.GetResults(pb.GetResultsRequest(job_id="nope"), timeout=10),
        lambda: _watch(stub, "nope"),
    ):
        code, details = _code(call)
        assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
    code, details = _code(lambda: stub.ListJobs(pb.ListJobsRequest(state=42), timeout=10))  # type: ignore[arg-type]
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "state" in details

    classical = pb.JobSpec(model="classical", epochs=1, series_length=40)
    job_id = stub.SubmitJob(pb.SubmitJobRequest(spec=classical), timeout=10).job_id
    assert _watch(stub, job_id)[-1].state == pb.JOB_STATE_SUCCEEDED
    code, details = _code(
        lambda: stub.Predict(pb.PredictRequest(job_id=job_id, series=[1.0, 2.0]), timeout=10)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("series: ")
    code, details = _code(
        lambda: stub.Predict(
            pb.PredictRequest(job_id=job_id, series=[1.0, float("nan"), 2, 3, 4]), timeout=10
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "series: value 1 is nan; every value must be a finite number"


def test_health_and_reflection(coordinator_server: Any) -> None:
    address, _ = coordinator_server(in_process=True)
    with open_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "qpumesh.v1.Coordinator"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(iter(reflection.ServerReflectionInfo(iter([request]), timeout=10)))
        names = {s.name for s in reply.list_services_response.service}
        assert "qpumesh.v1.Coordinator" in names and "grpc.health.v1.Health" in names


class _BrokenExecutor(LocalExecutor):
    """An executor whose nodes answer every round with an error."""

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        raise RuntimeError("every node is on fire")


def test_a_failing_job_is_failed_with_its_error_and_the_next_job_still_runs(tmp_path: Path) -> None:
    config = CoordinatorConfig(host="127.0.0.1", port=0, data_dir=tmp_path, in_process=True)
    server, port = create_server(config, executor=_BrokenExecutor())
    try:
        with open_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            failing = stub.SubmitJob(pb.SubmitJobRequest(spec=TINY), timeout=10).job_id
            classical = pb.JobSpec(model="classical", epochs=1, series_length=40)
            fine = stub.SubmitJob(pb.SubmitJobRequest(spec=classical), timeout=10).job_id
            events = _watch(stub, failing)
            assert events[-1].state == pb.JOB_STATE_FAILED
            assert any("every node is on fire" in e.log for e in events)
            job = stub.GetJob(pb.GetJobRequest(job_id=failing), timeout=10)
            assert job.state == pb.JOB_STATE_FAILED and "RuntimeError: every node is on fire" in job.error
            assert _watch(stub, fine)[-1].state == pb.JOB_STATE_SUCCEEDED
    finally:
        server.stop(None)


def test_shutdown_requeues_the_running_job_and_a_restart_finishes_it(tmp_path: Path) -> None:
    config = CoordinatorConfig(host="127.0.0.1", port=0, data_dir=tmp_path, in_process=True)
    spec = pb.JobSpec()
    spec.CopyFrom(TINY)
    spec.epochs = 10
    server, port = create_server(config)
    try:
        with open_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            job_id = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=10).job_id
            stream = stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=60)
            last = next(e for e in stream if e.WhichOneof("kind") == "epoch")
            server.stop(5).wait()
            # The open stream is told to come back later, not that the job ended.
            with pytest.raises(grpc.RpcError) as info:
                list(stream)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)

    server, port = create_server(config)
    try:
        with open_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            events = _watch(stub, job_id, after_seq=last.seq)
            states = [e.state for e in events if e.WhichOneof("kind") == "state"]
            assert states[0] == pb.JOB_STATE_QUEUED and states[-1] == pb.JOB_STATE_SUCCEEDED
            job = stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
            assert [m.epoch for m in job.history] == list(range(1, 11))
    finally:
        server.stop(None)


def test_a_bug_is_internal_and_logged(
    coordinator_server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    address, server = coordinator_server(in_process=True)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(server.manager.store, "page", broken)
    with open_channel(address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        code, details = _code(lambda: stub.ListJobs(pb.ListJobsRequest(), timeout=10))
    assert code == grpc.StatusCode.INTERNAL
    # The caller learns where to look, not the server's internals (no exception text).
    assert re.fullmatch(
        r"ListJobs: internal error \(incident [0-9a-f]{12} in the server's log\); please report it", details
    )
    incident = details.split()[4]
    assert any(
        r.message == f"ListJobs failed unexpectedly (incident {incident})" and r.exc_info
        for r in caplog.records
    )
