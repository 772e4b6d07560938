"""Hostile-input suite against a real node server: 1,000+ generated requests per run.

Requests come from ``hostile_requests.node_requests`` (valid requests mutated in one part:
circuit JSON, observables, parameters, scalar fields, hash, bytes; and the issue's bombs).
Properties, for every request:

* the answer is a status a client can act on -- never INTERNAL or UNKNOWN (a node bug), and
  never the deadline (every request is answered within ``DEADLINE`` seconds);
* an OK answer has the request's shape and finite values;

and after the suite the node is healthy and answers a good request with the right number.
The node runs with small limits (6 qubits, 64 rows, ``max_request_cost`` 2e8) so that
whatever it accepts is quick; the default limits are exercised by ``test_bounded_work.py``.
The status distribution of the run is printed at the end (``-s`` or the terminal summary).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import cirq
import grpc
import numpy as np
import pytest
import sympy
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hostile_requests import SUMMARY, node_requests
from hypothesis import HealthCheck, given, settings

from qpumesh.client import NodeClient
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig
from qpumesh.node.noise import NoiseConfig
from qpumesh.node.server import create_server
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.tensors import from_tensor
from qpumesh.wire.testing import raw_stub

DEADLINE = 20.0
"""Seconds every request gets; the node must answer each (the machine is shared, so generous)."""

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}

STATUSES: Counter[str] = Counter()

NODES = {
    "batched": {},
    "cirq": {"backend": "cirq"},
    "noisy": {"noise": NoiseConfig(depolarizing_1q=0.01, depolarizing_2q=0.02, readout_error=0.01)},
}
EXAMPLES = {"batched": 1000, "cirq": 100, "noisy": 100}


@pytest.fixture(scope="module")
def nodes() -> Iterator[dict[str, tuple[str, Any]]]:
    started = {}
    for name, fields in NODES.items():
        node = NodeConfig(
            node_id=f"hostile-{name}", max_qubits=6, max_batch_rows=64, max_request_cost=200_000_000, **fields
        )
        server, port = create_server(ServerConfig(node=node, host="127.0.0.1", port=0, workers=2))
        address = f"127.0.0.1:{port}"
        channel = open_channel(address)
        started[name] = (address, (server, channel, pb_grpc.QPUNodeStub(channel), raw_stub(channel)))  # type: ignore[no-untyped-call]
    yield started
    for _, (server, channel, _, _) in started.values():
        channel.close()
        server.stop(None)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    start = time.monotonic()
    yield
    total = sum(STATUSES.values())
    SUMMARY.append(
        f"hostile node requests: {total} in {time.monotonic() - start:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in STATUSES.most_common())
    )


def check(stubs: Any, method: str, request: Any) -> None:
    _, _, stub, raw = stubs
    call = getattr(raw if isinstance(request, bytes) else stub, method)
    try:
        reply = call(request, timeout=DEADLINE)
    except grpc.RpcError as error:
        code = error.code()
        STATUSES[code.name] += 1
        assert code not in FORBIDDEN, f"{method} answered {code.name}: {error.details()}"
        return
    STATUSES["OK"] += 1
    if isinstance(request, bytes):
        return
    rows = request.params.values.shape[0]
    n_obs = len(request.observables)
    if method == "Evaluate":
        values = from_tensor(reply.expectations)
        assert values.shape == (rows, n_obs)
    else:
        values = from_tensor(reply.jacobian)
        assert values.shape[0] == rows
    assert np.isfinite(values).all()


def assert_node_answers_correctly(address: str) -> None:
    a = sympy.Symbol("a")
    q = cirq.LineQubit(0)
    with open_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    with NodeClient(address, timeout=30) as client:
        values = client.evaluate(cirq.Circuit(cirq.ry(a).on(q)), [cirq.Z(q)], {"a": [0.7]})
    assert abs(values[0, 0] - np.cos(0.7)) < 1e-6  # noisy nodes: readout and depolarizing scale it


def suite(name: str) -> settings:
    return settings(
        max_examples=EXAMPLES[name], deadline=None, suppress_health_check=list(HealthCheck), database=None
    )


@suite("batched")
@given(node_requests())
def test_hostile_requests_to_the_batched_node(nodes: dict[str, Any], case: tuple[str, Any]) -> None:
    check(nodes["batched"][1], *case)


@suite("cirq")
@given(node_requests())
def test_hostile_requests_to_a_cirq_node(nodes: dict[str, Any], case: tuple[str, Any]) -> None:
    check(nodes["cirq"][1], *case)


@suite("noisy")
@given(node_requests())
def test_hostile_requests_to_a_noisy_node(nodes: dict[str, Any], case: tuple[str, Any]) -> None:
    check(nodes["noisy"][1], *case)


def test_every_node_still_answers_correctly_afterwards(nodes: dict[str, Any]) -> None:
    assert sum(STATUSES.values()) >= EXAMPLES["batched"]  # the suite ran first, in this module
    for name in ("batched", "cirq"):
        assert_node_answers_correctly(nodes[name][0])
    address = nodes["noisy"][0]
    with open_channel(address) as channel:
        stub = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
        info = stub.GetInfo(pb.GetInfoRequest(), timeout=5)
    assert info.noise.depolarizing_1q == 0.01
