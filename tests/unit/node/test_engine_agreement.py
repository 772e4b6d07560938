"""The three engines agree with each other and with Cirq on random circuits.

Users rely on getting the same numbers whichever engine a node runs (the coordinator may mix
nodes), so random circuits over the whole supported gate set -- fixed and symbolic, one- to
three-qubit -- are evaluated by the batched (double and single precision), cirq and qsim
engines and compared with `cirq.Simulator` on the original circuit.
"""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_engine_helpers import as_request, cirq_reference, vqc

from qpumesh.node.backends import BatchedBackend
from qpumesh.node.circuits import compile_circuit
from qpumesh.node.core import NodeConfig, NodeCore

SYMBOLS = sympy.symbols("a b c")
A, B, C = SYMBOLS

ONE_QUBIT_FIXED = [
    cirq.X,
    cirq.Y,
    cirq.Z,
    cirq.H,
    cirq.S,
    cirq.T,
    cirq.I,
    cirq.X**0.3,
    cirq.Y**-0.7,
    cirq.Z**0.25,
    cirq.H**0.4,
    cirq.rx(0.9),
    cirq.PhasedXPowGate(phase_exponent=0.2, exponent=0.7),
    cirq.PhasedXZGate(x_exponent=0.3, z_exponent=0.1, axis_phase_exponent=0.6),
    cirq.MatrixGate(cirq.unitary(cirq.ry(0.4)) @ cirq.unitary(cirq.rz(1.1))),
]
ONE_QUBIT_SYMBOLIC = [
    cirq.rx,
    lambda s: cirq.ry(2 * s - 0.3),
    lambda s: cirq.rz(s / 2 + 1),
    lambda s: cirq.X ** (s / np.pi),
    lambda s: cirq.Y ** (0.5 * s),
    lambda s: cirq.Z**s,
    lambda s: cirq.H ** (s / 3),
    lambda s: cirq.PhasedXPowGate(phase_exponent=0.3, exponent=s),
]
TWO_QUBIT_FIXED = [
    cirq.CNOT,
    cirq.CZ,
    cirq.SWAP,
    cirq.ISWAP,
    cirq.CZ**0.4,
    cirq.CX**0.7,
    cirq.ISWAP**0.3,
    cirq.XX**0.2,
    cirq.FSimGate(theta=0.3, phi=0.5),
]
TWO_QUBIT_SYMBOLIC = [
    lambda s: cirq.CZ**s,
    lambda s: cirq.ZZ ** (s / 2),
    lambda s: cirq.XX**s,
    lambda s: cirq.YY ** (s + 0.1),
    lambda s: cirq.CNOT ** (s / np.pi),
    lambda s: cirq.SWAP**s,
]


@st.composite
def circuits(draw: st.DrawFn) -> cirq.Circuit:
    n = draw(st.integers(1, 4))
    qubits = cirq.LineQubit.range(n)
    ops: list[cirq.Operation] = [cirq.H(q) for q in qubits]  # every qubit is used
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["1f", "1s", "2f", "2s", "3f"] if n >= 3 else ["1f", "1s", "2f", "2s"]))
        if kind in ("2f", "2s", "3f") and n < 2:
            kind = "1s"
        symbol = draw(st.sampled_from(SYMBOLS))
        if kind[0] == "1":
            q = draw(st.sampled_from(qubits))
            gate = (
                draw(st.sampled_from(ONE_QUBIT_FIXED))
                if kind == "1f"
                else draw(st.sampled_from(ONE_QUBIT_SYMBOLIC))(symbol)
            )
            ops.append(gate.on(q))
        elif kind[0] == "2":
            pair = draw(st.permutations(qubits))[:2]
            gate = (
                draw(st.sampled_from(TWO_QUBIT_FIXED))
                if kind == "2f"
                else draw(st.sampled_from(TWO_QUBIT_SYMBOLIC))(symbol)
            )
            ops.append(gate.on(*pair))
        else:
            triple = draw(st.permutations(qubits))[:3]
            ops.append(draw(st.sampled_from([cirq.CCX, cirq.CCZ])).on(*triple))
    return cirq.Circuit(ops)


def pauli_terms(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="IXYZ", min_size=n, max_size=n)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=circuits(), data=st.data())
def test_engines_agree_with_cirq_on_random_circuits(circuit: cirq.Circuit, data: st.DataObject) -> None:
    n = len(circuit.all_qubits())
    symbols = sorted(p for p in cirq.parameter_names(circuit))
    observables = [
        [
            (data.draw(st.floats(-2, 2)), data.draw(pauli_terms(n)))
            for _ in range(data.draw(st.integers(1, 3)))
        ]
        for _ in range(data.draw(st.integers(1, 3)))
    ]
    values = np.array(
        data.draw(
            st.lists(
                st.lists(st.floats(-np.pi, np.pi), min_size=len(symbols), max_size=len(symbols)),
                min_size=2,
                max_size=2,
            )
        ),
        dtype=np.float64,
    ).reshape(2, len(symbols))
    expected = cirq_reference(circuit, observables, symbols, values)
    circuit_hash, text = as_request(circuit)
    for backend, precision, atol in [
        ("batched", "double", 1e-10),
        ("batched", "single", 1e-5),
        ("cirq", "double", 1e-10),
        ("qsim", "double", 1e-5),
    ]:
        core = NodeCore(NodeConfig(backend=backend, precision=precision))
        result = core.evaluate(circuit_hash, text, observables, symbols, values)
        assert result.backend == backend
        np.testing.assert_allclose(result.expectations, expected, atol=atol, err_msg=f"{backend}/{precision}")


