"""The wide (fused, cache-blocked) kernels give the gate-by-gate kernels' numbers.

Users rely on: the same expectations whichever kernels a node's width picks (tolerance
1e-10: both are float64, only the order of a few products differs), on every supported
gate, real and complex circuits, however the plan splits the register into blocks; the
same numbers run after run; and the node picking the path by width alone.
"""

from __future__ import annotations

import cirq
import numpy as np
import pytest
from test_adjoint import random_circuit

from qpumesh.coordinator.ansatz import build_ansatz
from qpumesh.node.backends import BatchedBackend
from qpumesh.node.backends.compiled import (
    FUSED_MIN_QUBITS,
    FUSED_MIN_QUBITS_REAL,
    CompiledEngine,
    fused_is_faster,
)
from qpumesh.node.backends.tape import build_tape, term_table
from qpumesh.node.backends.wide import plan_wide
from qpumesh.node.backends.wide_terms import fits_block
from qpumesh.node.circuits import compile_circuit

#: The wide kernels agree with the gate-by-gate ones to this (both float64).
ATOL = 1e-10


def random_terms(rng: np.random.Generator, n: int, count: int) -> list[str]:
    return ["".join(rng.choice(list("IXYZ"), n)) for _ in range(count)]


@pytest.mark.parametrize("seed", range(40))
def test_wide_kernels_equal_the_reference_on_random_circuits_of_every_gate(seed: int) -> None:
    n = 1 + seed % 7
    circuit, _ = random_circuit(seed, n, length=8 + 3 * n)
    compiled = compile_circuit(circuit, 24)
    rng = np.random.default_rng(seed)
    terms = random_terms(rng, n, 4)
    angles = rng.uniform(-np.pi, np.pi, size=(3, len(compiled.slots)))
    engine = CompiledEngine()
    reference = engine.expectations(compiled, terms, angles, fused=False)
    # Block sizes from 3 qubits (many stages, short copies) to the whole register.
    for block in (3, 4, 5, 15):
        fused = engine.expectations(compiled, terms, angles, fused=True, block_qubits=block)
        np.testing.assert_allclose(fused, reference, atol=ATOL, rtol=0)
    again = engine.expectations(compiled, terms, angles, fused=True, block_qubits=3)
    np.testing.assert_array_equal(
        again, engine.expectations(compiled, terms, angles, fused=True, block_qubits=3)
    )


@pytest.mark.parametrize("seed", range(24))
def test_wide_kernels_without_a_leading_layer_and_with_terms_summed_in_the_last_block(seed: int) -> None:
    """Random circuits whose qubits may start with a wider gate (no product state for them).

    Without the leading H layer of `random_circuit` some qubits' first gate is a two- or
    three-qubit gate (they stay |0> in the product state) and others start with one-qubit
    gates of every kind; Z-only terms always lie in the last block (its terms are summed in
    cache, `wide_terms.block_terms`), X/Y terms often reach outside it (the state is copied
    back and read whole).
    """
    n = 3 + seed % 5
    circuit, _ = random_circuit(seed, n, length=6 + 3 * n)
    circuit = cirq.Circuit(list(circuit.all_operations())[n:])  # drop the leading H layer
    compiled = compile_circuit(circuit, 24)
    rng = np.random.default_rng(seed)
    diagonal = ["".join(rng.choice(list("IZ"), n)) for _ in range(3)]
    terms = diagonal + random_terms(rng, n, 3)
    angles = rng.uniform(-np.pi, np.pi, size=(2, len(compiled.slots)))
    engine = CompiledEngine()
    reference = engine.expectations(compiled, terms, angles, fused=False)
    for block in (3, 4, 15):
        for chosen in (diagonal, terms):
            fused = engine.expectations(compiled, chosen, angles, fused=True, block_qubits=block)
            np.testing.assert_allclose(fused, reference[:, : len(chosen)], atol=ATOL, rtol=0)


def test_the_plan_writes_leading_one_qubit_layers_as_a_product_state() -> None:
    """Qubits that start with one-qubit gates are folded into the product state, others not."""
    q = cirq.LineQubit.range(4)
    circuit = cirq.Circuit([cirq.H(q[0]), cirq.rx(0.3).on(q[0]), cirq.CNOT(q[1], q[2]), cirq.X(q[3])])
    circuit.append([cirq.CNOT(q[0], q[3]), cirq.ry(0.2).on(q[1])])
    tape = build_tape(compile_circuit(circuit, 24), local_only=True)
    plan = plan_wide(tape, 3)
    assert [row >= 0 for row in plan.lead] == [True, False, False, True]
    staged = set(plan.units.tolist())
    assert not staged & {int(row) for row in plan.lead if row >= 0}  # not run a second time
    table = term_table(["ZIIZ", "XIII"], tape.real)
    last = int(plan.stage_mask[-1])
    assert fits_block(last, table.xmask[:1])  # Z terms are summed in the last block
    engine = CompiledEngine()
    compiled = compile_circuit(circuit, 24)
    angles = np.zeros((1, len(compiled.slots)))
    np.testing.assert_allclose(
        engine.expectations(compiled, ["ZIIZ", "XIII"], angles, fused=True, block_qubits=3),
        engine.expectations(compiled, ["ZIIZ", "XIII"], angles, fused=False),
        atol=ATOL,
        rtol=0,
    )


