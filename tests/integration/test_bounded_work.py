"""Issue 9, defects 4, 5, 6 and 11: small hostile requests are refused at once, with the right status.

Every bomb of ``qpumesh.wire.testing.BOMBS`` (a 2 KB circuit repeating a gate 1e5 or 1e9 times,
``sympy.Pow(3, 3e7)``, a ``4096 x 4096`` matrix gate, a tensor shape of ``1e5 x (2**32-1)``...)
goes to a real node server. The node must answer with the status and the words the bomb
names, well within a few seconds (the old node took 14 s to hours, gigabytes, or answered
INTERNAL / OK with inf), keep answering health checks and GetInfo meanwhile, and then answer a good
request correctly. The other tests cover what one request cannot show: abandoned work
stops (defect 4), the term cache stays bounded (6), and the coordinator's statuses (11).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cirq
import grpc
import numpy as np
import pytest
import sympy
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.client import NodeClient
from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.v1 import coordinator_pb2_grpc as cpb_grpc
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.status import MAX_DETAILS_BYTES
from qpumesh.wire.testing import BOMBS, Bomb, raw_stub, wide_batch

DEADLINE = 20.0
"""Seconds a bomb's answer may take here (the node refuses each in milliseconds; the machine is shared)."""

A, B = sympy.symbols("a b")
Q = cirq.LineQubit.range(2)
GOOD = cirq.Circuit(cirq.ry(A).on(Q[0]), cirq.ry(B).on(Q[1]), cirq.CNOT(Q[0], Q[1]))


def assert_answers_correctly(address: str) -> None:
    with NodeClient(address, timeout=30) as client:
        values = client.evaluate(GOOD, [cirq.Z(Q[1])], {"a": [0.3], "b": [0.0]})
    np.testing.assert_allclose(values, [[np.cos(0.3)]], atol=1e-12)


