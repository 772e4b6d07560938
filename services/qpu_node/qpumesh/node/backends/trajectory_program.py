"""One Monte Carlo trajectory per column: a compiled noisy circuit as batched statevector steps.

The state of all trajectories is one batch-last ``(2**n, columns)`` tensor (complex128, or
float64 when every gate keeps real amplitudes real). A depolarizing channel is a mixture of
Pauli strings, so a trajectory applies, after each gate, the identity with probability ``1 − p``
or one of the ``4**k − 1`` other strings with probability ``p / (4**k − 1)`` -- only to the
columns that drew one (a bit flip and a sign per qubit; ``Y = i X Z``, and a trajectory's global
phase does not matter, so real circuits stay real).

Steps, in the circuit's order:

* runs of one-qubit gates on the same qubit (operations on other qubits in between commute
  with them) are *fused*: the per-column product ``M`` of their 2 × 2 matrices is applied once
  as ``diag(M)·ψ + antidiag(M)·flip(ψ)``. Their channels fuse too: a one-qubit depolarizing
  channel commutes with every one-qubit unitary on its qubit, and ``m`` of them in a row are one
  depolarizing channel with Bloch shrink ``f**m`` (``f = 1 − 4p/3``), i.e. probability
  ``p_m = 3/4 (1 − f**m)`` -- the same distribution with one draw instead of ``m``;
* a monomial multi-qubit gate (CNOT, CZ, SWAP, CCX...) is a gather of the whole register;
* other multi-qubit gates are a local matmul (`local_ops.apply_local`); a multi-qubit rotation is
  ``cos(θ/2) ψ + sin(θ/2) (−iG) ψ`` with per-column angles.

A term's expectation is ``Σ_y conj(ψ_y) phase_P(y) ψ_{y⊕m}``; terms sharing an X/Y mask share
one gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from qpumesh.node.backends.local_ops import apply_local, as_monomial, full_register_gather
from qpumesh.node.circuits import CompiledCircuit, CompiledOp, FixedOp
from qpumesh.node.noise import NoiseConfig

__all__ = ["TrajectoryProgram"]

_ATOL = 1e-12


@dataclass(frozen=True)
class _Factor:
    """One gate of a fused one-qubit run: a fixed 2 × 2 unitary, or ``−iG`` of slot `slot`."""

    matrix: torch.Tensor
    slot: int  # -1 for a fixed gate


@dataclass(frozen=True)
class _Step:
    """One gate (or fused one-qubit run), then its channel (``channel`` -1 = none).

    ``kind``: ``"run1"`` (fused one-qubit gates, `factors`; `diagonal` when all are diagonal),
    ``"gather"`` (a monomial gate: `src`, `phase`), ``"rotk"`` (a multi-qubit rotation of slot
    `slot`, `matrix` = ``−iG``) or ``"local"`` (another fixed gate, `matrix` = its unitary).
    """

    kind: str
    targets: tuple[int, ...]
    channel: int = -1
    probability: float = 0.0
    factors: tuple[_Factor, ...] = ()
    diagonal: bool = False
    matrix: torch.Tensor | None = None
    src: torch.Tensor | None = None
    phase: torch.Tensor | None = None
    slot: int = -1


@dataclass(frozen=True)
class TermGroup:
    """Terms sharing an X/Y mask: ``Re[phases @ (conj ψ · ψ[src])]`` gives their values."""

    src: torch.Tensor
    phases: torch.Tensor
    columns: list[int]


@dataclass
class _Builder:
    steps: list[_Step] = field(default_factory=list)
    channels: int = 0

    def channel(self, probability: float) -> int:
        if probability <= 0:
            return -1
        self.channels += 1
        return self.channels - 1


class TrajectoryProgram:
    """A compiled circuit and noise profile as trajectory steps. Immutable, thread-safe.

    Args:
        compiled: The circuit.
        noise: The node's noise profile (its gate noise).
    """

    def __init__(self, compiled: CompiledCircuit, noise: NoiseConfig) -> None:
        self.n = compiled.n_qubits
        self.dim = 1 << self.n
        self.real = _is_real(compiled)
        self.dtype = torch.float64 if self.real else torch.complex128
        self._noise = noise
        build = _Builder()
        pending: dict[int, list[CompiledOp]] = {}
        for op in compiled.ops:
            if len(op.targets) == 1:
                pending.setdefault(op.targets[0], []).append(op)
                continue
            for q in op.targets:
                self._flush(build, q, pending.pop(q, []))
            build.steps.append(self._wide_step(build, op))
        for q in sorted(pending):
            self._flush(build, q, pending[q])
        self.steps = tuple(build.steps)
        #: Number of channels, i.e. uniforms drawn per trajectory.
        self.channels = build.channels

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        if self.real:
            array = np.real(array)
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.dtype)

    def _flush(self, build: _Builder, q: int, run: list[CompiledOp]) -> None:
        """Append a fused one-qubit run on qubit `q` and its fused channel."""
        if not run:
            return
        factors = []
        diagonal = True
        for op in run:
            matrix = op.matrix if isinstance(op, FixedOp) else -1j * op.generator
            diagonal &= bool(abs(matrix[0, 1]) < _ATOL and abs(matrix[1, 0]) < _ATOL)
            factors.append(_Factor(self._tensor(matrix), -1 if isinstance(op, FixedOp) else op.slot))
        shrink = 1.0 - 4.0 * self._noise.depolarizing(1) / 3.0
        probability = 0.75 * (1.0 - shrink ** len(run))
        build.steps.append(
            _Step("run1", (q,), build.channel(probability), probability, tuple(factors), diagonal)
        )

    def _wide_step(self, build: _Builder, op: CompiledOp) -> _Step:
        """Return the step of a gate on two or three qubits."""
        p = self._noise.depolarizing(len(op.targets))
        channel = build.channel(p)
        if not isinstance(op, FixedOp):
            return _Step(
                "rotk", op.targets, channel, p, matrix=self._tensor(-1j * op.generator), slot=op.slot
            )
        monomial = as_monomial(op.matrix)
        if monomial is None:
            return _Step("local", op.targets, channel, p, matrix=self._tensor(op.matrix))
        src, phase = full_register_gather(*monomial, 2, self.n, op.targets)
        phase_t = None if np.allclose(phase, 1.0, atol=_ATOL) else self._tensor(phase).view(-1, 1)
        return _Step("gather", op.targets, channel, p, src=torch.from_numpy(src), phase=phase_t)

    def term_groups(self, terms: Sequence[str]) -> list[TermGroup]:
        """Group `terms` (dense Pauli strings) for `run`."""
        index = np.arange(self.dim, dtype=np.int64)
        by_mask: dict[int, list[int]] = {}
        for j, term in enumerate(terms):
            by_mask.setdefault(_mask(term, "XY"), []).append(j)
        groups = []
        for mask, columns in by_mask.items():
            phases = np.empty((len(columns), self.dim), dtype=np.complex128)
            for c, j in enumerate(columns):
                parity = _parity((index ^ mask) & _mask(terms[j], "YZ"))
                phases[c] = (1j ** terms[j].count("Y")) * (1 - 2 * parity.astype(np.float64))
            groups.append(TermGroup(torch.from_numpy(index ^ mask), self._tensor(phases), columns))
        return groups

    def run(self, angles: np.ndarray, draws: np.ndarray, groups: list[TermGroup], n_terms: int) -> np.ndarray:
        """Simulate one trajectory per column.

        Args:
            angles: ``(columns, n_slots)`` slot angles of each column.
            draws: ``(channels, columns)`` uniforms in ``[0, 1)``.
            groups: The requested terms (`term_groups`).
            n_terms: Number of terms.

        Returns:
            ``(columns, n_terms)`` float64: each trajectory's term expectations.
        """
        columns = angles.shape[0]
        half = torch.from_numpy(np.ascontiguousarray(angles.T)) * 0.5  # (n_slots, columns)
        cos, sin = torch.cos(half).to(self.dtype), torch.sin(half).to(self.dtype)
        state = torch.zeros((self.dim, columns), dtype=self.dtype)
        state[0] = 1
        for step in self.steps:
            state = self._apply_gate(state, step, cos, sin)
            if step.channel >= 0:
                self._apply_channel(state, step, draws[step.channel])
        out = np.empty((columns, n_terms), dtype=np.float64)
        for group in groups:
            product = state * state[group.src] if self.real else state.conj() * state[group.src]
            values = group.phases @ product
            out[:, group.columns] = (values if self.real else values.real).numpy().T
        return out

    def _apply_gate(
        self, state: torch.Tensor, step: _Step, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """Return the state after `step`'s gate (without its channel)."""
        columns = state.shape[1]
        if step.kind == "run1":
            matrix = _run_matrix(step.factors, cos, sin)  # (columns, 2, 2)
            view = state.view(1 << step.targets[0], 2, -1, columns)
            d = torch.diagonal(matrix, dim1=1, dim2=2).t().reshape(1, 2, 1, columns)
            if step.diagonal:
                return (view * d).view(self.dim, columns)
            o = torch.stack([matrix[:, 0, 1], matrix[:, 1, 0]]).view(1, 2, 1, columns)
            return torch.addcmul(view * d, view.flip(1), o).view(self.dim, columns)
        if step.kind == "gather":
            assert step.src is not None
            moved = state[step.src]
            return moved if step.phase is None else moved * step.phase
        assert step.matrix is not None
        turned = apply_local(state, 2, self.n, step.targets, step.matrix)
        if step.kind == "local":
            return turned
        return state * cos[step.slot] + turned * sin[step.slot]

    def _apply_channel(self, state: torch.Tensor, step: _Step, uniforms: np.ndarray) -> None:
        """Apply the sampled Pauli of `step`'s channel, in place, to the columns that drew one."""
        hit = np.flatnonzero(uniforms < step.probability)
        if hit.size == 0:
            return
        k = len(step.targets)
        others = (1 << (2 * k)) - 1
        # Given a hit, u / p is uniform in [0, 1): pick one of the 4**k − 1 non-identity strings.
        which = 1 + np.minimum((uniforms[hit] / step.probability * others).astype(np.int64), others - 1)
        index = torch.from_numpy(hit)
        sub = state.index_select(1, index)
        h = hit.size
        for position, q in enumerate(step.targets):
            letter = (which >> (2 * (k - 1 - position))) & 3  # I=0, X=1, Y=2, Z=3
            flip = torch.from_numpy((letter == 1) | (letter == 2)).view(1, 1, 1, h)
            sign = torch.ones((2, h), dtype=torch.float64)
            sign[1] = torch.from_numpy(1.0 - 2.0 * ((letter == 2) | (letter == 3)))
            view = sub.view(1 << q, 2, -1, h)
            view = torch.where(flip, view.flip(1), view) * sign.view(1, 2, 1, h).to(self.dtype)
            sub = view.reshape(self.dim, h)
        state.index_copy_(1, index, sub)