@pytest.mark.parametrize(("name", "n"), [("chen2020", 9), ("v0", 9), ("chen2020", 16), ("v0", 17)])
def test_wide_kernels_on_the_qlstm_ansatzes_split_into_blocks(name: str, n: int) -> None:
    """The QLSTM circuits (complex chen2020, real v0) over several stages of the default plan."""
    ansatz = build_ansatz(name, n, 2, 2)
    compiled = compile_circuit(cirq.read_json(json_text=ansatz.circuit.cirq_json), 24)
    rng = np.random.default_rng(n)
    angles = compiled.angles(list(ansatz.symbols), rng.uniform(-2, 2, size=(2, len(ansatz.symbols))))
    terms = ["Z" + "I" * (n - 1), "I" * (n - 1) + "X", "Y" * 2 + "I" * (n - 2)]
    engine = CompiledEngine()
    reference = engine.expectations(compiled, terms, angles, fused=False)
    block = 5 if n < 12 else None
    fused = engine.expectations(compiled, terms, angles, fused=True, block_qubits=block)
    np.testing.assert_allclose(fused, reference, atol=ATOL, rtol=0)
    plan = plan_wide(build_tape(compiled, local_only=True), block or 15)
    assert len(plan.stage_mask) > 1  # the register really was split
    assert (plan.unit_gather >= 0).any()  # and CNOT runs were composed into block gathers


def test_plan_stages_respect_the_block_size_and_keep_every_step() -> None:
    circuit, _ = random_circuit(5, 7, length=40)
    tape = build_tape(compile_circuit(circuit, 24), local_only=True)
    plan = plan_wide(tape, 4)
    assert all(bin(int(mask)).count("1") <= 4 for mask in plan.stage_mask)
    assert sorted(plan.units.tolist()) == sorted(set(plan.units.tolist()))
    assert plan.stage_start[-1] == len(plan.units)
    with pytest.raises(ValueError, match="block_qubits must be between 3"):
        plan_wide(tape, 17)  # gather tables index blocks with uint16
    with pytest.raises(ValueError, match="block_qubits"):
        plan_wide(tape, 2)


def test_the_node_picks_the_wide_kernels_by_the_circuit_alone() -> None:
    for real in (True, False):  # the distributed model's parts keep the small-circuit path
        assert not fused_is_faster(6, real)
    assert fused_is_faster(FUSED_MIN_QUBITS, False)
    assert fused_is_faster(FUSED_MIN_QUBITS_REAL, True)
    n = FUSED_MIN_QUBITS_REAL  # v0 is real
    ansatz = build_ansatz("v0", n, 1, 1)
    compiled = compile_circuit(cirq.read_json(json_text=ansatz.circuit.cirq_json), 24)
    angles = compiled.angles(list(ansatz.symbols), np.full((1, len(ansatz.symbols)), 0.3))
    terms = ["Z" + "I" * (n - 1)]
    engine = BatchedBackend()
    picked = engine.expectations(compiled, terms, angles)
    np.testing.assert_array_equal(picked, engine.compiled.expectations(compiled, terms, angles, fused=True))


def test_warm_up_compiles_the_wide_kernels_for_real_and_complex_circuits() -> None:
    """A node compiles its kernels before serving; a wide request must not pause for numba."""
    from qpumesh.node.backends import wide_kernels
    from qpumesh.node.core import NodeConfig, NodeCore

    NodeCore(NodeConfig()).warm_up()
    before = len(wide_kernels.expectations.signatures)
    assert before == 2  # float64 (real circuits) and complex128 tapes
    engine = CompiledEngine()
    for name in ("v0", "chen2020"):
        ansatz = build_ansatz(name, 6, 1, 1)
        compiled = compile_circuit(cirq.read_json(json_text=ansatz.circuit.cirq_json), 24)
        values = np.full((3, len(ansatz.symbols)), 0.2)
        values.flags.writeable = False
        angles = compiled.angles(list(ansatz.symbols), values)
        engine.expectations(compiled, ["ZIIIII", "XXIIII"], angles, fused=True, block_qubits=4)
    assert len(wide_kernels.expectations.signatures) == before


def test_the_wide_state_kept_between_requests_is_bounded() -> None:
    """A worker thread reuses its state up to WORK_KEEP_BYTES; wider states are not kept."""
    from qpumesh.node.backends.compiled import WORK_KEEP_BYTES

    engine = CompiledEngine()
    re, im = engine._split_state(1 << 10, real=False)
    again, _ = engine._split_state(1 << 8, real=True)
    assert re.size == im.size == 1 << 10 and again.size == 1 << 8
    assert np.shares_memory(re, again)  # the same thread's next request reuses the arrays
    wide = WORK_KEEP_BYTES // 8  # amplitudes of a complex state just over the bound
    big, _ = engine._split_state(wide, real=False)
    assert big.size == wide
    assert engine._work.state.nbytes <= WORK_KEEP_BYTES  # not kept
    assert not np.shares_memory(big, engine._work.state)
