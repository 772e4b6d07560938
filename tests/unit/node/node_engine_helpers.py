"""Shared builders for the node engine tests (circuits, hashing, Cirq references)."""

from __future__ import annotations

import hashlib

import cirq
import numpy as np
import sympy

# A circuit in which every symbol drives several gates of different kinds and widths, with
# affine coefficients, and Pauli sums on all three qubits: the gradient tests' workhorse.
SHARED_SYMBOLS = ["a", "b", "c"]
SHARED_OBSERVABLES = [[(1.0, "ZII")], [(0.5, "XZI"), (-0.25, "IYY")], [(1.0, "IIZ"), (0.3, "ZZZ")]]


def shared_symbol_circuit(*, toffoli: bool = False) -> cirq.Circuit:
    """The shared-symbol circuit; ``toffoli`` adds a CCX**c (a three-qubit gate the noisy engines support)."""
    a, b, c = sympy.symbols(SHARED_SYMBOLS)
    q = cirq.LineQubit.range(3)
    return cirq.Circuit(
        cirq.H.on_each(*q),
        cirq.rx(a).on(q[0]),
        cirq.ry(2 * a - 0.5).on(q[1]),
        cirq.CNOT(q[0], q[1]),
        cirq.Z(q[2]) ** (b / 2),
        cirq.PhasedXPowGate(phase_exponent=0.25, exponent=c).on(q[2]),
        cirq.CZ(q[1], q[2]) ** a,
        cirq.XX(q[0], q[2]) ** (0.7 * b + 0.1),
        *([cirq.CCX(q[0], q[1], q[2]) ** c] if toffoli else []),
        cirq.H(q[1]) ** c,
        cirq.ry(c / 3).on(q[0]),
    )


def circuit_hash(cirq_json: str) -> str:
    return hashlib.sha256(cirq_json.encode()).hexdigest()


def as_request(circuit: cirq.Circuit) -> tuple[str, str]:
    """(hash, json) of a circuit, as a client sends it."""
    text = cirq.to_json(circuit)
    return circuit_hash(text), text


def vqc(n: int, depth: int, rz: bool = False) -> tuple[cirq.Circuit, list[str]]:
    """The node's benchmark circuit: H + RY(x) encoding, then CNOT ladder + RY(w) layers."""
    q = cirq.LineQubit.range(n)
    x = sympy.symbols(f"x0:{n}")
    w = sympy.symbols(f"w0:{n * depth}")
    circuit = cirq.Circuit([cirq.H(qi) for qi in q], [cirq.ry(x[i]).on(q[i]) for i in range(n)])
    for d in range(depth):
        circuit += [cirq.CNOT(q[i], q[i + 1]) for i in range(n - 1)]
        circuit += [cirq.ry(w[d * n + i]).on(q[i]) for i in range(n)]
        if rz:
            circuit += [cirq.rz(w[d * n + i]).on(q[i]) for i in range(n)]
    return circuit, [s.name for s in (*x, *w)]


def cirq_reference(
    circuit: cirq.Circuit, observables: list[list[tuple[float, str]]], symbols: list[str], values: np.ndarray
) -> np.ndarray:
    """Expectations by cirq.Simulator on the *original* circuit (complex128)."""
    qubits = sorted(circuit.all_qubits())
    paulis = {"X": cirq.X, "Y": cirq.Y, "Z": cirq.Z}
    sums = []
    for observable in observables:
        total = cirq.PauliSum()
        for coefficient, term in observable:
            total += coefficient * cirq.PauliString(
                {q: paulis[p] for q, p in zip(qubits, term, strict=True) if p != "I"}
            )
        sums.append(total)
    simulator = cirq.Simulator(dtype=np.complex128)
    rows = [
        simulator.simulate_expectation_values(
            circuit, sums, param_resolver=dict(zip(symbols, map(float, row), strict=True)), qubit_order=qubits
        )
        for row in values
    ]
    return np.real(np.asarray(rows, dtype=np.complex128)).reshape(len(values), len(observables))
