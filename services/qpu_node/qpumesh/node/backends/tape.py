"""A compiled circuit as a flat *tape* of numeric arrays, the input of the compiled kernels.

`build_tape` plans the circuit once (`fusion.schedule`, `fusion.fuse_fixed_run`) and lays
every step out in a few contiguous arrays, so that one call of a compiled kernel
(`qpumesh.node.backends.kernels`) can run the whole circuit -- forward and, for adjoint
differentiation, backward -- without returning to Python between gates. Step kinds:

* `ROT1` / `ROTD` -- a one-qubit rotation ``cos(θ/2) I + sin(θ/2) (−iG)`` of one slot
  (`ROTD` when ``G`` is diagonal: a Z-type phase, half the work);
* `ROTK` -- the same on two or three qubits;
* `FIXK` -- a fixed gate on one to three qubits (its matrix, then its adjoint);
* `GATHER` -- a fused monomial run on the whole register, ``new[y] = phase[y] · old[src[y]]``
  (and the inverse gather for the backward sweep);
* `DENSE` -- a fused run on a small register as one ``2**n x 2**n`` matrix (and its adjoint);
* `CHAIN` -- a run of one-qubit steps (`ROT1`, `ROTD`, one-qubit `FIXK`) on one qubit, stored
  as a header row followed by its steps: the kernels multiply the steps into one 2x2 matrix
  per row and make ONE pass over the state instead of one per gate (Cirq's ``Rot = RZ·RY·RZ``,
  an encoding ``H·RY·RZ``). One-qubit steps on different qubits commute, so every run of
  them between wider steps is regrouped qubit by qubit first.

For rotations the tape stores ``−iG``; for circuits whose state stays real (`fusion.is_real`)
every array is float64 instead of complex128. A leading fused run acts on ``|0…0⟩`` and is
folded into `Tape.initial`.

`TermTable` is the same idea for Pauli terms: ``(P ψ)[y] = c · (−1)^{|(y ⊕ x) ∧ z|} ψ[y ⊕ x]``
with ``c = i^{#Y}``. In a real circuit a term with an odd number of Y has expectation 0 for
every angle (``c`` is then imaginary), so its ``c`` is stored as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qpumesh.node.backends.fusion import (
    ATOL,
    FusedDense,
    FusedGather,
    FusedLocal,
    FusedStep,
    fuse_fixed_run,
    is_real,
    pauli_mask,
    schedule,
)
from qpumesh.node.cancellation import checkpoint
from qpumesh.node.circuits import CompiledCircuit, FixedOp, RotationOp

__all__ = [
    "CHAIN",
    "DENSE",
    "FIXK",
    "GATHER",
    "ROT1",
    "ROTD",
    "ROTK",
    "Tape",
    "TermTable",
    "build_tape",
    "term_table",
]

ROT1, ROTD, ROTK, FIXK, GATHER, DENSE, CHAIN = range(7)
#: Columns of `Tape.code`.
KIND, T0, NT, SLOT, MOFF, GOFF, SPAN, HEAD = 0, 1, 4, 5, 6, 7, 8, 9
_COLUMNS = 10


@dataclass(frozen=True, eq=False)
class Tape:
    """The steps of one circuit as arrays (see the module docstring). Immutable.

    Attributes:
        n: Qubits; qubit ``k`` is bit ``n − 1 − k`` of a state index.
        real: The state stays real; `mats`, `phases` and `initial` are float64.
        code: The step table, int64 ``(rows, 10)``; columns `KIND`, `T0`..`T0 + 2` (targets,
            unused ones 0), `NT` (number of targets; steps of a `CHAIN` header), `SLOT`
            (rotation slot, −1 for fixed steps), `MOFF` (offset of the step's matrices in
            `mats`), `GOFF` (offset in `gidx`/`phases`), `SPAN` (rows of the step: 1, or 1 +
            its steps for a chain header) and `HEAD` (row of the step's header).
        mats: Flattened row-major matrices: ``−iG`` for rotations; ``U`` then ``U†`` otherwise.
        gidx: Gather sources, ``src`` then the inverse ``src``, int64.
        phases: Gather phases, ``phase`` then the inverse phases.
        initial: The state after the leading fused run (``|0…0⟩`` when there is none).
        n_slots: Number of angle slots of the circuit.
    """

    n: int
    real: bool
    code: np.ndarray
    mats: np.ndarray
    gidx: np.ndarray
    phases: np.ndarray
    initial: np.ndarray
    n_slots: int

    @property
    def dim(self) -> int:
        """Number of amplitudes, ``2**n``."""
        return 1 << self.n

    @property
    def dtype(self) -> type[np.floating] | type[np.complexfloating]:
        """float64 for real circuits, else complex128."""
        return np.float64 if self.real else np.complex128


@dataclass(frozen=True, eq=False)
class TermTable:
    """Dense Pauli strings as ``(x mask, yz mask, c)`` arrays for the kernels."""

    xmask: np.ndarray
    yzmask: np.ndarray
    coeff: np.ndarray


class _Builder:
    def __init__(self, n: int, real: bool) -> None:
        self.n = n
        self.real = real
        self.rows: list[tuple[int, tuple[int, ...], int, int, int]] = []
        self.mats: list[np.ndarray] = []
        self.mat_size = 0
        self.gathers: list[np.ndarray] = []
        self.phases: list[np.ndarray] = []
        self.gather_size = 0

    def _matrix(self, *matrices: np.ndarray) -> int:
        offset = self.mat_size
        for m in matrices:
            flat = np.ascontiguousarray(m).reshape(-1)
            self.mats.append(flat)
            self.mat_size += flat.size
        return offset

    def rotation(self, op: RotationOp) -> None:
        minus_i_g = -1j * op.generator
        if len(op.targets) > 1:
            kind = ROTK
        elif abs(op.generator[0, 1]) < ATOL and abs(op.generator[1, 0]) < ATOL:
            kind = ROTD
        else:
            kind = ROT1
        self.rows.append((kind, op.targets, op.slot, self._matrix(minus_i_g), 0))

    def fused(self, step: FusedStep) -> None:
        if isinstance(step, FusedGather):
            inverse_src = np.empty_like(step.src)
            inverse_src[step.src] = np.arange(step.src.size, dtype=np.int64)
            inverse_phase = np.empty_like(step.phase)
            inverse_phase[step.src] = np.conj(step.phase)
            offset = self.gather_size
            self.gathers += [step.src, inverse_src]
            self.phases += [step.phase, inverse_phase]
            self.gather_size += 2 * step.src.size
            self.rows.append((GATHER, (), -1, 0, offset))
        elif isinstance(step, FusedDense):
            self.rows.append((DENSE, (), -1, self._matrix(step.matrix, step.matrix.conj().T), 0))
        else:
            m = step.matrix
            self.rows.append((FIXK, step.targets, -1, self._matrix(m, m.conj().T), 0))

    def tape(self, initial: np.ndarray, n_slots: int) -> Tape:
        rows = _chains(self.rows)
        code = np.zeros((len(rows), _COLUMNS), dtype=np.int64)
        head = remaining = 0
        for i, (kind, targets, slot, moff, goff) in enumerate(rows):
            code[i, [KIND, NT, SLOT, MOFF, GOFF]] = kind, len(targets), slot, moff, goff
            code[i, T0 : T0 + len(targets)] = targets
            if remaining:  # a step of the chain headed at `head`
                remaining -= 1
            else:
                head = i
                code[i, SPAN] = 1
                if kind == CHAIN:  # its header carries the chain length in `goff`, see _chains
                    remaining = goff
                    code[i, [NT, GOFF, SPAN]] = goff, 0, 1 + goff
            code[i, HEAD] = head
        dtype = np.float64 if self.real else np.complex128
        mats = _concat(self.mats, dtype, self.real)
        phases = _concat(self.phases, dtype, self.real)
        gidx = np.concatenate(self.gathers) if self.gathers else np.zeros(1, dtype=np.int64)
        return Tape(
            n=self.n,
            real=self.real,
            code=code,
            mats=mats,
            gidx=gidx.astype(np.int64),
            phases=phases,
            initial=_cast(initial, dtype, self.real),
            n_slots=n_slots,
        )


_Row = tuple[int, tuple[int, ...], int, int, int]


def _one_qubit(row: _Row) -> bool:
    kind, targets = row[0], row[1]
    return kind in (ROT1, ROTD) or (kind == FIXK and len(targets) == 1)


def _chains(rows: list[_Row]) -> list[_Row]:
    """Regroup each run of one-qubit rows qubit by qubit; runs of 2+ rows on a qubit become chains.

    A chain is a header ``(CHAIN, (q,), -1, 0, length)`` followed by its rows in order.
    """
    out: list[_Row] = []
    pending: dict[int, list[_Row]] = {}

    def flush() -> None:
        for q, run in pending.items():
            if len(run) > 1:
                out.append((CHAIN, (q,), -1, 0, len(run)))
            out.extend(run)
        pending.clear()

    for row in rows:
        if _one_qubit(row):
            pending.setdefault(row[1][0], []).append(row)
        else:
            flush()
            out.append(row)
    flush()
    return out


def _cast(array: np.ndarray, dtype: type, real: bool) -> np.ndarray:
    return np.ascontiguousarray(np.real(array) if real else array, dtype=dtype)


def _concat(parts: list[np.ndarray], dtype: type, real: bool) -> np.ndarray:
    if not parts:
        return np.zeros(1, dtype=dtype)
    return _cast(np.concatenate(parts), dtype, real)


def build_tape(compiled: CompiledCircuit, local_only: bool = False) -> Tape:
    """Plan `compiled` for the compiled kernels (fused runs, real or complex arithmetic).

    Args:
        compiled: The circuit.
        local_only: Keep every fixed gate as its own `FIXK` step on its targets instead of
            fusing runs into full-register gathers or matrices: the plan of the wide kernels
            (`wide_kernels`), which work on cache-sized blocks of the state and cannot apply
            a step that mixes the whole register.
    """
    n = compiled.n_qubits
    builder = _Builder(n, is_real(compiled))
    run: list[FixedOp] = []
    initial = np.zeros(1 << n, dtype=np.complex128)
    initial[0] = 1.0
    first = True

    def flush() -> None:
        nonlocal initial, first
        if not run:
            return
        steps = [FusedLocal(op.targets, op.matrix) for op in run] if local_only else fuse_fixed_run(run, n)
        run.clear()
        if first and len(steps) == 1 and isinstance(steps[0], FusedGather | FusedDense):
            # A leading fused run acting on |0...0> is its first column.
            lead = steps[0]
            if isinstance(lead, FusedDense):
                initial = lead.matrix[:, 0].copy()
            else:
                initial = np.where(lead.src == 0, lead.phase, 0).astype(np.complex128)
            steps = []
        for step in steps:
            builder.fused(step)

    for op in schedule(compiled.ops):
        checkpoint()
        if isinstance(op, FixedOp):
            run.append(op)
            continue
        flush()
        first = False
        builder.rotation(op)
    flush()
    return builder.tape(initial, len(compiled.slots))


def term_table(terms: Sequence[str], real: bool) -> TermTable:
    """Tabulate dense Pauli strings for the kernels (real: odd-Y terms get ``c = 0``)."""
    count = len(terms)
    xmask = np.empty(count, dtype=np.int64)
    yzmask = np.empty(count, dtype=np.int64)
    coeff = np.empty(count, dtype=np.float64 if real else np.complex128)
    for t, term in enumerate(terms):
        xmask[t] = pauli_mask(term, "XY")
        yzmask[t] = pauli_mask(term, "YZ")
        c = 1j ** term.count("Y")
        coeff[t] = (c.real if abs(c.imag) < ATOL else 0.0) if real else c
    return TermTable(xmask, yzmask, coeff)
