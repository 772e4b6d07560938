"""The VQC builders: structure, symbol order, and what the read-outs can see."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import torch
from coordinator_doubles import simulate  # type: ignore[import-not-found]

from qpumesh.coordinator.ansatz import build_ansatz


def ops(name: str, qubits: int, layers: int) -> list[cirq.Operation]:
    circuit = cirq.read_json(json_text=build_ansatz(name, qubits, layers, 1).circuit.cirq_json)
    return list(circuit.all_operations())


def cnot_pairs(name: str, qubits: int, layers: int) -> list[tuple[int, ...]]:
    wires: list[cirq.Qid] = list(cirq.LineQubit.range(qubits))
    cnots = [op for op in ops(name, qubits, layers) if op.gate == cirq.CNOT]
    return [tuple(wires.index(q) for q in op.qubits) for op in cnots]


def test_v0_structure_and_symbols() -> None:
    ansatz = build_ansatz("v0", 4, 2, 3)
    weights = tuple(f"w{layer}_{i}" for layer in range(2) for i in range(4))
    assert ansatz.symbols == ("x0", "x1", "x2", "x3", *weights)
    assert ansatz.observables == ([(1.0, "ZIII")], [(1.0, "IZII")], [(1.0, "IIZI")])
    assert cnot_pairs("v0", 4, 1) == [(0, 1), (2, 3), (1, 2)]


def test_chen2020_structure_and_encoding() -> None:
    ansatz = build_ansatz("chen2020", 3, 1, 2)
    assert ansatz.input_symbols == ("a0", "a1", "a2", "b0", "b1", "b2") and ansatz.num_weights == 9
    assert cnot_pairs("chen2020", 3, 1) == [(0, 1), (1, 2), (2, 0), (0, 2), (1, 0), (2, 1)]
    assert cnot_pairs("chen2020", 2, 1) == [(0, 1), (1, 0)]  # no distance-2 pair on 2 qubits
    v = torch.tensor([[0.5, -2.0]], dtype=torch.float64)
    expected = torch.cat([torch.atan(v), torch.atan(v * v)], dim=1)
    torch.testing.assert_close(build_ansatz("chen2020", 2, 1, 1).encode(v), expected)


@pytest.mark.parametrize(("name", "layers"), [("v0", 0), ("nope", 1)])
def test_bad_arguments(name: str, layers: int) -> None:
    with pytest.raises(ValueError):
        build_ansatz(name, 3, layers, 1)
    with pytest.raises(ValueError, match="outputs"):
        build_ansatz("v0", 3, 1, 4)


@pytest.mark.parametrize(("name", "sees_x"), [("v0", False), ("chen2020", True)])
def test_which_ansatz_sees_the_last_input_at_zero_weights(name: str, sees_x: bool) -> None:
    # v_t = [h; x]: x is the last qubit. With zero weights, v0's CNOT ladders never carry
    # it to the read-out qubits, so the model cannot start learning from the data.
    ansatz = build_ansatz(name, 4, 2, 3)
    rng = np.random.default_rng(0)
    h = rng.uniform(-1, 1, size=3)
    rows = []
    for x in (-0.9, 0.9):
        angles = ansatz.encode(torch.tensor([[*h, x]], dtype=torch.float64)).numpy()
        rows.append(np.concatenate([angles, np.zeros((1, ansatz.num_weights))], axis=1))
    out = [simulate(ansatz.circuit.cirq_json, ansatz.observables, ansatz.symbols, r) for r in rows]
    assert (np.max(np.abs(out[0] - out[1])) > 1e-3) == sees_x
