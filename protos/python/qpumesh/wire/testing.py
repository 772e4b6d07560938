"""Hostile node requests: small messages that used to cost a node minutes, gigabytes or its health.

Each `Bomb` is a complete ``Evaluate`` or ``ShiftGradient`` request (or raw bytes) and the
status a node must answer it with, quickly and without running the work. They are shared by
the regression tests of issue 9 (defects 4, 5, 6 and 11), the hostile-input suite,
``benchmarks/bombs.py`` (time and memory before/after) and the oversized part of
``benchmarks/load.py``. Sizes are the issue's: a 2 KB circuit with ``repetitions=1e5``, a tensor
shape of ``1e5 x (2**32-1)`` in ~500 KB, ``sympy.Pow(3, 3e7)`` in a few hundred bytes...

The circuits are written as Cirq JSON text by hand where Cirq itself would refuse to build
the object (or would take the very time the node must not spend).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.circuits import circuit_hash
from qpumesh.wire.tensors import to_tensor

__all__ = ["BOMBS", "Bomb", "circuit_json", "gate_op", "pauli", "raw_stub", "request_for"]

Message = pb.EvaluateRequest | pb.ShiftGradientRequest


@dataclass(frozen=True)
class Bomb:
    """One hostile request and how a node must answer it.

    Attributes:
        name: Short name (the issue's wording).
        defect: The issue's defect number it reproduces.
        build: Returns ``(method, request)``: ``"Evaluate"`` or ``"ShiftGradient"`` and the
            message (or raw bytes for a malformed message).
        code: The status the node must answer.
        words: Lower-case words the status message must contain (which limit, how to fix).
        node: Node settings the bomb needs (``NodeConfig`` fields), e.g. single precision,
            whose torch engine tabulates terms.
    """

    name: str
    defect: int
    build: Callable[[], tuple[str, Message | bytes]]
    code: grpc.StatusCode
    words: tuple[str, ...]
    node: tuple[tuple[str, Any], ...] = ()


def qubit(x: int) -> dict[str, Any]:
    """Return the JSON of ``cirq.LineQubit(x)``."""
    return {"cirq_type": "LineQubit", "x": x}


def symbol(name: str) -> dict[str, Any]:
    """Return the JSON of ``sympy.Symbol(name)``."""
    return {"cirq_type": "sympy.Symbol", "name": name}


def integer(i: int) -> dict[str, Any]:
    """Return the JSON of ``sympy.Integer(i)``."""
    return {"cirq_type": "sympy.Integer", "i": i}


def gate_op(gate: dict[str, Any], *qubits: int) -> dict[str, Any]:
    """Return the JSON of ``gate.on(*LineQubit(q) for q in qubits)``."""
    return {"cirq_type": "GateOperation", "gate": gate, "qubits": [qubit(q) for q in qubits]}


def ry(angle: Any) -> dict[str, Any]:
    """Return the JSON of ``cirq.ry(angle)`` (``angle`` a number or an expression's JSON)."""
    return {"cirq_type": "Ry", "rads": angle}


def x_pow(exponent: Any) -> dict[str, Any]:
    """Return the JSON of ``cirq.X ** exponent``."""
    return {"cirq_type": "XPowGate", "exponent": exponent, "global_shift": 0.0}


def circuit_json(*moments: list[dict[str, Any]], kind: str = "Circuit") -> dict[str, Any]:
    """Return the JSON of a circuit whose moments hold the given operations."""
    return {
        "cirq_type": kind,
        "moments": [{"cirq_type": "Moment", "operations": list(ops)} for ops in moments],
    }


def circuit_operation(circuit: dict[str, Any], repetitions: int) -> dict[str, Any]:
    """Return the JSON of ``cirq.CircuitOperation(circuit, repetitions=repetitions)``."""
    return {
        "cirq_type": "CircuitOperation",
        "circuit": circuit,
        "repetitions": repetitions,
        "qubit_map": [],
        "measurement_key_map": {},
        "param_resolver": {"cirq_type": "ParamResolver", "param_dict": []},
        "repetition_ids": None,
        "use_repetition_ids": False,
        "parent_path": [],
    }


def pauli(paulis: str, coefficient: float = 1.0) -> pb.Observable:
    """Return one observable of one Pauli term."""
    return pb.Observable(terms=[pb.PauliTerm(coefficient=coefficient, paulis=paulis)])


def request_for(
    text: str,
    symbols: tuple[str, ...] = ("a",),
    rows: int = 1,
    observables: list[pb.Observable] | None = None,
    method: str = "Evaluate",
) -> tuple[str, Message]:
    """Return an ``Evaluate`` (or ``ShiftGradient``) request for the circuit JSON `text`.

    Observables default to Z on the first of one qubit; `rows` rows of zeros.
    """
    values = to_tensor(np.zeros((rows, len(symbols))))
    fields: dict[str, Any] = {
        "circuit": pb.Circuit(hash=circuit_hash(text), cirq_json=text),
        "observables": observables if observables is not None else [pauli("Z")],
        "params": pb.ParameterBatch(symbols=list(symbols), values=values),
    }
    if method == "Evaluate":
        return method, pb.EvaluateRequest(**fields)
    return method, pb.ShiftGradientRequest(**fields)


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def repetitions(count: int) -> tuple[str, Message]:
    """Build a ~1 KB circuit: one RY(a) repeated `count` times by a ``CircuitOperation``."""
    inner = {
        "cirq_type": "VAL",
        "key": 0,
        "val": circuit_json([gate_op(ry(symbol("a")), 0)], kind="FrozenCircuit"),
    }
    return request_for(_dumps(circuit_json([circuit_operation(inner, count)])))


def nested_repetitions(levels: int = 3, count: int = 1000) -> tuple[str, Message]:
    """``CircuitOperation``s nested `levels` deep, each repeating the one below `count` times."""
    body: dict[str, Any] = circuit_json([gate_op(ry(symbol("a")), 0)], kind="FrozenCircuit")
    for level in range(levels):
        body = circuit_json(
            [circuit_operation({"cirq_type": "VAL", "key": level, "val": body}, count)], kind="FrozenCircuit"
        )
    body["cirq_type"] = "Circuit"
    return request_for(_dumps(body))


def moments(count: int) -> tuple[str, Message]:
    """`count` moments alternating an X gate and RY(a) on one qubit (the old scheduler's worst case)."""
    fixed, rotation = gate_op(x_pow(1.0), 0), gate_op(ry(symbol("a")), 0)
    text = _dumps(circuit_json(*([fixed if k % 2 else rotation] for k in range(count))))
    return request_for(text)


def wide_batch(qubits: int = 20, rows: int = 3000) -> tuple[str, Message]:
    """RY(a) on each of `qubits` qubits and a CNOT ladder, for `rows` parameter rows."""
    ops = [gate_op(ry(symbol("a")), q) for q in range(qubits)]
    ladder = [
        gate_op({"cirq_type": "CXPowGate", "exponent": 1.0, "global_shift": 0.0}, q, q + 1)
        for q in range(qubits - 1)
    ]
    text = _dumps(circuit_json(ops, *([op] for op in ladder)))
    return request_for(text, rows=rows, observables=[pauli("Z" + "I" * (qubits - 1))])


def tensor_shape(dims: int = 100_000) -> tuple[str, Message]:
    """Build a parameter tensor whose shape is `dims` entries of ``2**32 - 1`` (~5 bytes each)."""
    method, request = repetitions(1)
    assert isinstance(request, pb.EvaluateRequest)
    request.params.values.CopyFrom(pb.Tensor(shape=[2**32 - 1] * dims, data=b""))
    return method, request


def sympy_power(base: int = 3, exponent: int = 30_000_000) -> tuple[str, Message]:
    """Build an X gate whose exponent is ``a * sympy.Pow(base, exponent)`` (~400 bytes of JSON)."""
    power = {"cirq_type": "sympy.Pow", "args": [integer(base), integer(exponent)]}
    gate = x_pow({"cirq_type": "sympy.Mul", "args": [symbol("a"), power]})
    return request_for(_dumps(circuit_json([gate_op(gate, 0)])))


def sympy_expansion(exponent: int = 40) -> tuple[str, Message]:
    """Build an RY gate whose angle is ``(a + b + c + 1) ** exponent`` (sympy.expand takes seconds)."""
    total = {"cirq_type": "sympy.Add", "args": [integer(1), symbol("a"), symbol("b"), symbol("c")]}
    angle = {"cirq_type": "sympy.Pow", "args": [total, integer(exponent)]}
    return request_for(_dumps(circuit_json([gate_op(ry(angle), 0)])), symbols=("a", "b", "c"))


def z_strings(terms: int = 120, qubits: int = 20) -> tuple[str, Message]:
    """`terms` distinct weighted Z strings on a `qubits`-qubit circuit, as one observable each."""
    method, request = wide_batch(qubits, rows=1)
    assert isinstance(request, pb.EvaluateRequest)
    del request.observables[:]
    for t in range(terms):
        bits = format(t + 1, f"0{qubits}b")[-qubits:]
        request.observables.append(pauli("".join("Z" if b == "1" else "I" for b in bits)))
    return method, request


def matrix_gate(size: int = 4096) -> tuple[str, Message]:
    """Build a ``size x size`` ``cirq.MatrixGate`` (the identity), written with bare numbers."""
    k = max(1, size.bit_length() - 1)
    rows = ",".join("[" + ",".join("1" if i == j else "0" for j in range(size)) + "]" for i in range(size))
    gate = '{"cirq_type":"MatrixGate","matrix":[' + rows + '],"qid_shape":[' + ",".join(["2"] * k) + "]}"
    qubits = ",".join(json.dumps(qubit(q)) for q in range(k))
    op = '{"cirq_type":"GateOperation","gate":' + gate + ',"qubits":[' + qubits + "]}"
    ry_op = _dumps(gate_op(ry(symbol("a")), 0))
    text = '{"cirq_type":"Circuit","moments":[{"cirq_type":"Moment","operations":[' + ry_op + "]},"
    text += '{"cirq_type":"Moment","operations":[' + op + "]}]}"
    return request_for(text, observables=[pauli("Z" * k)])


def long_symbol(length: int = 1 << 20) -> tuple[str, Message]:
    """Build a parameter batch naming a symbol of `length` characters (echoed in the error)."""
    method, request = repetitions(1)
    assert isinstance(request, pb.EvaluateRequest)
    request.params.symbols[:] = ["s" * length]
    return method, request


def overflowing_observable() -> tuple[str, Message]:
    """``1e308·Z + 1e308·Z``: each coefficient finite, the observable not."""
    method, request = repetitions(1)
    assert isinstance(request, pb.EvaluateRequest)
    del request.observables[:]
    request.observables.append(
        pb.Observable(
            terms=[pb.PauliTerm(coefficient=1e308, paulis="Z"), pb.PauliTerm(coefficient=1e308, paulis="Z")]
        )
    )
    return method, request


def malformed() -> tuple[str, bytes]:
    """Bytes that are no protobuf message: a field header promising more bytes than follow."""
    return "Evaluate", b"\x0a\xff\xff\xff\x0f" + b"\x00" * 8


def non_utf8() -> tuple[str, bytes]:
    """Build a well-formed Evaluate request whose symbol name (a protobuf string) is not UTF-8."""
    method, request = repetitions(1)
    assert isinstance(request, pb.EvaluateRequest)
    request.params.symbols[:] = ["QqQq"]
    raw = request.SerializeToString()
    invalid = raw.replace(b"QqQq", b"Q\xffQ\xfe")  # same length: only the string is wrong
    assert invalid.count(b"\xff\x51\xfe") == 1
    return method, invalid


BOMBS: tuple[Bomb, ...] = (
    Bomb(
        "CircuitOperation repetitions=1e5",
        4,
        lambda: repetitions(100_000),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("operations",),
    ),
    Bomb(
        "nested CircuitOperations 1000^3",
        4,
        nested_repetitions,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("operations",),
    ),
    Bomb("1e5 moments", 4, lambda: moments(100_000), grpc.StatusCode.RESOURCE_EXHAUSTED, ("circuit",)),
    Bomb(
        "20 qubits x 3000 rows",
        4,
        wide_batch,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("max_request_cost", "split"),
    ),
    Bomb("tensor shape 1e5 x (2^32-1)", 5, tensor_shape, grpc.StatusCode.RESOURCE_EXHAUSTED, ("fields",)),
    Bomb(
        "tensor shape 5e4 x (2^32-1)",
        5,
        lambda: tensor_shape(50_000),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("dimensions",),
    ),
    Bomb("sympy.Pow(3, 3e7)", 5, sympy_power, grpc.StatusCode.INVALID_ARGUMENT, ("exponent",)),
    Bomb("(a+b+c+1)**40", 5, sympy_expansion, grpc.StatusCode.INVALID_ARGUMENT, ("exponent",)),
    Bomb(
        "120 Z strings on 20 qubits (single precision)",
        6,
        z_strings,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("terms",),
        node=(("precision", "single"),),
    ),
    Bomb(
        "CircuitOperation repetitions=1e9",
        6,
        lambda: repetitions(10**9),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("operations",),
    ),
    Bomb("4096x4096 MatrixGate", 6, matrix_gate, grpc.StatusCode.RESOURCE_EXHAUSTED, ("circuit",)),
    Bomb("malformed protobuf", 11, malformed, grpc.StatusCode.INVALID_ARGUMENT, ("protobuf",)),
    Bomb("1 MB symbol name", 11, long_symbol, grpc.StatusCode.INVALID_ARGUMENT, ("symbol",)),
    Bomb("1e308 Z + 1e308 Z", 11, overflowing_observable, grpc.StatusCode.INVALID_ARGUMENT, ("finite",)),
    Bomb("string field not UTF-8", 11, non_utf8, grpc.StatusCode.INVALID_ARGUMENT, ("protobuf",)),
)
"""Every hostile request of issue 9 that a single node call reproduces."""


class _BytesChannel:
    """A channel whose multicallables send and return bytes (no (de)serializers)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        registered = kwargs.get("_registered_method", False)
        return self._channel.unary_unary(method, _registered_method=registered)  # type: ignore[call-arg]


def raw_stub(channel: grpc.Channel) -> Any:
    """Return a ``QPUNodeStub`` on `channel` that sends and returns raw bytes (for malformed messages).

    The method paths still come from the generated stub: it is built on a channel wrapper
    whose multicallables drop the (de)serializers.
    """
    from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc

    return pb_grpc.QPUNodeStub(_BytesChannel(channel))  # type: ignore[no-untyped-call]
