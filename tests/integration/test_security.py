"""Regression tests for the coordinator defects of issue 9 (1, 2, 3, 7, 8, 9), on real servers.

Each test names its defect and reproduces it the way the issue did; on the main branch
before the fix every one of them fails (the file's contents come back, anyone lists
and cancels every job, 20 streams starve the unary calls, a 30 MB ``extra`` and
``series_length=1e7`` are accepted, a cancel leaves the worker generating data).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from faulty_mesh import TOKEN, start_faulty_node
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.client.cli import main
from qpumesh.client.coordinator_client import CoordinatorClient
from qpumesh.coordinator.auth import TokenTable
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.v1 import node_admin_pb2_grpc as apb_grpc
from qpumesh.wire.auth import bearer_metadata
from qpumesh.wire.channels import open_channel
from qpumesh.wire.errors import QpuMeshError
from qpumesh.wire.fault_config import ADMIN_TOKEN_METADATA, FaultConfig

SECRET = "s3cr3t-probe-value-9f2c"
TOKENS = {"alice": "alice-token-7d1e4a9b2c", "bob": "bob-token-5c8f0e3a6d11", "ops": "ops-token-2b9d7c4e1f08"}
QUICK = {"model": "classical", "epochs": 1, "series_length": 40}


def _eventually(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _code(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises((grpc.RpcError, QpuMeshError)) as info:
        call()
    error = info.value
    if isinstance(error, QpuMeshError):
        return error.code, error.details
    return error.code(), error.details() or ""  # type: ignore[attr-defined]


@pytest.fixture
def secured(coordinator_server: Any, tmp_path: Path) -> Callable[..., str]:
    """Start an in-process coordinator with tokens for alice and bob (users) and ops (admin)."""

    def start(**fields: Any) -> str:
        path = tmp_path / "tokens"
        path.write_text(f"{TOKENS['alice']} alice\n{TOKENS['bob']} bob user\n{TOKENS['ops']} ops admin\n")
        address, _ = coordinator_server(in_process=True, auth=TokenTable.load(path), **fields)
        return address

    return start


def _as(address: str, who: str | None, **kwargs: Any) -> CoordinatorClient:
    return CoordinatorClient(address, timeout=10, token=TOKENS[who] if who else None, **kwargs)


# --------------------------------------------------------------------------- defect 1


def test_defect_1_no_file_outside_the_data_root_is_read_or_revealed(
    coordinator_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QPUMESH_PROBE", SECRET)  # the coordinator runs in this process: its environ
    root = tmp_path / "data"
    root.mkdir()
    (root / "series.csv").write_text("value\n" + "".join(f"{(i * 37) % 11}\n" for i in range(30)))
    address, _ = coordinator_server(in_process=True, data_root=root)
    with CoordinatorClient(address, timeout=10) as client:
        answers = {}
        for path in ("/proc/self/environ", f"/proc/{os.getpid()}/environ", "/etc/passwd", "/etc/no-such-file",
                     "../../../../etc/passwd", "missing.csv"):  # fmt: skip
            code, details = _code(lambda path=path: client.submit({"task": "csv", "csv_path": path}))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, details
            assert details.startswith("csv_path: ")
            assert SECRET not in details and "root:" not in details, details
            answers[path] = details.replace(repr(path), "NAME")
        # An existing and a missing file outside the root get the same answer.
        assert answers["/etc/passwd"] == answers["/etc/no-such-file"]
        assert client.list() == []
        # A file under the root is read (once, at submission) and trained on.
        job_id = client.submit({"task": "csv", "csv_path": "series.csv", "model": "classical", "epochs": 1})
        job = client.wait(job_id, timeout=60)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        assert job.spec.series.length == 30 and job.spec.csv_path == "series.csv"
    # Without a data root, no path is read at all; the series travels with the job instead.
    address, _ = coordinator_server(in_process=True)
    with CoordinatorClient(address, timeout=10) as client:
        code, details = _code(lambda: client.submit({"task": "csv", "csv_path": "/proc/self/environ"}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "reads no files" in details
        series = [float((i * 37) % 11) for i in range(30)]
        job_id = client.submit({"task": "csv", "series": series, "model": "classical", "epochs": 1})
        assert client.wait(job_id, timeout=60).state == pb.JOB_STATE_SUCCEEDED


def test_train_csv_reads_the_file_on_the_client(
    coordinator_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address, _ = coordinator_server(in_process=True)  # no data root: it could not read the file itself
    data = tmp_path / "prices.csv"
    data.write_text("day,price\n" + "".join(f"{i},{(i * 37) % 11}\n" for i in range(30)))
    argv = ["train", "--csv", str(data), "--csv-column", "price", "--model", "classical", "--epochs", "1"]
    assert main([*argv, "--coordinator", address]) == 0
    assert "test R² = " in capsys.readouterr().out
    with CoordinatorClient(address) as client:
        (job,) = client.list()
        assert job.spec.task == "csv" and job.spec.series.length == 30 and job.spec.name == "prices.csv"
        assert list(client.get(job.id).spec.series.values)[:3] == [0.0, 4.0, 8.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("value\n1\nabc\n")
    assert main(["train", "--csv", str(bad), "--coordinator", address]) == 2
    assert "data row 3: 'abc' is not a finite number" in capsys.readouterr().err


# --------------------------------------------------------------------------- defect 2


def test_defect_2_the_node_admin_token_can_be_neither_read_nor_guessed(
    coordinator_server: Any,
    node_server: Callable[..., tuple[str, grpc.Server]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The node's token is in its process environment (here: this process, which also runs
    # the coordinator); the coordinator must not hand it out through a job's CSV path.
    monkeypatch.setenv("QPUMESH_ADMIN_TOKEN", TOKEN)
    root = tmp_path / "data"
    root.mkdir()
    address, _ = coordinator_server(in_process=True, data_root=root)
    with CoordinatorClient(address, timeout=10) as client:
        for path in (f"/proc/{os.getpid()}/environ", "/proc/self/environ"):
            code, details = _code(lambda path=path: client.submit({"task": "csv", "csv_path": path}))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and TOKEN not in details
    # Guessing is throttled: after 5 wrong tokens even the right one is refused for a while.
    node = start_faulty_node(node_server, node_id="guarded")
    with open_channel(node.address) as channel:
        admin = apb_grpc.NodeAdminStub(channel)  # type: ignore[no-untyped-call]
        request = apb.SetFaultsRequest(faults=apb.FaultConfig(crash_after_calls=1))

        def set_faults(token: str) -> tuple[grpc.StatusCode, str]:
            return _code(
                lambda: admin.SetFaults(request, timeout=5, metadata=((ADMIN_TOKEN_METADATA, token),))
            )

        guesses = [set_faults(f"guess-{i}")[0] for i in range(6)]
        assert guesses == [grpc.StatusCode.PERMISSION_DENIED] * 6
        code, details = set_faults(TOKEN)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry in" in details
    assert node.injector.config == FaultConfig()  # the crash fault never got in
    refusals = [r.getMessage() for r in caplog.records if "NodeAdmin call from" in r.getMessage()]
    assert len(refusals) == 6 and "blocked for" in refusals[-1]
    assert not any("guess-" in r.getMessage() for r in caplog.records)  # tokens are never logged


# --------------------------------------------------------------------------- defect 3


def test_defect_3_every_coordinator_call_needs_a_token(secured: Callable[..., str]) -> None:
    address = secured()
    service = pb.DESCRIPTOR.services_by_name["Coordinator"]
    with open_channel(address) as channel:
        # Without a token first (never throttled), then with a wrong one (which may meet the
        # guessing throttle, RESOURCE_EXHAUSTED: refused either way).
        for metadata in ((), bearer_metadata("not-a-valid-token-at-all")):
            refused = {grpc.StatusCode.UNAUTHENTICATED}
            if metadata:
                refused.add(grpc.StatusCode.RESOURCE_EXHAUSTED)
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                request_type = getattr(pb, method.input_type.name)
                if method.server_streaming:
                    call = channel.unary_stream(path, request_type.SerializeToString, lambda b: b)
                    code, _ = _code(
                        lambda c=call, m=metadata, r=request_type: [*c(r(), timeout=5, metadata=m)]
                    )
                else:
                    call = channel.unary_unary(path, request_type.SerializeToString, lambda b: b)
                    code, _ = _code(lambda c=call, m=metadata, r=request_type: c(r(), timeout=5, metadata=m))
                assert code in refused, method.name
        # Health checks (probes, container healthchecks) need no token.
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    code, details = _code(lambda: CoordinatorClient(address, timeout=5).list())
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED)
    with _as(address, "alice") as alice:
        deadline = time.monotonic() + 70
        while True:  # the guesses above may have this address blocked for a few seconds
            try:
                assert alice.list() == []
                break
            except QpuMeshError as error:
                assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.5)
    code, details = _code(lambda: CoordinatorClient(address, timeout=5).list())
    assert code == grpc.StatusCode.UNAUTHENTICATED and "--token" in details


def test_defect_3_principals_see_and_change_only_their_own_jobs(
    secured: Callable[..., str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    address = secured()
    with _as(address, "alice") as alice, _as(address, "bob") as bob, _as(address, "ops") as ops:
        done = alice.submit(QUICK)
        assert alice.wait(done, timeout=60).state == pb.JOB_STATE_SUCCEEDED
        queued = alice.submit({"model": "classical", "epochs": 100_000, "series_length": 40})
        mine = bob.submit(QUICK)
        assert {j.id for j in alice.list()} == {done, queued}
        assert [j.id for j in bob.list()] == [mine]
        assert {j.id: j.owner for j in ops.list()} == {done: "alice", queued: "alice", mine: "bob"}
        # Someone else's job is answered exactly like a job that does not exist.
        _, unknown = _code(lambda: bob.get("000000000000"))
        for job, call in (
            (done, lambda: bob.get(done)),
            (queued, lambda: bob.cancel(queued)),
            (done, lambda: bob.delete(done)),
            (done, lambda: bob.results(done)),
            (done, lambda: bob.predict(done, [1.0] * 6)),
            (done, lambda: list(bob.watch(done))),
        ):
            assert _code(call) == (grpc.StatusCode.NOT_FOUND, unknown.replace("000000000000", job))
        assert alice.get(queued).state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
        # The admin may cancel anyone's job; the owner deletes it.
        assert ops.cancel(queued).state == pb.JOB_STATE_CANCELLED
        alice.delete(queued)
        assert [j.id for j in alice.list()] == [done]
    # The CLI passes the token from --token or QPUMESH_TOKEN.
    assert main(["jobs", "--coordinator", address, "--token", TOKENS["bob"]]) == 0
    out = capsys.readouterr().out
    assert mine in out and done not in out
    monkeypatch.setenv("QPUMESH_TOKEN", TOKENS["ops"])
    assert main(["jobs", "--coordinator", address]) == 0
    assert done in capsys.readouterr().out
    monkeypatch.delenv("QPUMESH_TOKEN")
    assert main(["jobs", "--coordinator", address]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_defect_3_failed_token_attempts_are_throttled_and_logged_without_the_token(
    secured: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    address = secured()
    caplog.set_level(logging.WARNING, logger="qpumesh.coordinator.auth")
    for i in range(6):
        with CoordinatorClient(address, timeout=5, token=f"wrong-guess-{i:04d}-xxxxxxxx") as guesser:
            assert _code(guesser.list)[0] == grpc.StatusCode.UNAUTHENTICATED
    with _as(address, "alice") as alice:
        code, details = _code(alice.list)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry in" in details
        time.sleep(1.2)  # the first block lasts 1 s
        assert alice.list() == []
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unknown bearer token" in m for m in messages) == 6 and "blocked for 1 s" in messages[-1]
    assert not any("wrong-guess" in m or TOKENS["alice"] in m for m in messages)


# --------------------------------------------------------------------------- defect 7


def test_defect_7_unary_calls_keep_answering_with_many_open_watch_streams(coordinator_server: Any) -> None:
    # Nodes that never answer keep the job waiting (QUEUED), so every stream stays open.
    address, server = coordinator_server(nodes="127.0.0.1:1", connect_timeout_seconds=120)
    streams: list[Any] = []
    with open_channel(address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        spec = pb.JobSpec(model="distributed", epochs=1, series_length=40)
        stuck = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=5).job_id
        try:
            for _ in range(30):
                stream = stub.WatchJob(pb.WatchJobRequest(job_id=stuck), timeout=120)
                assert next(stream).state == pb.JOB_STATE_QUEUED  # open and served
                streams.append(stream)
            assert all(s.is_active() for s in streams)
            # Every unary call still answers within a short deadline.
            for _ in range(3):
                assert len(stub.ListJobs(pb.ListJobsRequest(), timeout=2).jobs) >= 1
                stub.ListNodes(pb.ListNodesRequest(), timeout=2)
                stub.GetJob(pb.GetJobRequest(job_id=stuck), timeout=2)
            other = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=2).job_id
            assert (
                stub.CancelJob(pb.CancelJobRequest(job_id=other), timeout=2).state == pb.JOB_STATE_CANCELLED
            )
            # Cancelling the job that waits for nodes frees the worker at once.
            started = time.monotonic()
            assert (
                stub.CancelJob(pb.CancelJobRequest(job_id=stuck), timeout=10).state == pb.JOB_STATE_CANCELLED
            )
            assert _eventually(lambda: server.manager.current_job is None, timeout=5)
            assert time.monotonic() - started < 5
            for stream in streams:  # the streams end with the job
                assert list(stream)[-1].state == pb.JOB_STATE_CANCELLED
        finally:
            for stream in streams:
                stream.cancel()


def test_defect_7_open_streams_are_bounded(coordinator_server: Any) -> None:
    address, _ = coordinator_server(nodes="127.0.0.1:1", connect_timeout_seconds=60, max_streams=3)
    with open_channel(address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        spec = pb.JobSpec(model="distributed", epochs=1, series_length=40)
        job_id = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=5).job_id
        streams = [stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=60) for _ in range(3)]
        try:
            for stream in streams:
                next(stream)
            code, details = _code(lambda: list(stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=10)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "3 WatchJob streams are open" in details and "--max-streams" in details
            streams.pop().cancel()
            time.sleep(0.5)
            follower = stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=60)
            assert next(follower).seq == 1  # a slot was freed
            streams.append(follower)
            stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=10)
        finally:
            for stream in streams:
                stream.cancel()


# --------------------------------------------------------------------------- defect 8


def test_defect_8_extra_and_other_sizes_are_bounded_before_anything_is_stored(
    coordinator_server: Any,
) -> None:
    address, _ = coordinator_server(in_process=True)
    with open_channel(address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        cases = [
            (
                pb.JobSpec(extra={"blob": "x" * 2_000_000}),
                "extra: value of 'blob': 2000000 characters; at most 1024",
            ),
            (pb.JobSpec(extra={f"k{i}": "v" for i in range(1000)}), "extra: 1000 entries; at most 32"),
            (pb.JobSpec(name="n" * 5000), "name: 5000 characters; at most 200"),
            (pb.JobSpec(csv_column="c" * 5000), "csv_column: 5000 characters; at most 200"),
        ]
        for spec, message in cases:
            code, details = _code(
                lambda spec=spec: stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=10)
            )
            assert code == grpc.StatusCode.INVALID_ARGUMENT and details == message
        # A 30 MB request is refused by the server's message limit before it is decoded.
        huge = pb.JobSpec(extra={"blob": "x" * 30_000_000})
        code, _ = _code(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=huge), timeout=30))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        code, details = _code(lambda: stub.GetJob(pb.GetJobRequest(job_id="j" * 100_000), timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details == "job_id: 100000 characters; at most 64"
        assert not stub.ListJobs(pb.ListJobsRequest(), timeout=10).jobs


def test_defect_8_jobs_are_listed_page_by_page_and_can_be_deleted(
    coordinator_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    address, server = coordinator_server(in_process=True)
    with CoordinatorClient(address, timeout=10) as client:
        ids = [client.submit(QUICK | {"name": f"job-{i}"}) for i in range(7)]
        for job_id in ids:
            client.wait(job_id, timeout=120)
        pages, token = [], ""
        while True:
            page, token = client.list_page(page_size=3, page_token=token)
            pages.append([j.id for j in page])
            if not token:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [i for p in pages for i in p] == ids[::-1]  # newest first, each job once
        listed = client.list()
        assert [j.id for j in listed] == ids[::-1] and not any(j.history for j in listed)
        assert len(client.list(limit=4)) == 4
        assert _code(lambda: client.list_page(page_size=501))[0] == grpc.StatusCode.INVALID_ARGUMENT
        code, details = _code(lambda: client.list_page(page_token="not-a-token"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_token: ")
        assert main(["jobs", "--coordinator", address]) == 0  # the CLI follows the pages
        out = capsys.readouterr().out
        assert all(job_id in out for job_id in ids)

        victim = ids[0]
        checkpoints = server.manager.checkpoints.job_dir(victim)
        assert (checkpoints / "best.pt").exists()
        client.delete(victim)
        assert not checkpoints.exists()
        assert _code(lambda: client.get(victim))[0] == grpc.StatusCode.NOT_FOUND
        assert _code(lambda: list(client.watch(victim)))[0] == grpc.StatusCode.NOT_FOUND
        assert server.manager.store.events(victim) == [] and server.manager.store.epochs(victim) == []
        assert victim not in [j.id for j in client.list()]
        running = client.submit({"model": "classical", "epochs": 100_000, "series_length": 40})
        code, details = _code(lambda: client.delete(running))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "cancel it" in details
        client.cancel(running)
        client.delete(running)


# --------------------------------------------------------------------------- defect 9


def test_defect_9_spec_sizes_are_bounded_and_cancel_stops_data_generation(coordinator_server: Any) -> None:
    address, server = coordinator_server(in_process=True)
    with CoordinatorClient(address, timeout=15) as client:
        code, details = _code(lambda: client.submit(pb.JobSpec(series_length=10_000_000)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details == "series_length: must be between 7 and 20000, got 10000000"
        # The longest pendulum series takes tens of seconds to integrate; cancel it midway.
        slow = client.submit({"model": "classical", "series_length": 20_000, "epochs": 1})
        deadline = time.monotonic() + 30
        while server.manager.current_job != slow and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.manager.current_job == slow
        time.sleep(0.5)  # well inside the generation
        assert client.cancel(slow).state == pb.JOB_STATE_CANCELLED
        freed = _eventually(lambda: server.manager.current_job is None, timeout=5)
        assert freed, "the worker is still busy with the cancelled job"
        # The next job runs at once.
        assert client.wait(client.submit(QUICK), timeout=60).state == pb.JOB_STATE_SUCCEEDED
