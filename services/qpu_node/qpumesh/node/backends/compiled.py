"""Exact noise-free evaluation and adjoint differentiation on the compiled kernels.

`CompiledEngine` is the double-precision core of the ``batched`` engine: it plans each
circuit once into a `Tape` (cached per `CompiledCircuit`), tabulates the Pauli terms of a
request once (cached per circuit), and calls `kernels.expectations` or `kernels.adjoint`.

Memory is bounded per request by `STATE_BUDGET_BYTES`, decided before any work: the kernels
hold, per call, one state and its scratch row, and ``G`` co-states with their scratch rows,
of ``2**n`` amplitudes each (16 bytes, 8 for real circuits), whatever the number of rows,
since rows are simulated one after the other. A Jacobian with more observables than fit is
computed in groups of observables, each group a full forward and backward pass; the
grouping depends only on the circuit width and the number of observables, never on load,
and every group repeats the same arithmetic on the state, so results are bit-identical to
an ungrouped run. Bound: ``max(STATE_BUDGET_BYTES, 4 · 16 · 2**n)`` bytes of states, plus
the ``rows x slots`` angle tables and the outputs; between requests each thread keeps at
most `WORK_KEEP_BYTES` of wide-kernel state for reuse.

Rows are handed to the kernels in chunks of about `cancellation.CHUNK_WORK` amplitude
operations, checking between chunks whether the caller is still there
(`cancellation.checkpoint`). Rows are independent in the kernels, so chunking never changes
a number.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qpumesh.node.backends import adjoint_kernels, kernels, wide_kernels
from qpumesh.node.backends.tape import Tape, TermTable, build_tape, term_table
from qpumesh.node.backends.wide import WidePlan, plan_wide
from qpumesh.node.cancellation import row_chunks
from qpumesh.node.circuits import CompiledCircuit

__all__ = [
    "FUSED_MIN_QUBITS",
    "FUSED_MIN_QUBITS_REAL",
    "STATE_BUDGET_BYTES",
    "CompiledEngine",
    "costates_per_pass",
    "fused_is_faster",
    "warm_up",
]

#: Bytes of state vectors one kernel call may hold (state, co-states and their scratch rows).
STATE_BUDGET_BYTES = 64 * 1024 * 1024
#: Measured crossover (see `fused_is_faster`): from these widths evaluation runs on the wide
#: kernels (`wide_kernels`: cache-sized stages, split real/imaginary arithmetic), for
#: circuits whose state stays real and for complex ones (since CNOT runs became one gather,
#: the wide kernels win at every measured width from 10 qubits for both; 14 keeps the small
#: circuits on the path they had).
FUSED_MIN_QUBITS_REAL = 14
FUSED_MIN_QUBITS = 14
#: Term tables kept per circuit (requests of one circuit normally use one or two sets).
_TERM_CACHE = 16
#: Bytes of wide-kernel state a thread keeps between requests (a 21-qubit complex state):
#: allocating and faulting in a fresh 16 MiB state costs ~3 ms, 5% of a 20-qubit evaluation.
#: Wider states are allocated per request and freed after it.
WORK_KEEP_BYTES = 32 * 1024 * 1024


def costates_per_pass(tape: Tape, wanted: int) -> int:
    """Co-states per kernel call: all `wanted` if they fit `STATE_BUDGET_BYTES`, at least 1."""
    per_state = tape.dim * np.dtype(tape.dtype).itemsize
    fit = (STATE_BUDGET_BYTES // per_state - 2) // 2
    return max(1, min(wanted, fit))


@dataclass
class _Plan:
    tape: Tape
    terms: dict[tuple[str, ...], TermTable] = field(default_factory=dict)
    wide: WidePlan | None = None


def fused_is_faster(n_qubits: int, real: bool) -> bool:
    """Whether the wide (fused, cache-blocked) kernels beat the gate-by-gate ones for a circuit.

    The crossover is measured: ``benchmarks/bench_engines.py --only wide`` times both on the
    QLSTM ansatzes (v0 is real, chen2020 complex) and docs/performance.md records the table.
    It depends only on the circuit, so every node runs a request on the same kernels (same
    numbers); the distributed model's small parts never take the wide path.
    """
    return n_qubits >= (FUSED_MIN_QUBITS_REAL if real else FUSED_MIN_QUBITS)


class CompiledEngine:
    """Compiled-kernel statevector engine in float64/complex128. Thread-safe."""

    def __init__(self) -> None:
        self._plans: weakref.WeakKeyDictionary[CompiledCircuit, _Plan] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._work = threading.local()

    def _split_state(self, dim: int, real: bool) -> tuple[np.ndarray, np.ndarray]:
        """Work arrays (real parts, imaginary parts) of a wide-kernel state, reused per thread.

        Allocated with numpy, whose large arrays get transparent huge pages (madvise): the
        stages' strided copies run ~1.8x faster on them than on 4 KiB pages.
        """
        size = dim if real else 2 * dim
        if size * 8 > WORK_KEEP_BYTES:
            work = np.empty(size, dtype=np.float64)
        else:
            kept: np.ndarray | None = getattr(self._work, "state", None)
            if kept is None or kept.size < size:
                kept = self._work.state = np.empty(size, dtype=np.float64)
            work = kept
        return work[:dim], work[dim:size]

    def tape(self, compiled: CompiledCircuit) -> Tape:
        """Return the tape of `compiled` (planned once, then cached)."""
        return self._plan(compiled).tape

    def _plan(self, compiled: CompiledCircuit) -> _Plan:
        with self._lock:
            plan = self._plans.get(compiled)
        if plan is None:
            plan = _Plan(build_tape(compiled))
            with self._lock:
                plan = self._plans.setdefault(compiled, plan)
        return plan

    def _terms(self, plan: _Plan, terms: Sequence[str]) -> TermTable:
        key = tuple(terms)
        with self._lock:
            table = plan.terms.get(key)
            if table is None:
                if len(plan.terms) >= _TERM_CACHE:
                    plan.terms.clear()
                table = plan.terms[key] = term_table(key, plan.tape.real)
        return table

    def _wide(self, compiled: CompiledCircuit, plan: _Plan, block_qubits: int | None) -> WidePlan:
        if block_qubits is not None:  # a test's plan of other block sizes: not cached
            return plan_wide(build_tape(compiled, local_only=True), block_qubits)
        if plan.wide is None:
            wide = plan_wide(build_tape(compiled, local_only=True))
            with self._lock:
                if plan.wide is None:
                    plan.wide = wide
        return plan.wide

    def expectations(
        self,
        compiled: CompiledCircuit,
        terms: Sequence[str],
        angles: np.ndarray,
        fused: bool | None = None,
        block_qubits: int | None = None,
    ) -> np.ndarray:
        """Exact Pauli-term expectations ``(rows, len(terms))`` for slot angles ``(rows, slots)``.

        Args:
            compiled: The circuit.
            terms: Dense Pauli strings.
            angles: Slot angles ``(rows, slots)``.
            fused: Run on the wide kernels (True) or the gate-by-gate ones (False); None
                picks by `fused_is_faster`. Both agree to rounding (tests: 1e-10).
            block_qubits: Block size of the wide plan (tests force several stages with it).
        """
        plan = self._plan(compiled)
        if fused is None:
            fused = fused_is_faster(compiled.n_qubits, plan.tape.real)
        if fused:
            return self._expectations_wide(compiled, plan, terms, angles, block_qubits)
        tape = plan.tape
        table = self._terms(plan, terms)
        cos, sin = _half_angle(angles)
        out = np.empty((angles.shape[0], len(terms)), dtype=np.float64)
        for rows in row_chunks(angles.shape[0], _row_work(tape, len(terms), 1)):
            kernels.expectations(
                tape.initial, tape.n, tape.code, tape.mats, tape.gidx, tape.phases,
                cos[rows], sin[rows], table.xmask, table.yzmask, table.coeff, out[rows],
            )  # fmt: skip
        return out

    def _expectations_wide(
        self,
        compiled: CompiledCircuit,
        plan: _Plan,
        terms: Sequence[str],
        angles: np.ndarray,
        block_qubits: int | None,
    ) -> np.ndarray:
        wide = self._wide(compiled, plan, block_qubits)
        tape = wide.tape
        table = self._terms(plan, terms)
        cos, sin = _half_angle(angles)
        out = np.empty((angles.shape[0], len(terms)), dtype=np.float64)
        re, im = self._split_state(tape.dim, tape.real)
        for rows in row_chunks(angles.shape[0], _row_work(tape, len(terms), 1)):
            wide_kernels.expectations(
                re, im, tape.initial, wide.lead, tape.code, tape.mats, cos[rows], sin[rows],
                wide.stage_mask, wide.stage_start, wide.units, wide.unit_perm, wide.perm, wide.unit_gather,
                wide.gather, wide.block,
                table.xmask, table.yzmask, table.coeff, out[rows],
            )  # fmt: skip
        return out

    def adjoint(
        self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Term expectations and slot gradients of weighted term sums by adjoint differentiation.

        Args:
            compiled: The circuit.
            terms: Dense Pauli strings.
            angles: Slot angles ``(rows, slots)``.
            weights: ``(rows or 1, len(terms), G)``: output ``g`` of row ``r`` is
                ``Σ_t weights[r, t, g] ⟨P_t⟩`` (a single row of weights is shared).

        Returns:
            ``(values, grads)``: term expectations ``(rows, len(terms))`` (bit-identical to
            `expectations`) and ``∂ output_g / ∂ θ_slot``, ``(rows, G, slots)``.
        """
        plan = self._plan(compiled)
        tape = plan.tape
        table = self._terms(plan, terms)
        cos, sin = _half_angle(angles)
        rows, outputs = angles.shape[0], weights.shape[2]
        values = np.empty((rows, len(terms)), dtype=np.float64)
        grads = np.zeros((rows, outputs, tape.n_slots), dtype=np.float64)
        group = costates_per_pass(tape, outputs)
        for start in range(0, outputs, group):
            whole = group >= outputs
            part = weights if whole else weights[:, :, start : start + group]
            # C-contiguous and writable: the argument types the kernels were compiled for
            # (a read-only array would be another type, compiled on the first request).
            part = np.require(part, dtype=np.float64, requirements=["C", "W"])
            part_grads = grads if whole else np.zeros((rows, part.shape[2], tape.n_slots), dtype=np.float64)
            shared = part.shape[0] == 1  # one row of weights for every row (a Jacobian)
            for chunk in row_chunks(rows, _row_work(tape, len(terms), 2 + 2 * part.shape[2])):
                adjoint_kernels.adjoint(
                    tape.initial, tape.n, tape.code, tape.mats, tape.gidx, tape.phases,
                    cos[chunk], sin[chunk], table.xmask, table.yzmask, table.coeff,
                    part if shared else part[chunk], values[chunk], part_grads[chunk],
                )  # fmt: skip
            if not whole:
                grads[:, start : start + group] = part_grads
        return values, grads


