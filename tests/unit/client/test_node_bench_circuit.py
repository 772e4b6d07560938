"""The benchmark's circuit is the QLSTM-style VQC it claims to be."""

from __future__ import annotations

import cirq

from qpumesh.client.node_bench import qlstm_vqc


def test_qlstm_vqc_encodes_then_stacks_cnot_ladders_and_ry_layers() -> None:
    circuit, symbols, observables = qlstm_vqc(5, 2)
    q = cirq.LineQubit.range(5)
    weights = [f"w{layer}_{i}" for layer in range(2) for i in range(5)]
    assert symbols == ["x0", "x1", "x2", "x3", "x4", *weights]
    assert observables == [cirq.Z(qubit) for qubit in q]
    cnots = [tuple(op.qubits) for op in circuit.all_operations() if op.gate == cirq.CNOT]
    ladder = [(q[0], q[1]), (q[2], q[3]), (q[1], q[2]), (q[3], q[4])]
    assert cnots == ladder * 2
    ops = list(circuit.all_operations())
    assert [op.gate for op in ops[:5]] == [cirq.H] * 5
    assert sorted(str(s) for s in cirq.parameter_names(circuit)) == sorted(symbols)