@pytest.mark.parametrize("n", [7, 9])
def test_batched_large_register_path_matches_cirq(n: int) -> None:
    """Registers over DENSE_MAX_QUBITS run gate by gate (gathers and local matmuls)."""
    q = cirq.LineQubit.range(n)
    circuit = cirq.Circuit(
        [cirq.H(x) for x in q],
        cirq.T(q[1]),
        cirq.rx(A).on(q[0]),
        cirq.CNOT(q[0], q[n - 1]),
        cirq.CZ(q[2], q[3]),
        cirq.S(q[4]),
        cirq.ISWAP(q[1], q[5]) ** 0.3,
        cirq.CCX(q[2], q[0], q[6]),
        cirq.ZZ(q[3], q[n - 1]) ** B,
        cirq.SWAP(q[0], q[2]),
        cirq.ry(C).on(q[6]),
    )
    observables = [[(1.0, "Z" + "I" * (n - 1))], [(0.5, "XY" + "Z" * (n - 2)), (-1.0, "I" * (n - 1) + "X")]]
    values = np.random.default_rng(3).uniform(-3, 3, size=(3, 3))
    circuit_hash, text = as_request(circuit)
    result = NodeCore(NodeConfig()).evaluate(circuit_hash, text, observables, ["a", "b", "c"], values)
    np.testing.assert_allclose(
        result.expectations, cirq_reference(circuit, observables, ["a", "b", "c"], values), atol=1e-10
    )


def test_batched_real_and_complex_modes_match_cirq_on_the_benchmark_circuit() -> None:
    for rz in (False, True):
        circuit, symbols = vqc(4, 2, rz=rz)
        compiled = compile_circuit(circuit, 20)
        program = BatchedBackend().program(compiled)
        assert program.real is not rz  # H/RY/CNOT circuits stay real (float64)
        observables = [[(1.0, t)] for t in ("ZIII", "IZII", "IIZI", "IIIZ", "XXYY", "YIII")]
        values = np.random.default_rng(0).normal(size=(5, len(symbols)))
        circuit_hash, text = as_request(circuit)
        result = NodeCore(NodeConfig()).evaluate(circuit_hash, text, observables, symbols, values)
        np.testing.assert_allclose(
            result.expectations, cirq_reference(circuit, observables, symbols, values), atol=1e-12
        )


def test_evaluate_with_zero_rows_returns_empty_results() -> None:
    circuit, symbols = vqc(2, 1)
    circuit_hash, text = as_request(circuit)
    for backend in ("batched", "cirq", "qsim"):
        result = NodeCore(NodeConfig(backend=backend)).evaluate(
            circuit_hash, text, [[(1.0, "ZI")]], symbols, np.zeros((0, len(symbols)))
        )
        assert result.expectations.shape == (0, 1)


def test_batched_fuses_each_cnot_ladder_into_one_step() -> None:
    """Cirq's moments interleave a CNOT ladder with the next RY layer; the engine undoes that."""
    circuit, _ = vqc(6, 5)
    program = BatchedBackend().program(compile_circuit(circuit, 20))
    kinds = [type(step).__name__ for step in program.steps]
    # H layer (folded into the initial state), 6 RY, then per layer: one ladder + 6 RY.
    assert kinds.count("_Rot1") == 36
    assert len(kinds) - kinds.count("_Rot1") == 1 + 5
    assert program.initial is not None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=circuits(), data=st.data())
def test_shift_gradient_matches_finite_differences_on_random_circuits(
    circuit: cirq.Circuit, data: st.DataObject
) -> None:
    """Every symbolic gate form the compiler accepts obeys the shift rule it is given."""
    n = len(circuit.all_qubits())
    symbols = sorted(p for p in cirq.parameter_names(circuit))
    observables = [[(1.0, data.draw(pauli_terms(n)))], [(0.5, data.draw(pauli_terms(n)))]]
    values = np.array(
        data.draw(st.lists(st.floats(-np.pi, np.pi), min_size=len(symbols), max_size=len(symbols))),
        dtype=np.float64,
    ).reshape(1, len(symbols))
    circuit_hash, text = as_request(circuit)
    result = NodeCore(NodeConfig()).shift_gradient(circuit_hash, text, observables, symbols, values)
    h = 1e-5
    for k in range(len(symbols)):
        step = np.zeros_like(values)
        step[0, k] = h
        fd = (
            cirq_reference(circuit, observables, symbols, values + step)
            - cirq_reference(circuit, observables, symbols, values - step)
        ) / (2 * h)
        np.testing.assert_allclose(result.jacobian[:, :, k], fd, atol=1e-6, err_msg=f"d/d{symbols[k]}")


def test_subcircuits_are_inlined() -> None:
    q = cirq.LineQubit.range(2)
    inner = cirq.FrozenCircuit(cirq.ry(A).on(q[0]), cirq.CNOT(*q))
    circuit = cirq.Circuit(cirq.H(q[1]), cirq.CircuitOperation(inner, repetitions=2), cirq.rz(B).on(q[1]))
    flat = cirq.Circuit(cirq.H(q[1]), inner.unfreeze(), inner.unfreeze(), cirq.rz(B).on(q[1]))
    observables = [[(1.0, "ZI")], [(1.0, "XY")]]
    values = np.array([[0.3, 0.8]])
    circuit_hash, text = as_request(circuit)
    result = NodeCore(NodeConfig()).shift_gradient(
        circuit_hash, text, observables, ["a", "b"], values, include_values=True
    )
    assert result.expectations is not None
    np.testing.assert_allclose(
        result.expectations, cirq_reference(flat, observables, ["a", "b"], values), atol=1e-12
    )
