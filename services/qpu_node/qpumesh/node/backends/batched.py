"""The ``batched`` engine: a whole parameter batch as one torch statevector tensor.

Qubit simulators such as qsim are built for one large state at a time; the node's workload
is the opposite -- thousands of parameter sets of a 4-8 qubit circuit -- where per-call
overhead dominates. This engine therefore compiles a `CompiledCircuit` once into a short
*program* of tensor steps and runs every step for all rows at once on a *batch-last*
``(2**n, rows)`` state (every elementwise op then streams over contiguous runs of rows;
rows are processed in cache-sized chunks):

* commuting operations are reordered (`fusion.schedule`) so that fixed gates form long runs --
  Cirq's moments interleave a CNOT ladder with the following rotation layer;
* runs of fixed gates are fused: on up to `DENSE_MAX_QUBITS` qubits into one ``2**n x 2**n``
  matrix, applied as an index gather (times a phase vector) when it is monomial (CNOT, X,
  SWAP, CZ, S, T... ladders) or as one matmul otherwise; on larger registers gate by gate
  (monomial gates as composed gathers);
* a rotation on one qubit is ``M = cos(θ/2) I − i sin(θ/2) G`` split into its diagonal ``d``
  and anti-diagonal ``o``: ``a_b' = d_b a_b + o_b a_{1−b}``, i.e. ``d·v + o·flip(v)`` on a
  ``(left, 2, right, rows)`` view -- three tensor ops, one for Z-type (diagonal) generators --
  with per-row coefficients computed for all slots in one go; rotations on several qubits
  use a per-row batched contraction;
* when every fixed gate is real and every generator purely imaginary (H, RY, CNOT, CZ...
  circuits) the state stays real and is simulated in float64 instead of complex128;
* a Pauli term ``P`` with X/Y-mask ``m`` is ``Σ_y conj(ψ_y) phase_P(y) ψ_{y⊕m}``; terms
  sharing a mask share one gather and are reduced with one matmul against their phases.

Everything is plain differentiable torch, so `BatchedBackend.expectations_torch` doubles as
an autograd reference for the parameter-shift code. Precision ``"double"`` is complex128
(float64 for real circuits), ``"single"`` complex64 (float32). The engine is noise-free.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qpumesh.node.backends.compiled import CompiledEngine
from qpumesh.node.backends.fusion import (
    ATOL,
    DENSE_MAX_QUBITS,
    FusedDense,
    FusedGather,
    fuse_fixed_run,
    is_real,
    pauli_mask,
    pauli_phases,
    schedule,
)
from qpumesh.node.cancellation import checkpoint
from qpumesh.node.circuits import CompiledCircuit, FixedOp, RotationOp
from qpumesh.node.limits import TERM_CACHE_BYTES

__all__ = ["DENSE_MAX_QUBITS", "MAX_QUBITS", "BatchedBackend"]

#: Largest register the engine accepts (the state is rows x 2**n).
MAX_QUBITS = 24
#: Measured crossover (see `torch_is_faster`): in double precision the compiled kernels were
#: faster for every measured size (1-4 qubits x 1000-16000 rows, 10-16 qubits x 1-4 rows),
#: so no register is small enough for torch to win: the torch program serves single precision.
TORCH_MAX_QUBITS = 0
TORCH_MIN_ROWS = 16000
#: Rows are simulated in chunks of about this many amplitudes: large enough to amortise the
#: per-step overhead, small enough that intermediate states stay in cache (a 1000-row batch
#: of 4 qubits is faster per row than a 48000-row one in a single piece).
_CHUNK_AMPLITUDES = 1 << 14
#: ... but at least this many rows, unless that exceeds `_MAX_CHUNK_AMPLITUDES`.
_MIN_CHUNK_ROWS = 64
#: Memory bound of one chunk (2**22 complex128 amplitudes = 64 MiB).
_MAX_CHUNK_AMPLITUDES = 1 << 22



@dataclass(frozen=True)
class _Gather:
    """``new[y] = phase[y] * old[src[y]]`` (phase None means all ones; state batch-last)."""

    src: torch.Tensor
    phase: torch.Tensor | None


@dataclass(frozen=True)
class _Dense:
    """``new = matrix @ old`` on the full register (state batch-last)."""

    matrix: torch.Tensor


@dataclass(frozen=True)
class _Local:
    """A fixed k-qubit matrix on `targets` of a large register."""

    targets: tuple[int, ...]
    matrix: torch.Tensor


@dataclass(frozen=True)
class _Rot1:
    """Per-row 2x2 rotation of slot `slot` on one qubit (state viewed ``(left, 2, right, rows)``).

    `diagonal` rotations (Z-type generators) are a single multiply.
    """

    left: int
    right: int
    slot: int
    diagonal: bool


@dataclass(frozen=True)
class _RotK:
    """Per-row rotation of slot `slot` on several qubits."""

    targets: tuple[int, ...]
    slot: int


_Step = _Gather | _Dense | _Local | _Rot1 | _RotK


@dataclass(frozen=True)
class _TermGroup:
    """Terms sharing an X/Y mask: ``out = Re[phases @ (conj ψ · ψ[src])]``."""

    src: torch.Tensor | None  # None for the Z-only group (no gather, |ψ|²)
    phases: torch.Tensor  # (n_group, dim) complex or real
    columns: list[int]  # positions of these terms in the request


class _Program:
    """A compiled circuit as torch steps, for one dtype. Immutable after construction."""

    def __init__(self, compiled: CompiledCircuit, precision: str) -> None:
        self.n = compiled.n_qubits
        self.dim = 1 << self.n
        self.real = is_real(compiled)
        if precision == "single":
            self.dtype = torch.float32 if self.real else torch.complex64
            self.angle_dtype = torch.float32
        else:
            self.dtype = torch.float64 if self.real else torch.complex128
            self.angle_dtype = torch.float64
        self.steps = self._compile_steps(compiled)
        # A leading fixed run acting on |0...0> is just its first column.
        self.initial: torch.Tensor | None = None
        if self.steps and isinstance(self.steps[0], _Dense | _Gather):
            zero = np.zeros(self.dim, dtype=np.complex128)
            zero[0] = 1
            first = self.steps[0]
            if isinstance(first, _Dense):
                column = first.matrix[:, 0].clone()
            else:
                column = torch.from_numpy(zero).to(self.dtype)[first.src]
                if first.phase is not None:
                    column = column * first.phase.view(-1)
            self.initial = column
        n_slots = len(compiled.slots)
        generators = np.zeros((n_slots, 2, 2), dtype=np.complex128)
        self.multi: dict[int, torch.Tensor] = {}
        for op in compiled.ops:
            if isinstance(op, RotationOp):
                if len(op.targets) == 1:
                    generators[op.slot] = op.generator
                else:
                    self.multi[op.slot] = self._tensor(-1j * op.generator)
        # M = cos(θ/2) I + sin(θ/2) (−i G), split as M = diag(d) + antidiag(o) so that
        # (M a)_b = d_b a_b + o_b a_{1−b}: store the diagonal (−iG)_00, (−iG)_11 and the
        # off-diagonal (−iG)_01, (−iG)_10 of every 1-qubit slot, (n_slots, 2, 2).
        minus_i_g = -1j * generators
        parts = np.stack(
            [
                np.stack([minus_i_g[:, 0, 0], minus_i_g[:, 1, 1]], axis=1),
                np.stack([minus_i_g[:, 0, 1], minus_i_g[:, 1, 0]], axis=1),
            ],
            axis=1,
        )
        self.minus_i_g = self._tensor(parts)
        self.identity_part = self._tensor(np.array([[1.0, 1.0], [0.0, 0.0]]))
        self._term_cache: dict[tuple[str, ...], list[_TermGroup]] = {}
        self._term_bytes = 0
        self._lock = threading.Lock()

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        if self.real:
            array = np.ascontiguousarray(np.real(array))
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.dtype)

    def _compile_steps(self, compiled: CompiledCircuit) -> list[_Step]:
        steps: list[_Step] = []
        run: list[FixedOp] = []

        def flush() -> None:
            if run:
                steps.extend(self._fixed_run(run))
                run.clear()

        for op in schedule(compiled.ops):
            if isinstance(op, FixedOp):
                run.append(op)
                continue
            flush()
            if len(op.targets) == 1:
                (q,) = op.targets
                diagonal = bool(abs(op.generator[0, 1]) < ATOL and abs(op.generator[1, 0]) < ATOL)
                steps.append(_Rot1(left=1 << q, right=1 << (self.n - q - 1), slot=op.slot, diagonal=diagonal))
            else:
                steps.append(_RotK(op.targets, op.slot))
        flush()
        return steps

    def _fixed_run(self, run: list[FixedOp]) -> list[_Step]:
        out: list[_Step] = []
        for step in fuse_fixed_run(run, self.n):
            if isinstance(step, FusedGather):
                out.append(self._gather(step.src, step.phase))
            elif isinstance(step, FusedDense):
                out.append(_Dense(self._tensor(step.matrix)))
            else:
                out.append(_Local(step.targets, self._tensor(step.matrix)))
        return out

    def _gather(self, src: np.ndarray, phase: np.ndarray) -> _Gather:
        ones = np.allclose(phase, 1.0, atol=ATOL)
        phase_t = None if ones else self._tensor(phase).unsqueeze(1)
        return _Gather(torch.from_numpy(src.astype(np.int64)), phase_t)

    def term_groups(self, terms: tuple[str, ...]) -> list[_TermGroup]:
        """Return the measurement tables of `terms`, kept for the next request while they are small.

        The cache holds at most `limits.TERM_CACHE_BYTES` of tables (a term's phase vector is
        ``2**n`` entries: 16 MiB at 20 qubits); larger sets are rebuilt per request.
        """
        with self._lock:
            groups = self._term_cache.get(terms)
        if groups is not None:
            return groups
        groups = self._build_groups(terms)
        size = sum(g.phases.nbytes + (0 if g.src is None else g.src.nbytes) for g in groups)
        if size <= TERM_CACHE_BYTES // 4:
            with self._lock:
                if self._term_bytes + size > TERM_CACHE_BYTES or len(self._term_cache) >= 64:
                    self._term_cache.clear()
                    self._term_bytes = 0
                self._term_cache[terms] = groups
                self._term_bytes += size
        return groups

    def _build_groups(self, terms: tuple[str, ...]) -> list[_TermGroup]:
        by_mask: dict[int, list[int]] = {}
        for j, term in enumerate(terms):
            by_mask.setdefault(pauli_mask(term, "XY"), []).append(j)
        index = np.arange(self.dim, dtype=np.int64)
        groups = []
        for mask, columns in by_mask.items():
            phases = np.empty((self.dim, len(columns)), dtype=np.complex128)
            for c, j in enumerate(columns):
                phases[:, c] = pauli_phases(terms[j])[1]
            src = None if mask == 0 else torch.from_numpy(index ^ mask)
            table = phases.real.copy() if mask == 0 or self.real else phases
            ph = torch.from_numpy(np.ascontiguousarray(table.T))
            ph = ph.to(self.angle_dtype if mask == 0 else self.dtype)
            groups.append(_TermGroup(src, ph, columns))
        return groups

    def run(self, angles: torch.Tensor, terms: tuple[str, ...]) -> torch.Tensor:
        """Return expectations ``(rows, len(terms))`` for angles ``(rows, n_slots)`` (differentiable).

        The state is kept *batch-last*, ``(2**n, rows)``: every step then works on contiguous
        runs of `rows` elements, which is several times faster than ``(rows, 2**n)`` for the
        small registers the node serves.
        """
        rows = angles.shape[0]
        half = angles.to(self.angle_dtype).t() * 0.5  # (n_slots, rows)
        cos, sin = torch.cos(half), torch.sin(half)
        coeffs: torch.Tensor | None = None
        if self.minus_i_g.shape[0]:
            # (n_slots, 2, 2, rows): [d, o] of every 1-qubit slot's matrix, per row.
            c = cos.to(self.dtype).view(-1, 1, 1, rows)
            s = sin.to(self.dtype).view(-1, 1, 1, rows)
            coeffs = c * self.identity_part.view(1, 2, 2, 1) + s * self.minus_i_g.unsqueeze(3)
        steps = self.steps
        if self.initial is not None:
            state = self.initial.unsqueeze(1).expand(self.dim, rows).contiguous()
            steps = steps[1:]
        else:
            state = torch.zeros((self.dim, rows), dtype=self.dtype)
            state[0] = 1
        for step in steps:
            if isinstance(step, _Rot1):
                assert coeffs is not None
                m = coeffs[step.slot]
                view = state.view(step.left, 2, step.right, rows)
                d = m[0].view(1, 2, 1, rows)
                if step.diagonal:
                    state = (view * d).view(self.dim, rows)
                else:
                    o = m[1].view(1, 2, 1, rows)
                    state = torch.addcmul(view * d, view.flip(1), o).view(self.dim, rows)
            elif isinstance(step, _Gather):
                state = state[step.src] if step.phase is None else state[step.src] * step.phase
            elif isinstance(step, _Dense):
                state = step.matrix @ state
            elif isinstance(step, _RotK):
                size = 1 << len(step.targets)
                eye = torch.eye(size, dtype=self.dtype).unsqueeze(2)
                c = cos[step.slot].to(self.dtype)
                s = sin[step.slot].to(self.dtype)
                matrix = c * eye + s * self.multi[step.slot].unsqueeze(2)  # (size, size, rows)
                state = _apply_local(state, self.n, step.targets, matrix)
            else:
                state = _apply_local(state, self.n, step.targets, step.matrix)
        return self._measure(state, terms)

    def _measure(self, state: torch.Tensor, terms: tuple[str, ...]) -> torch.Tensor:
        rows = state.shape[1]
        if not terms:
            return torch.zeros((rows, 0), dtype=self.angle_dtype)
        parts = []
        order: list[int] = []
        for group in self.term_groups(terms):
            if group.src is None:
                probs = state.square() if self.real else state.real.square() + state.imag.square()
                parts.append(group.phases @ probs)
            elif self.real:
                parts.append(group.phases @ (state * state[group.src]))
            else:
                parts.append((group.phases @ (state.conj() * state[group.src])).real)
            order.extend(group.columns)
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        if order != list(range(len(terms))):
            inverse = np.empty(len(order), dtype=np.int64)
            inverse[np.asarray(order)] = np.arange(len(order))
            out = out[torch.from_numpy(inverse)]
        return out.t()


def _apply_local(state: torch.Tensor, n: int, targets: tuple[int, ...], matrix: torch.Tensor) -> torch.Tensor:
    """Apply a k-qubit matrix to `targets` of a batch-last state ``(2**n, rows)``.

    `matrix` is ``(2**k, 2**k)`` (fixed) or ``(2**k, 2**k, rows)`` (one per row).
    """
    rows = state.shape[1]
    k = len(targets)
    tensor = state.view((2,) * n + (rows,))
    moved = torch.movedim(tensor, list(targets), list(range(k)))
    shape = moved.shape
    flat = moved.reshape(1 << k, -1, rows)
    if matrix.dim() == 2:
        out = (matrix @ flat.reshape(1 << k, -1)).view(flat.shape)
    else:
        out = torch.einsum("ijb,jrb->irb", matrix, flat)
    back = torch.movedim(out.reshape(shape), list(range(k)), list(targets))
    return back.reshape(1 << n, rows)


class BatchedBackend:
    """The ``batched`` engine: compiled kernels in double precision, torch otherwise. Thread-safe.

    In double precision a request runs on the compiled kernels (`CompiledEngine`) unless
    `torch_is_faster` says the vectorised torch program wins for its size; in single
    precision it runs on torch in complex64. `adjoint` (exact gradients) always runs on the
    compiled kernels in double precision. Which path runs depends only on the request's size
    and the configured precision, never on load, so a request gets the same numbers on
    every node.

    Args:
        precision: ``"double"`` (complex128) or ``"single"`` (complex64).
    """

    name = "batched"

    def __init__(self, precision: str = "double") -> None:
        if precision not in ("double", "single"):
            raise ValueError(f"precision must be 'double' or 'single', got {precision!r}")
        self.precision = precision
        self.compiled = CompiledEngine()
        self._programs: weakref.WeakKeyDictionary[CompiledCircuit, _Program] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def supports(self, compiled: CompiledCircuit) -> str | None:
        """None when the register is small enough for a whole-batch statevector."""
        if compiled.n_qubits > MAX_QUBITS:
            return f"the batched engine simulates at most {MAX_QUBITS} qubits"
        return None

    def program(self, compiled: CompiledCircuit) -> _Program:
        """Return the torch program of `compiled` (built once, then cached)."""
        with self._lock:
            program = self._programs.get(compiled)
            if program is None:
                program = _Program(compiled, self.precision)
                self._programs[compiled] = program
            return program

    def expectations(self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray) -> np.ndarray:
        """Exact Pauli-term expectations, ``(rows, len(terms))`` float64."""
        rows = angles.shape[0]
        if self.precision == "double" and not torch_is_faster(compiled.n_qubits, rows):
            return self.compiled.expectations(compiled, terms, angles)
        program = self.program(compiled)
        out = np.empty((rows, len(terms)), dtype=np.float64)
        chunk = max(
            _CHUNK_AMPLITUDES // program.dim, min(_MIN_CHUNK_ROWS, _MAX_CHUNK_AMPLITUDES // program.dim), 1
        )
        key = tuple(terms)
        with torch.no_grad():
            for start in range(0, rows, chunk):
                checkpoint()
                part = torch.from_numpy(np.ascontiguousarray(angles[start : start + chunk]))
                out[start : start + chunk] = program.run(part, key).to(torch.float64).numpy()
        return out

    def adjoint(
        self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Term expectations and slot gradients by adjoint differentiation (see `CompiledEngine.adjoint`)."""
        return self.compiled.adjoint(compiled, terms, angles, weights)

    def expectations_torch(
        self, compiled: CompiledCircuit, terms: Sequence[str], angles: torch.Tensor
    ) -> torch.Tensor:
        """Differentiable expectations for a torch angle tensor ``(rows, n_slots)``.

        Gradients flow to `angles` through torch autograd; use it as a reference for the
        parameter-shift rule or inside a torch model.
        """
        return self.program(compiled).run(angles, tuple(terms))


def torch_is_faster(n_qubits: int, rows: int) -> bool:
    """Whether the torch program beats the compiled kernels for this request size.

    The crossover is measured, not guessed: ``benchmarks/bench_engines.py --only crossover
    wide`` times both paths on the QLSTM ansatzes and docs/performance.md records the table
    (the kernels won everywhere, 1.1-6x at 1-4 qubits and 16000 rows, so this is False).
    """
    return n_qubits <= TORCH_MAX_QUBITS and rows >= TORCH_MIN_ROWS
