"""A node answers health checks and GetInfo within 1 s while it serves the worst request it allows.

Issue 9, defect 5: work that holds the GIL (parsing, sympy, big-integer arithmetic) used to
starve the node's other threads for seconds. Here a real node process (``LocalMesh``, default
limits, one execution slot) gets, one at a time, the heaviest requests its limits let in --
a simulation near ``max_request_cost``, the largest circuit JSON it compiles, the most
protobuf fields it parses, a 60 MB parameter tensor, expressions near the expansion bound --
and a separate process asks for health and GetInfo every 50 ms with a 1 s deadline while
each runs (then the request is cancelled, and the node must answer a good request next).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from typing import Any

import cirq
import grpc
import numpy as np
import pytest
import sympy
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.client import NodeClient
from qpumesh.client.local_mesh import LocalMesh
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.circuits import WireCircuit
from qpumesh.wire.tensors import to_tensor

WATCH_SECONDS = 3.0
"""How long health is watched during each request (then the request is cancelled)."""


def probe(address: str, seconds: float, results: Any) -> None:
    """Ask for health and GetInfo alternately every 50 ms for `seconds`; report the slowest and misses."""
    slowest, misses, answered = 0.0, [], 0
    with open_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        node = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
        health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        results.put("ready")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            try:
                if answered % 2:
                    node.GetInfo(pb.GetInfoRequest(), timeout=1.0)
                else:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                answered += 1
            except grpc.RpcError as error:
                misses.append(error.code().name)
            slowest = max(slowest, time.perf_counter() - start)
            time.sleep(0.05)
    results.put((slowest, misses, answered))


def circuit_request(
    circuit: cirq.Circuit, symbols: list[str], rows: int, terms: list[str]
) -> pb.EvaluateRequest:
    wire = WireCircuit.from_cirq(circuit)
    values = np.random.default_rng(0).uniform(-1, 1, (rows, len(symbols)))
    return pb.EvaluateRequest(
        circuit=wire.to_proto(),
        observables=[pb.Observable(terms=[pb.PauliTerm(coefficient=1.0, paulis=t)]) for t in terms],
        params=pb.ParameterBatch(symbols=symbols, values=to_tensor(values)),
    )


def costly_simulation() -> pb.EvaluateRequest:
    """20 qubits, ~80 gates, 100 rows: ~9e9 of the 1e10 amplitude operations allowed."""
    q = cirq.LineQubit.range(20)
    a, b = sympy.symbols("a b")
    ops = [cirq.ry(a).on(x) for x in q] + [cirq.CNOT(q[i], q[i + 1]) for i in range(19)]
    ops += [cirq.rz(b).on(x) for x in q] + [cirq.CNOT(q[i + 1], q[i]) for i in range(19)]
    return circuit_request(cirq.Circuit(ops), ["a", "b"], 100, ["Z" + "I" * 19])


def largest_circuit() -> pb.EvaluateRequest:
    """~8400 operations (3.8 MB of JSON, under max_circuit_bytes): seconds of Cirq and sympy."""
    q = cirq.LineQubit.range(4)
    names = [f"w{k}" for k in range(50)]
    ops = []
    for k in range(4200):
        ops += [cirq.ry(sympy.Symbol(names[k % 50])).on(q[k % 4]), cirq.CNOT(q[k % 4], q[(k + 1) % 4])]
    return circuit_request(cirq.Circuit(ops), names, 1, ["ZIII"])


def expanded_angles() -> pb.EvaluateRequest:
    """Gate angles ``(a + b + c + 1)**16`` (969 terms each), as many as the compile budget allows."""
    a, b, c = sympy.symbols("a b c")
    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.ry((a + b + c + 1) ** 16).on(q[k % 2]) for k in range(40))
    return circuit_request(circuit, ["a", "b", "c"], 1, ["ZI"])


def most_fields() -> pb.EvaluateRequest:
    """Just under 100 000 protobuf fields: 24 000 one-term observables."""
    request = circuit_request(cirq.Circuit(cirq.ry(sympy.Symbol("a")).on(cirq.LineQubit(0))), ["a"], 1, [])
    request.observables.extend(
        pb.Observable(terms=[pb.PauliTerm(coefficient=1.0, paulis="Z")]) for _ in range(24_000)
    )
    return request


def largest_tensor() -> pb.EvaluateRequest:
    """60 MB of parameters (100 000 rows x 75 symbols), near the 64 MiB message limit."""
    names = [f"s{k}" for k in range(75)]
    q = cirq.LineQubit.range(3)
    circuit = cirq.Circuit(cirq.ry(sympy.Symbol(name)).on(q[k % 3]) for k, name in enumerate(names))
    return circuit_request(circuit, names, 100_000, ["ZII"])


REQUESTS: dict[str, Callable[[], pb.EvaluateRequest]] = {
    "simulation near max_request_cost": costly_simulation,
    "largest circuit JSON": largest_circuit,
    "expressions near the expansion bound": expanded_angles,
    "most protobuf fields": most_fields,
    "60 MB tensor": largest_tensor,
}


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    with LocalMesh(1, coordinator=False, tls=False) as mesh:  # plaintext: the probes time the node, not TLS
        yield mesh.node_addresses[0]


def watch(node: str, request: pb.EvaluateRequest) -> tuple[float, list[str], int]:
    """Probe health and GetInfo from another process while `request` runs; then cancel it.

    Returns:
        The slowest answer (s), the deadline misses, and the answers.
    """
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    watcher = context.Process(target=probe, args=(node, WATCH_SECONDS, results), daemon=True)
    watcher.start()
    assert results.get(timeout=120) == "ready"
    with open_channel(node) as channel:
        call = pb_grpc.QPUNodeStub(channel).Evaluate.future(request, timeout=120)  # type: ignore[no-untyped-call]
        slowest, misses, answered = results.get(timeout=120)
        watcher.join()
        call.cancel()
    return slowest, misses, answered


@pytest.mark.parametrize("name", list(REQUESTS))
def test_health_and_get_info_answer_within_a_second_during_the_worst_allowed_request(
    node: str, name: str
) -> None:
    request = REQUESTS[name]()  # built here: building must not delay the probe
    # Measured twice at most: on a machine shared with other test runs a load spike can
    # delay one answer past 1 s; a node that holds its GIL (the old node: 4-20 s per request)
    # misses every time.
    for _ in range(2):
        slowest, misses, answered = watch(node, request)
        if not misses and answered >= 10 and slowest < 1.0:
            break
    assert misses == [], f"{name}: health/GetInfo missed the 1 s deadline twice: {misses}"
    assert answered >= 10 and slowest < 1.0, (name, slowest, answered)
    a = sympy.Symbol("a")
    q0 = cirq.LineQubit(0)
    with NodeClient(node, timeout=60) as client:  # the cancelled request does not hold the node
        values = client.evaluate(cirq.Circuit(cirq.ry(a).on(q0)), [cirq.Z(q0)], {"a": [0.4]})
    assert abs(values[0, 0] - np.cos(0.4)) < 1e-12