def _run_matrix(factors: Sequence[_Factor], cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Return the per-column product of a fused run's 2 × 2 matrices, ``(columns, 2, 2)``."""
    columns = cos.shape[1]
    product: torch.Tensor | None = None
    for factor in factors:
        if factor.slot < 0:
            product = factor.matrix.expand(columns, 2, 2) if product is None else factor.matrix @ product
            continue
        c, s = cos[factor.slot].view(-1, 1, 1), sin[factor.slot].view(-1, 1, 1)
        eye = torch.eye(2, dtype=factor.matrix.dtype)
        gate = c * eye + s * factor.matrix  # cos(θ/2) I − i sin(θ/2) G
        product = gate if product is None else gate @ product
    assert product is not None
    return product


def _parity(x: np.ndarray) -> np.ndarray:
    """Return the parity of the set bits of each entry (numpy 1.26 has no ``bitwise_count``)."""
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x = x >> 1
    return out


def _mask(term: str, letters: str) -> int:
    n = len(term)
    return sum(1 << (n - 1 - q) for q, p in enumerate(term) if p in letters)


def _is_real(compiled: CompiledCircuit) -> bool:
    """Return True when every fixed unitary and every ``−iG`` is real (the state stays real)."""
    for op in compiled.ops:
        matrix = op.matrix if isinstance(op, FixedOp) else -1j * op.generator
        if np.abs(np.imag(matrix)).max(initial=0.0) > _ATOL:
            return False
    return True