class HealthProbe(threading.Thread):
    """Asks for health and GetInfo in turn every 50 ms with a 1 s deadline; records every failure."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.checks = 0

    def run(self) -> None:
        with open_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            node = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
            while not self.stop.is_set():
                try:
                    if self.checks % 2:
                        node.GetInfo(pb.GetInfoRequest(), timeout=1.0)
                    else:
                        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    self.checks += 1
                except grpc.RpcError as error:
                    self.failures.append(error.code().name)
                self.stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


def send(address: str, method: str, request: Any) -> tuple[grpc.StatusCode, str]:
    with open_channel(address) as channel:
        stub = raw_stub(channel) if isinstance(request, bytes) else pb_grpc.QPUNodeStub(channel)
        try:
            getattr(stub, method)(request, timeout=DEADLINE)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("bomb", BOMBS, ids=[b.name for b in BOMBS])
def test_a_bomb_is_refused_at_once_and_the_node_stays_healthy(node_server: Any, bomb: Bomb) -> None:
    address, _ = node_server(max_qubits=20, **dict(bomb.node))
    assert_answers_correctly(address)  # compiled and warm
    method, request = bomb.build()  # before probing: building holds this process's GIL too
    with HealthProbe(address) as probe:
        code, details = send(address, method, request)
    assert code == bomb.code, details
    assert all(word in details.lower() for word in bomb.words), details
    assert len(details.encode()) <= MAX_DETAILS_BYTES
    assert probe.failures == []
    assert_answers_correctly(address)


def test_abandoned_work_stops_when_the_caller_gives_up(node_server: Any) -> None:
    # 20 qubits x 120 rows: allowed (within the cost budget) and seconds of work. The caller
    # gives up after 0.3 s; with one execution slot the next request runs only once the
    # abandoned one has stopped. (The old node finished it first: ~10x the next deadline.)
    address, _ = node_server(max_qubits=20, workers=1)
    assert_answers_correctly(address)
    _, request = wide_batch(qubits=20, rows=120)
    with open_channel(address) as channel:
        future = pb_grpc.QPUNodeStub(channel).Evaluate.future(request, timeout=0.3)
        with pytest.raises(grpc.RpcError) as gone:
            future.result()
    assert gone.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    start = time.monotonic()
    assert_answers_correctly(address)
    assert time.monotonic() - start < 5.0


def test_the_term_tables_kept_per_circuit_stay_bounded(node_server: Any) -> None:
    # Single precision runs the torch program, which tabulates one phase vector of 2**n
    # entries per measured term. Ten requests with ten different sets of 8 terms on 18
    # qubits used to keep ~300 MB for good; the cache now keeps at most TERM_CACHE_BYTES.
    import resource

    from qpumesh.node.limits import TERM_CACHE_BYTES

    n = 18
    address, _ = node_server(max_qubits=n, precision="single")
    qubits = cirq.LineQubit.range(n)
    circuit = cirq.Circuit(cirq.ry(A).on_each(*qubits))
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with NodeClient(address, timeout=60) as client:
        for k in range(10):
            observables = [cirq.Z(qubits[(k + j) % n]) * cirq.Z(qubits[(k + j + 1) % n]) for j in range(8)]
            values = client.evaluate(circuit, observables, {"a": [0.5]})
            np.testing.assert_allclose(values, np.cos(0.5) ** 2 * np.ones((1, 8)), atol=1e-3)  # float32
    grown_mb = (_current_rss_kb() - min(rss_kb, _current_rss_kb())) / 1024
    assert grown_mb < 100 + TERM_CACHE_BYTES / 2**20


def _current_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


# ----------------------------------------------------------------------- coordinator (defect 11)


def _coordinator_code(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


class _BytesChannel:
    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(method, _registered_method=True)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(method, _registered_method=True)


def test_the_coordinator_answers_malformed_and_oversized_inputs_with_the_right_status(
    coordinator_server: Any, tmp_path: Path
) -> None:
    address, _ = coordinator_server(in_process=True, data_root=tmp_path)
    with open_channel(address) as channel:
        raw = cpb_grpc.CoordinatorStub(_BytesChannel(channel))  # type: ignore[no-untyped-call]
        stub = cpb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        # Truncated bytes: INVALID_ARGUMENT, not INTERNAL.
        code, details = _coordinator_code(lambda: raw.GetJob(b"\x0a\xff\xff\x03ab", timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "protobuf" in details
        # A 100 KB job id is named in the answer, clipped: not "metadata size exceeds hard limit".
        code, details = _coordinator_code(
            lambda: stub.GetJob(cpb.GetJobRequest(job_id="j" * 100_000), timeout=10)
        )
        assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), details
        assert len(details.encode()) <= MAX_DETAILS_BYTES
        # A CSV that is not UTF-8: INVALID_ARGUMENT naming the encoding, not INTERNAL.
        csv = tmp_path / "latin1.csv"
        csv.write_bytes(b"value\n1.0\n2.0\n\xe9t\xe9\n" + b"3.0\n" * 20)
        spec = cpb.JobSpec(task="csv", csv_path=csv.name, epochs=1)  # under --data-root
        code, details = _coordinator_code(lambda: stub.SubmitJob(cpb.SubmitJobRequest(spec=spec), timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "utf-8" in details.lower(), details
        # Found by the hostile suite: a path the OS refuses, and a watch from past SQLite's integers.
        spec = cpb.JobSpec(task="csv", csv_path="x" * 10_000, epochs=1)
        code, details = _coordinator_code(lambda: stub.SubmitJob(cpb.SubmitJobRequest(spec=spec), timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "csv_path" in details, details
        job_id = stub.SubmitJob(cpb.SubmitJobRequest(spec=cpb.JobSpec(epochs=1)), timeout=10).job_id
        stub.CancelJob(cpb.CancelJobRequest(job_id=job_id), timeout=10)
        watch = cpb.WatchJobRequest(job_id=job_id, after_seq=2**64 - 1)
        assert list(stub.WatchJob(watch, timeout=10)) == []  # nothing after the last possible event
