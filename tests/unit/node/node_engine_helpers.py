"""Shared builders for the node engine tests (circuits, hashing, Cirq references)."""

from __future__ import annotations

import hashlib

import cirq
import numpy as np
import sympy


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
