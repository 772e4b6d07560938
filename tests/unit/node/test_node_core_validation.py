"""Bad requests fail with the right error and a message that says what to fix; the node lives on."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import cirq
import numpy as np
import pytest
import sympy
from node_engine_helpers import as_request, cirq_reference

from qpumesh.node.circuits import SUPPORTED_GATES
from qpumesh.node.core import (
    InvalidRequest,
    LimitExceeded,
    NodeConfig,
    NodeCore,
    NodeError,
    UnknownCircuit,
)
from qpumesh.node.noise import NoiseConfig

A, B = sympy.symbols("a b")
Q = cirq.LineQubit.range(2)
CIRCUIT = cirq.Circuit(cirq.H(Q[0]), cirq.rx(A).on(Q[0]), cirq.CNOT(*Q), cirq.ry(B).on(Q[1]))
HASH, JSON = as_request(CIRCUIT)
SYMBOLS = ["a", "b"]
OBS = [[(1.0, "ZI")], [(0.5, "ZZ"), (0.2, "XY")]]
VALUES = np.array([[0.1, 0.2], [0.3, -0.4]])

GOOD: dict[str, Any] = {
    "circuit_hash": HASH,
    "cirq_json": JSON,
    "observables": OBS,
    "symbols": SYMBOLS,
    "values": VALUES,
}


def assert_still_works(core: NodeCore) -> None:
    result = core.evaluate(**GOOD)
    np.testing.assert_allclose(result.expectations, cirq_reference(CIRCUIT, OBS, SYMBOLS, VALUES), atol=1e-12)
    grad = core.shift_gradient(**GOOD)
    assert grad.jacobian.shape == (2, 2, 2)


def json_of(circuit: cirq.Circuit) -> dict[str, Any]:
    circuit_hash, text = as_request(circuit)
    return {"circuit_hash": circuit_hash, "cirq_json": text}


EVALUATE_CASES: list[tuple[str, dict[str, Any], type[NodeError], str]] = [
    ("values 1-D", {"values": np.array([0.1, 0.2])}, InvalidRequest, r"shape \(rows, 2\).*got shape \[2\]"),
    (
        "wrong columns",
        {"values": np.zeros((3, 3))},
        InvalidRequest,
        r'shape \(rows, 2\).*\["a", "b"\].*\[3, 3\]',
    ),
    (
        "NaN",
        {"values": np.array([[0.1, np.nan]])},
        InvalidRequest,
        r'params.values row 0, column 1 \(symbol "b"\) is nan; every parameter must be a finite number',
    ),
    ("inf", {"values": np.array([[np.inf, 0.0]])}, InvalidRequest, r'row 0, column 0 \(symbol "a"\) is inf'),
    ("not numeric", {"values": [["x", "y"]]}, InvalidRequest, "numeric"),
    ("duplicate symbol", {"symbols": ["a", "a"]}, InvalidRequest, 'duplicate symbol "a"'),
    (
        "unknown symbol",
        {"symbols": ["a", "foo"]},
        InvalidRequest,
        r'unknown symbol "foo"; the circuit\'s symbols are \["a", "b"\]',
    ),
    ("missing symbol", {"symbols": ["a"], "values": np.zeros((1, 1))}, InvalidRequest, r'lacks.*\["b"\]'),
    (
        "pauli length",
        {"observables": [[(1.0, "ZZZ")]]},
        InvalidRequest,
        r'"ZZZ" must have one letter per qubit \(2',
    ),
    ("pauli letters", {"observables": [[(1.0, "ZQ")]]}, InvalidRequest, r'invalid letters \["Q"\]'),
    ("lower case", {"observables": [[(1.0, "zi")]]}, InvalidRequest, "invalid letters"),
    ("nan coefficient", {"observables": [[(float("nan"), "ZI")]]}, InvalidRequest, "non-finite coefficient"),
    (
        "inf coefficient",
        {"observables": [[(1.0, "ZI")], [(float("inf"), "ZZ")]]},
        InvalidRequest,
        "observable 1",
    ),
    ("bad term", {"observables": [["ZI"]]}, InvalidRequest, r"must be \(coefficient, pauli_string\)"),
    ("no observables", {"observables": []}, InvalidRequest, "no observables"),
    ("negative shots", {"shots": -1}, InvalidRequest, "shots must be a non-negative integer"),
    ("float shots", {"shots": 1.5}, InvalidRequest, "shots"),
    ("bad hash", {"circuit_hash": "ABC"}, InvalidRequest, '64 lower-case hex digits, got "ABC"'),
    ("hash mismatch", {"circuit_hash": "0" * 64}, InvalidRequest, "is not the SHA-256 of circuit.cirq_json"),
    ("unknown circuit", {"circuit_hash": "1" * 64, "cirq_json": ""}, UnknownCircuit, "resend its cirq_json"),
    ("unknown circuit None", {"circuit_hash": "2" * 64, "cirq_json": None}, UnknownCircuit, "not cached"),
    (
        "malformed json",
        {"circuit_hash": hashlib.sha256(b"{nope").hexdigest(), "cirq_json": "{nope"},
        InvalidRequest,
        r"circuit.cirq_json is not valid JSON \(line 1 column 2\)",
    ),
    (
        "not a circuit",
        json_of(cirq.X(Q[0])),  # type: ignore[arg-type]
        InvalidRequest,
        'must encode a circuit \\(cirq_type "Circuit"',
    ),
    (
        "measurement",
        json_of(cirq.Circuit(cirq.H(Q[0]), cirq.measure(Q[0], key="m"))),
        InvalidRequest,
        "remove measurements; the node measures the observables itself",
    ),
    (
        "channel",
        json_of(cirq.Circuit(cirq.H(Q[0]), cirq.depolarize(0.1).on(Q[0]))),
        InvalidRequest,
        "unsupported operation",
    ),
    (
        "symbolic iswap",
        json_of(cirq.Circuit(cirq.ISWAP(*Q) ** A)),
        InvalidRequest,
        r"symbol\(s\) \['a'\].*not a single-generator rotation",
    ),
    (
        "symbolic phase exponent",
        json_of(cirq.Circuit(cirq.PhasedXPowGate(phase_exponent=B, exponent=0.5).on(Q[0]))),
        InvalidRequest,
        r"\['b'\]",
    ),
    (
        "qutrit",
        json_of(cirq.Circuit(cirq.MatrixGate(np.eye(3), qid_shape=(3,)).on(cirq.LineQid(0, 3)))),
        InvalidRequest,
        "non-qubit",
    ),
    (
        "too many qubits",
        json_of(cirq.Circuit(cirq.H.on_each(*cirq.LineQubit.range(5)))),
        InvalidRequest,
        "acts on 5 qubits but this node simulates at most 4",
    ),
    ("too many rows", {"values": np.zeros((11, 2))}, LimitExceeded, "exceed this node's max_batch_rows=10"),
]


@pytest.mark.parametrize(
    ("case", "change", "error", "message"), EVALUATE_CASES, ids=[c[0] for c in EVALUATE_CASES]
)
def test_bad_evaluate_requests_are_rejected_and_the_node_keeps_working(
    case: str, change: dict[str, Any], error: type[NodeError], message: str
) -> None:
    core = NodeCore(NodeConfig(max_qubits=4, max_batch_rows=10))
    request = {**GOOD, **change}
    with pytest.raises(error, match=message):
        core.evaluate(**request)
    with pytest.raises(error, match=message):
        core.shift_gradient(**request)
    assert_still_works(core)


GRADIENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("wrt unknown", {"wrt": ["c"]}, r'wrt symbol "c" is not a column of the parameter batch \["a", "b"\]'),
    ("wrt duplicate", {"wrt": ["a", "a"]}, 'duplicate wrt symbol "a"'),
    (
        "cotangent shape",
        {"cotangents": np.zeros((2, 3))},
        r"cotangents must have shape.*\(2, 2\), got \[2, 3\]",
    ),
    ("cotangent rows", {"cotangents": np.zeros((1, 2))}, r"\(2, 2\), got \[1, 2\]"),
    ("cotangent nan", {"cotangents": np.array([[0.0, np.nan], [0.0, 0.0]])}, "cotangents contain NaN"),
]


@pytest.mark.parametrize(("case", "change", "message"), GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_bad_gradient_requests_are_rejected(case: str, change: dict[str, Any], message: str) -> None:
    core = NodeCore(NodeConfig())
    with pytest.raises(InvalidRequest, match=message):
        core.shift_gradient(**GOOD, **change)
    assert_still_works(core)


def test_reply_size_limit() -> None:
    core = NodeCore(NodeConfig(max_message_bytes=100))
    with pytest.raises(LimitExceeded, match="max_message_bytes=100"):
        core.shift_gradient(**{**GOOD, "values": np.zeros((5, 2))})
    core.evaluate(**{**GOOD, "values": np.zeros((1, 2))})  # 16 bytes is fine


def test_errors_map_to_the_documented_builtin_types() -> None:
    assert issubclass(InvalidRequest, ValueError) and issubclass(InvalidRequest, NodeError)
    assert issubclass(UnknownCircuit, KeyError) and issubclass(UnknownCircuit, NodeError)
    assert issubclass(LimitExceeded, NodeError)
    assert str(UnknownCircuit("resend it")) == "resend it"


def test_circuit_cache_by_hash_is_lru() -> None:
    core = NodeCore(NodeConfig(circuit_cache_size=2))
    circuits = [cirq.Circuit(cirq.rx(A * (k + 1)).on(Q[0])) for k in range(3)]
    requests = [as_request(c) for c in circuits]
    for circuit_hash, text in requests:
        core.load_circuit(circuit_hash, text)
    with pytest.raises(UnknownCircuit):
        core.load_circuit(requests[0][0], None)  # evicted
    compiled = core.load_circuit(requests[2][0], None)  # hash only
    assert compiled is core.load_circuit(requests[2][0], requests[2][1])  # cached object reused
    # Evaluate with the hash alone once the circuit is known.
    result = core.evaluate(requests[2][0], "", [[(1.0, "Z")]], ["a"], np.array([[0.5]]))
    np.testing.assert_allclose(result.expectations, [[np.cos(1.5)]], atol=1e-12)


def test_zero_rows_and_empty_wrt() -> None:
    core = NodeCore(NodeConfig())
    grad = core.shift_gradient(**{**GOOD, "values": np.zeros((0, 2))}, include_values=True)
    assert grad.jacobian.shape == (0, 2, 2)
    assert grad.expectations is not None and grad.expectations.shape == (0, 2)
    vjp = core.shift_gradient(**{**GOOD, "values": np.zeros((0, 2))}, cotangents=np.zeros((0, 2)))
    assert vjp.jacobian.shape == (0, 2)


def test_info_reports_configuration() -> None:
    noise = NoiseConfig(readout_error=0.01)
    info = NodeCore(
        NodeConfig(node_id="n7", backend="qsim", max_qubits=8, noise=noise, default_shots=3)
    ).info()
    assert (info.node_id, info.backend, info.max_qubits, info.noise, info.default_shots) == (
        "n7",
        "qsim",
        8,
        noise,
        3,
    )
    assert info.supported_gates == SUPPORTED_GATES
    for name in (
        "Rx",
        "Ry",
        "Rz",
        "CNOT",
        "CZ",
        "XPowGate",
        "H",
        "SWAP",
        "ISWAP",
        "MatrixGate",
        "PhasedXPowGate",
    ):
        assert name in info.supported_gates
    assert info.version


def test_node_config_validation() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        NodeConfig(backend="gpu")
    with pytest.raises(ValueError, match="precision"):
        NodeConfig(precision="half")
    with pytest.raises(ValueError, match="max_qubits must be a positive integer"):
        NodeConfig(max_qubits=0)
    with pytest.raises(ValueError, match="default_shots"):
        NodeConfig(default_shots=-1)


def test_noisy_configuration_logs_the_engine_choice_once_per_circuit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = NodeCore(NodeConfig(noise=NoiseConfig(depolarizing_1q=0.01, method="trajectories")))
    with caplog.at_level(logging.INFO, logger="qpumesh.node"):
        first = core.evaluate(**GOOD)
        core.evaluate(**GOOD)
    assert first.backend == "batched-trajectories"
    lines = [r.getMessage() for r in caplog.records if "runs on" in r.getMessage()]
    assert len(lines) == 1 and "trajectories" in lines[0]


def test_values_giving_a_non_finite_angle_are_rejected() -> None:
    circuit = cirq.Circuit(cirq.rx(A**0.5).on(Q[0]))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    message = r"row 1: the angle of Rx on q\(0\) \(angle a\*\*0.5 rad\) is not a finite real number for a = -"
    with pytest.raises(InvalidRequest, match=message):
        core.evaluate(circuit_hash, text, [[(1.0, "Z")]], ["a"], np.array([[1.0], [-1.0]]))
    result = core.evaluate(circuit_hash, text, [[(1.0, "Z")]], ["a"], np.array([[4.0]]))
    np.testing.assert_allclose(result.expectations, [[np.cos(2.0)]], atol=1e-12)
