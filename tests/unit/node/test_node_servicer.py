"""The servicer without a network: status mapping and the execution-slot queue."""

from __future__ import annotations

from typing import Any

import cirq
import grpc
import numpy as np
import pytest
import sympy

from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.server import QPUNodeServicer
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.circuits import WireCircuit
from qpumesh.wire.tensors import from_tensor, to_tensor


class AbortedError(Exception):
    pass


class FakeContext:
    """Just enough of grpc.ServicerContext: activity and abort."""

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise AbortedError(details)


WIRE = WireCircuit.from_cirq(cirq.Circuit(cirq.rx(sympy.Symbol("t")).on(cirq.LineQubit(0))))


def request(t: float) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(
        circuit=WIRE.to_proto(),
        observables=[pb.Observable(terms=[pb.PauliTerm(coefficient=1.0, paulis="Z")])],
        params=pb.ParameterBatch(symbols=["t"], values=to_tensor([[t]])),
    )


@pytest.fixture
def core() -> NodeCore:
    return NodeCore(NodeConfig(node_id="unit"))


def test_evaluate_answers_with_values_timings_and_engine(core: NodeCore) -> None:
    reply = QPUNodeServicer(core, workers=1).Evaluate(request(np.pi / 3), FakeContext())
    np.testing.assert_allclose(from_tensor(reply.expectations), [[0.5]], atol=1e-12)
    assert reply.backend == "batched"
    assert reply.timings.queue_seconds >= 0 and reply.timings.execute_seconds > 0
    assert not reply.HasField("standard_errors")


def test_a_caller_that_gave_up_while_queued_is_not_simulated(
    core: NodeCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(core, "evaluate", lambda *a, **k: calls.append(a))
    context = FakeContext(active=False)
    with pytest.raises(AbortedError):
        QPUNodeServicer(core, workers=1).Evaluate(request(0.1), context)
    assert context.code == grpc.StatusCode.CANCELLED
    assert "gave up" in context.details
    assert calls == []


def test_domain_errors_map_to_their_status_codes(core: NodeCore) -> None:
    servicer = QPUNodeServicer(core, workers=1)
    context = FakeContext()
    hash_only = request(0.1)
    hash_only.circuit.cirq_json = ""
    with pytest.raises(AbortedError):
        servicer.Evaluate(hash_only, context)
    assert context.code == grpc.StatusCode.NOT_FOUND
    bad_tensor = request(0.1)
    bad_tensor.params.values.data = b"\0"
    with pytest.raises(AbortedError):
        servicer.Evaluate(bad_tensor, context)
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details.startswith("params.values: shape [1, 1] needs 8 bytes")