def _row_work(tape: Tape, terms: int, passes: int) -> int:
    """Amplitude operations of one row: `passes` sweeps over the tape, and the terms."""
    return tape.dim * (passes * int(tape.code.shape[0]) + terms)


def _half_angle(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = np.ascontiguousarray(angles, dtype=np.float64) * 0.5
    return np.cos(half), np.sin(half)


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every kernel for real and complex circuits.

    The wide kernels too: they run from `FUSED_MIN_QUBITS_REAL` qubits, and a node must not
    compile them on its first wide request.

    The first call in a process takes seconds without a disk cache (~0.3 s with one); a
    node calls it before it reports SERVING so that no request pays for compilation.
    """
    import cirq
    import sympy

    from qpumesh.node.circuits import compile_circuit

    a, b = sympy.symbols("a b")
    q = cirq.LineQubit.range(3)
    real = cirq.Circuit(cirq.H.on_each(*q), cirq.ry(a).on(q[0]), cirq.CNOT(q[0], q[1]), cirq.ry(b).on(q[1]))
    complex_ = real + cirq.Circuit(cirq.rz(a).on(q[2]), cirq.rx(b).on(q[2]), cirq.CZ(q[1], q[2]) ** b)
    engine = CompiledEngine()
    for circuit in (real, complex_):
        compiled = compile_circuit(circuit, 3)
        angles = np.zeros((1, len(compiled.slots)))
        engine.expectations(compiled, ["ZZZ"], angles, fused=False)
        engine.expectations(compiled, ["ZZZ"], angles, fused=True)
        engine.adjoint(compiled, ["ZZZ"], angles, np.ones((1, 1, 1)))
