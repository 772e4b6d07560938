"""Test doubles for the coordinator tests: a small exact executor that needs no node.

``NumpyExecutor`` implements the ``Executor`` protocol with a batched numpy
statevector simulation of the Cirq circuit carried by each task, and
parameter-shift Jacobians (and VJPs, for tasks with cotangents), so the model code
can be tested independently of the node's engines. Its gates are checked against
``cirq.Simulator`` in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import cirq
import numpy as np
import sympy

from qpumesh.coordinator.executor import CircuitResult, CircuitTask, LocalExecutor, evaluation_cost

_PAULI = {
    "I": np.eye(2, dtype=np.complex128),
    "X": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "Z": np.array([[1, 0], [0, -1]], dtype=np.complex128),
}


def _rotation(axis: str, angles: np.ndarray) -> np.ndarray:
    """exp(-i angle P / 2) for each angle: shape (rows, 2, 2)."""
    c, s = np.cos(angles / 2), np.sin(angles / 2)
    out = np.zeros((len(angles), 2, 2), dtype=np.complex128)
    if axis == "X":
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -1j * s, -1j * s, c
    elif axis == "Y":
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
    else:
        out[:, 0, 0], out[:, 1, 1] = np.exp(-0.5j * angles), np.exp(0.5j * angles)
    return out


@cache
def _compile(cirq_json: str) -> tuple[int, list[tuple[Any, ...]]]:
    """Parse a circuit into (n_qubits, steps); a step is fixed or a parametrised rotation."""
    circuit = cirq.read_json(json_text=cirq_json)
    qubits = sorted(circuit.all_qubits())
    index = {q: i for i, q in enumerate(qubits)}
    steps: list[tuple[Any, ...]] = []
    for op in circuit.all_operations():
        wires = [index[q] for q in op.qubits]
        if not cirq.is_parameterized(op):
            steps.append(("fixed", wires, cirq.unitary(op)))
            continue
        gate = op.gate
        axis = next(
            a
            for a, t in (("X", cirq.XPowGate), ("Y", cirq.YPowGate), ("Z", cirq.ZPowGate))
            if isinstance(gate, t)
        )
        expr = sympy.nsimplify(gate.exponent * sympy.pi)
        (symbol,) = expr.free_symbols
        coeff = float(sympy.diff(expr, symbol))
        offset = float(expr.subs(symbol, 0))
        steps.append(("rot", wires, axis, str(symbol), coeff, offset))
    return len(qubits), steps


def _apply(state: np.ndarray, matrix: np.ndarray, wires: list[int], n: int) -> np.ndarray:
    """Apply a (possibly batched) k-qubit matrix to ``state`` of shape (rows, 2, ..., 2)."""
    k = len(wires)
    batched = matrix.ndim == 3
    m = matrix.reshape((-1,) + (2,) * (2 * k)) if batched else matrix.reshape((2,) * (2 * k))
    axes = [w + 1 for w in wires]
    moved = np.moveaxis(state, axes, list(range(1, k + 1)))
    shape = moved.shape
    flat = moved.reshape(shape[0], 2**k, -1)
    mat = m.reshape(-1, 2**k, 2**k) if batched else m.reshape(2**k, 2**k)
    out = np.einsum("rij,rjb->rib", mat, flat) if batched else np.einsum("ij,rjb->rib", mat, flat)
    return np.moveaxis(out.reshape(shape), list(range(1, k + 1)), axes)


def _slot_angles(cirq_json: str, symbols: Sequence[str], values: np.ndarray) -> np.ndarray:
    """The angle of every parametrised rotation for each row: (rows, n_slots)."""
    _, steps = _compile(cirq_json)
    column = {s: j for j, s in enumerate(symbols)}
    rotations = [s for s in steps if s[0] == "rot"]
    return (
        np.stack(
            [coeff * values[:, column[symbol]] + offset for _, _, _, symbol, coeff, offset in rotations],
            axis=1,
        )
        if rotations
        else np.zeros((values.shape[0], 0))
    )


def _simulate_angles(
    cirq_json: str, observables: Sequence[Sequence[tuple[float, str]]], angles: np.ndarray
) -> np.ndarray:
    """Exact expectations (rows, n_obs) for given rotation angles (rows, n_slots)."""
    n, steps = _compile(cirq_json)
    rows = angles.shape[0]
    state = np.zeros((rows,) + (2,) * n, dtype=np.complex128)
    state[(slice(None),) + (0,) * n] = 1.0
    slot = 0
    for step in steps:
        if step[0] == "fixed":
            state = _apply(state, step[2], step[1], n)
            continue
        state = _apply(state, _rotation(step[2], angles[:, slot]), step[1], n)
        slot += 1
    out = np.zeros((rows, len(observables)))
    for j, terms in enumerate(observables):
        for coefficient, paulis in terms:
            applied = state
            for wire, letter in enumerate(paulis):
                if letter != "I":
                    applied = _apply(applied, _PAULI[letter], [wire], n)
            out[:, j] += coefficient * (state.conj() * applied).reshape(rows, -1).sum(axis=1).real
    return out


def simulate(
    cirq_json: str,
    observables: Sequence[Sequence[tuple[float, str]]],
    symbols: Sequence[str],
    values: np.ndarray,
) -> np.ndarray:
    """Exact expectations (rows, n_obs) of the circuit for each row of symbol values."""
    return _simulate_angles(cirq_json, observables, _slot_angles(cirq_json, symbols, values))


def shift_jacobian(task: CircuitTask) -> np.ndarray:
    """d expectations / d symbols (rows, n_obs, n_sym) by the two-term parameter-shift rule.

    Every shifted copy of every row is simulated in one batch.
    """
    _, steps = _compile(task.circuit.cirq_json)
    rotations = [s for s in steps if s[0] == "rot"]
    angles = _slot_angles(task.circuit.cirq_json, task.symbols, task.values)
    rows, slots = angles.shape
    shifts = np.concatenate([np.eye(slots), -np.eye(slots)]) * (np.pi / 2)  # (2S, S)
    batch = (angles[:, None, :] + shifts[None, :, :]).reshape(rows * 2 * slots, slots)
    out = _simulate_angles(task.circuit.cirq_json, task.observables, batch).reshape(rows, 2, slots, -1)
    per_slot = 0.5 * (out[:, 0] - out[:, 1])  # (rows, S, n_obs)
    column = {s: j for j, s in enumerate(task.symbols)}
    jac = np.zeros((rows, len(task.observables), len(task.symbols)))
    for slot, (_, _, _, symbol, coeff, _) in enumerate(rotations):
        jac[:, :, column[symbol]] += coeff * per_slot[:, slot, :]
    return jac


class NumpyExecutor(LocalExecutor):
    """An exact in-memory ``Executor`` for tests; records every round it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[list[CircuitTask]] = []

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        self.rounds.append(list(tasks))
        results = []
        for task in tasks:
            slots = sum(1 for step in _compile(task.circuit.cirq_json)[1] if step[0] == "rot")
            if task.cotangents is not None:  # a VJP: the shift rule's shifted executions only
                vjp = np.einsum("ro,ros->rs", task.cotangents, shift_jacobian(task))
                executions = 2 * slots * len(task.values)
                results.append(CircuitResult(None, None, "double", executions=executions, vjp=vjp))
                continue
            values = simulate(task.circuit.cirq_json, task.observables, task.symbols, task.values)
            executions, shots = evaluation_cost(task)
            jacobian = None
            if task.jacobian:
                jacobian = shift_jacobian(task)
                executions += 2 * slots * len(task.values)
            results.append(CircuitResult(values, jacobian, "double", executions=executions, shots=shots))
        self.stats.record_round(results)
        return results
