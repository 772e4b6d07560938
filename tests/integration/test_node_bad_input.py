"""Bad requests get the right status code and a message saying what to fix; the node survives.

Each case sends one malformed request straight through the generated stub (the client
would refuse some of them before sending), checks the code and the message, then checks
that the same node still answers a good request correctly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cirq
import grpc
import numpy as np
import pytest
import sympy

from qpumesh.client import NodeClient, QpuMeshError
from qpumesh.node.core import NodeCore
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.circuits import WireCircuit, circuit_hash
from qpumesh.wire.tensors import from_tensor, to_tensor

QUBITS = cirq.LineQubit.range(4)
Q0, Q1 = QUBITS[:2]
A, B = sympy.symbols("a b")
GOOD_CIRCUIT = cirq.Circuit(cirq.ry(A).on(Q0), cirq.ry(B).on(Q1), cirq.CNOT(Q0, Q1))
GOOD = WireCircuit.from_cirq(GOOD_CIRCUIT)
MAX_QUBITS = 3
MAX_BATCH_ROWS = 50
MAX_MESSAGE_BYTES = 64 * 1024
PYTHON_ONLY = ("np.", "Error:", "JSONDecode", "hashlib", "π)", "{'", "Traceback")


def observable(paulis: str = "ZI", coefficient: float = 1.0) -> pb.Observable:
    return pb.Observable(terms=[pb.PauliTerm(coefficient=coefficient, paulis=paulis)])


def params(values: Any, symbols: tuple[str, ...] = ("a", "b")) -> pb.ParameterBatch:
    return pb.ParameterBatch(symbols=list(symbols), values=to_tensor(np.asarray(values, dtype=float)))


def evaluate(circuit: WireCircuit = GOOD, **fields: Any) -> pb.EvaluateRequest:
    fields.setdefault("observables", [observable()])
    fields.setdefault("params", params([[0.3, 0.4]]))
    return pb.EvaluateRequest(circuit=circuit.to_proto(), **fields)


def gradient(**fields: Any) -> pb.ShiftGradientRequest:
    fields.setdefault("observables", [observable()])
    fields.setdefault("params", params([[0.3, 0.4]]))
    return pb.ShiftGradientRequest(circuit=GOOD.to_proto(), **fields)


def json_circuit(text: str) -> WireCircuit:
    return WireCircuit(cirq_json=text, hash=circuit_hash(text), qubits=())


def circuit_of(*operations: cirq.Operation) -> WireCircuit:
    return WireCircuit.from_cirq(cirq.Circuit(*operations))


@dataclass(frozen=True)
class Bad:
    """One bad request: how to build it, the status it must get, words its message must hold."""

    build: Callable[[], Any]
    code: grpc.StatusCode
    words: tuple[str, ...]
    method: str = "Evaluate"


INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
ZEROS = pb.Tensor(shape=[2, 2], data=b"\0" * 24)
TOO_WIDE = (cirq.ry(A).on(QUBITS[0]), cirq.ry(B).on(QUBITS[1]), cirq.CNOT(QUBITS[2], QUBITS[3]))
CASES: dict[str, Bad] = {
    "malformed circuit json": Bad(lambda: evaluate(json_circuit("{not json")), INVALID, ("json",)),
    "json that is not a circuit": Bad(
        lambda: evaluate(json_circuit(cirq.to_json(cirq.X))), INVALID, ("circuit",)
    ),
    "unsupported gate": Bad(
        lambda: evaluate(circuit_of(cirq.qft(Q0, Q1), cirq.ry(A).on(Q0), cirq.ry(B).on(Q1))),
        INVALID,
        ("unsupported",),
    ),
    "measurement in the circuit": Bad(
        lambda: evaluate(circuit_of(cirq.ry(A).on(Q0), cirq.ry(B).on(Q1), cirq.measure(Q0))),
        INVALID,
        ("measurement",),
    ),
    "more qubits than the node has": Bad(
        lambda: evaluate(circuit_of(*TOO_WIDE), observables=[observable("ZIII")]),
        INVALID,
        ("4 qubits", str(MAX_QUBITS)),
    ),
    "NaN parameter": Bad(lambda: evaluate(params=params([[np.nan, 0.1]])), INVALID, ("finite",)),
    "infinite parameter": Bad(lambda: evaluate(params=params([[0.1, np.inf]])), INVALID, ("finite",)),
    "tensor bytes do not match its shape": Bad(
        lambda: evaluate(params=pb.ParameterBatch(symbols=["a", "b"], values=ZEROS)),
        INVALID,
        ("params.values", "32 bytes"),
    ),
    "more columns than symbols": Bad(
        lambda: evaluate(params=params([[0.1, 0.2, 0.3]])), INVALID, ("column",)
    ),
    "one-dimensional values": Bad(lambda: evaluate(params=params([0.1, 0.2])), INVALID, ("rows",)),
    "unknown symbol": Bad(
        lambda: evaluate(params=params([[0.1, 0.2, 0.3]], ("a", "b", "zeta"))), INVALID, ("zeta",)
    ),
    "missing symbol": Bad(lambda: evaluate(params=params([[0.1]], ("a",))), INVALID, ('"b"',)),
    "repeated symbol": Bad(lambda: evaluate(params=params([[0.1, 0.2]], ("a", "a"))), INVALID, ('"a"',)),
    "unknown hash": Bad(
        lambda: pb.EvaluateRequest(
            circuit=pb.Circuit(hash="ab" * 32), observables=[observable()], params=params([[0.1, 0.2]])
        ),
        grpc.StatusCode.NOT_FOUND,
        ("abababab",),
    ),
    "hash does not match the json": Bad(
        lambda: pb.EvaluateRequest(
            circuit=pb.Circuit(hash="cd" * 32, cirq_json=GOOD.cirq_json),
            observables=[observable()],
            params=params([[0.1, 0.2]]),
        ),
        INVALID,
        ("circuit.hash", "is not the SHA-256 of circuit.cirq_json"),
    ),
    "an empty request": Bad(pb.EvaluateRequest, INVALID, ("circuit.hash: missing",)),
    "an empty gradient request": Bad(
        pb.ShiftGradientRequest, INVALID, ("circuit.hash: missing",), "ShiftGradient"
    ),
    "no parameter values": Bad(
        lambda: pb.EvaluateRequest(circuit=GOOD.to_proto(), observables=[observable()]),
        INVALID,
        ("params.values: missing", "float64"),
    ),
    "an angle that is not finite": Bad(
        lambda: evaluate(
            circuit=WireCircuit.from_cirq(cirq.Circuit(cirq.ry(A**0.5 / sympy.pi).on(Q0), cirq.ry(B).on(Q1))),
            params=params([[-1.0, 0.1]]),
        ),
        INVALID,
        ("Ry on q(0) (angle a**0.5/pi rad)", "for a = -1"),
    ),
    "missing hash": Bad(
        lambda: pb.EvaluateRequest(
            circuit=pb.Circuit(cirq_json=GOOD.cirq_json),
            observables=[observable()],
            params=params([[0.1, 0.2]]),
        ),
        INVALID,
        ("hash",),
    ),
    "pauli string of the wrong length": Bad(
        lambda: evaluate(observables=[observable("ZIZ")]), INVALID, ("ZIZ",)
    ),
    "not a pauli letter": Bad(lambda: evaluate(observables=[observable("ZQ")]), INVALID, ("ZQ",)),
    "no observables": Bad(lambda: evaluate(observables=[]), INVALID, ("observable",)),
    "too many rows": Bad(
        lambda: evaluate(params=params(np.zeros((MAX_BATCH_ROWS + 1, 2)))),
        EXHAUSTED,
        (str(MAX_BATCH_ROWS + 1), str(MAX_BATCH_ROWS)),
    ),
    "reply over the message limit": Bad(
        lambda: gradient(observables=[observable()] * 100, params=params(np.zeros((MAX_BATCH_ROWS, 2)))),
        EXHAUSTED,
        ("reply", str(MAX_MESSAGE_BYTES)),
        method="ShiftGradient",
    ),
    "gradient by an unknown symbol": Bad(lambda: gradient(wrt=["zeta"]), INVALID, ("zeta",), "ShiftGradient"),
    "cotangents of the wrong shape": Bad(
        lambda: gradient(cotangents=to_tensor(np.ones((1, 3)))), INVALID, ("cotangents",), "ShiftGradient"
    ),
    "cotangent bytes do not match the shape": Bad(
        lambda: gradient(cotangents=pb.Tensor(shape=[1, 1], data=b"")),
        INVALID,
        ("cotangents", "8 bytes"),
        "ShiftGradient",
    ),
}


@pytest.fixture
def node(node_server: Any) -> str:
    address, _ = node_server(
        backend="batched",
        max_qubits=MAX_QUBITS,
        max_batch_rows=MAX_BATCH_ROWS,
        max_message_bytes=MAX_MESSAGE_BYTES,
    )
    return str(address)


def assert_still_serving(address: str) -> None:
    """The node answers a good request, with the right numbers."""
    with open_channel(address) as channel:
        reply = pb_grpc.QPUNodeStub(channel).Evaluate(
            evaluate(
                observables=[observable("ZI"), observable("IZ")], params=params([[np.pi, 0.0], [0.0, 0.0]])
            ),
            timeout=30,
        )
    np.testing.assert_allclose(from_tensor(reply.expectations), [[-1.0, -1.0], [1.0, 1.0]], atol=1e-9)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_bad_request_gets_its_status_and_a_useful_message(node: str, case: Bad) -> None:
    with open_channel(node) as channel:
        call = getattr(pb_grpc.QPUNodeStub(channel), case.method)
        with pytest.raises(grpc.RpcError) as caught:
            call(case.build(), timeout=30)
    error = caught.value
    assert error.code() == case.code, error.details()
    details = error.details() or ""
    for word in case.words:
        assert word.lower() in details.lower(), f"{word!r} not in {details!r}"
    # Foreign clients read these: no Python reprs, exception type names or Python advice.
    for python in PYTHON_ONLY:
        assert python not in details, f"{python!r} in {details!r}"
    assert_still_serving(node)


def test_a_message_over_the_size_limit_is_refused_by_grpc_itself(node: str) -> None:
    rows = MAX_MESSAGE_BYTES // 16 + 1  # two float64 columns: just over the limit
    request = evaluate(params=params(np.zeros((rows, 2))))
    assert request.ByteSize() > MAX_MESSAGE_BYTES
    with NodeClient(node) as client, pytest.raises(QpuMeshError) as caught:
        client.evaluate(GOOD_CIRCUIT, [cirq.Z(Q0)], {"a": np.zeros(rows), "b": 0.0})
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in caught.value.details
    assert_still_serving(node)


def test_the_client_surfaces_a_refusal_as_a_qpumesh_error_with_code_and_message(node: str) -> None:
    with NodeClient(node) as client, pytest.raises(QpuMeshError) as caught:
        client.evaluate(GOOD_CIRCUIT, [cirq.Z(Q0)], {"a": 0.1})
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert '"b"' in caught.value.details
    assert str(caught.value).startswith("INVALID_ARGUMENT: ")


def test_the_largest_shot_count_the_wire_carries_is_served(node: str) -> None:
    # Shot noise is sampled binomially per term, so the cost does not grow with shots.
    with open_channel(node) as channel:
        reply = pb_grpc.QPUNodeStub(channel).Evaluate(evaluate(shots=2**32 - 1, seed=3), timeout=30)
    np.testing.assert_allclose(from_tensor(reply.expectations), [[np.cos(0.3)]], atol=1e-3)
    assert from_tensor(reply.standard_errors)[0, 0] < 1e-4


def test_the_client_refuses_negative_shots_before_sending(node: str) -> None:
    with NodeClient(node) as client, pytest.raises(ValueError, match="shots must be in"):
        client.evaluate(GOOD_CIRCUIT, [cirq.Z(Q0)], {"a": 0.1, "b": 0.2}, shots=-1)


def test_an_unexpected_failure_is_internal_and_the_node_keeps_serving(
    node: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine exploded")

    with monkeypatch.context() as patch:
        patch.setattr(NodeCore, "evaluate", broken)
        with open_channel(node) as channel, pytest.raises(grpc.RpcError) as caught:
            pb_grpc.QPUNodeStub(channel).Evaluate(evaluate(), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    details = caught.value.details() or ""
    assert "internal error (incident" in details and "exploded" not in details  # no internals leak
    assert any("Evaluate failed unexpectedly" in r.getMessage() and r.exc_info for r in caplog.records)
    assert_still_serving(node)
