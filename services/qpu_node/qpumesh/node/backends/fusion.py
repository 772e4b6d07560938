"""Compile-time circuit fusion shared by the node's statevector engines.

Both the torch program of `batched` and the compiled kernel tape of `kernel` start from the
same plan of a `CompiledCircuit`, made here once in numpy:

* `schedule` reorders commuting operations so that fixed gates form long runs (Cirq's
  moments interleave a CNOT ladder with the following rotation layer);
* `fuse_fixed_run` turns a run of fixed gates into as few full-register steps as possible:
  on up to `DENSE_MAX_QUBITS` qubits one ``2**n x 2**n`` matrix, kept as an index gather
  times a phase when it is monomial (CNOT, X, SWAP, CZ, S, T... ladders); on larger registers
  gate by gate, with consecutive monomial gates composed into one gather;
* `pauli_mask`/`pauli_phases` describe a dense Pauli string ``P`` as ``(P ψ)[y] =
  phase[y] · ψ[y ⊕ mask]``.

Qubit ``k`` is the most significant bit of a state index, as in Cirq.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from qpumesh.node.circuits import CompiledCircuit, CompiledOp, FixedOp

__all__ = [
    "ATOL",
    "DENSE_MAX_QUBITS",
    "FusedDense",
    "FusedGather",
    "FusedLocal",
    "FusedStep",
    "embed",
    "fuse_fixed_run",
    "is_real",
    "pauli_mask",
    "pauli_phases",
    "schedule",
]

#: Registers up to this size fuse runs of fixed gates into one full matrix.
DENSE_MAX_QUBITS = 6
#: Entries below this magnitude count as zero when classifying matrices.
ATOL = 1e-12


@dataclass(frozen=True)
class FusedGather:
    """``new[y] = phase[y] · old[src[y]]`` on the full register (a monomial unitary)."""

    src: np.ndarray
    phase: np.ndarray


@dataclass(frozen=True)
class FusedDense:
    """``new = matrix @ old`` on the full register."""

    matrix: np.ndarray


@dataclass(frozen=True)
class FusedLocal:
    """A fixed k-qubit matrix on `targets` of a large register."""

    targets: tuple[int, ...]
    matrix: np.ndarray


FusedStep: TypeAlias = FusedGather | FusedDense | FusedLocal


def schedule(ops: Sequence[CompiledOp]) -> list[CompiledOp]:
    """Reorder ops so that fixed gates form as few runs as possible.

    Operations on disjoint qubits commute, so any topological order of the qubit-wire DAG
    gives the same state. Greedily alternating "every ready fixed op" and "every ready
    rotation" turns, e.g., a CNOT ladder that Cirq's moments interleave with the next
    rotation layer back into one fused gather.

    The order is that of repeated sweeps in index order: within a phase (fixed or rotation
    ops), a sweep takes every op of the phase's kind that is ready when the sweep reaches
    it, and sweeps repeat until one takes nothing. That takes ``O(n²)`` time for ``n`` ops,
    so it is simulated with a heap keyed by ``(sweep, index)`` instead: an op made ready by
    taking op ``j`` is taken in the same sweep when its index is above ``j``, else in the
    next -- the same order in ``O(n log n)``.
    """
    queues: dict[int, deque[int]] = {}
    for i, op in enumerate(ops):
        for q in op.targets:
            queues.setdefault(q, deque()).append(i)
    # ready[True]: ready fixed ops not taken yet, ready[False]: ready rotations.
    ready: dict[bool, list[int]] = {True: [], False: []}
    for i, op in enumerate(ops):
        if all(queues[q][0] == i for q in op.targets):
            ready[isinstance(op, FixedOp)].append(i)
    order: list[CompiledOp] = []
    want_fixed = True
    while len(order) < len(ops):
        heap = [(0, i) for i in ready[want_fixed]]  # already in index order: a valid heap
        ready[want_fixed] = []
        while heap:
            sweep, i = heapq.heappop(heap)
            order.append(ops[i])
            for q in ops[i].targets:
                queues[q].popleft()
            heads = {queues[q][0] for q in ops[i].targets if queues[q]}
            for h in sorted(heads):
                follower = ops[h]
                if not all(queues[t][0] == h for t in follower.targets):
                    continue
                if isinstance(follower, FixedOp) is want_fixed:
                    heapq.heappush(heap, (sweep if h > i else sweep + 1, h))
                else:
                    ready[not want_fixed].append(h)
        ready[not want_fixed].sort()
        want_fixed = not want_fixed
    return order


def fuse_fixed_run(run: Sequence[FixedOp], n: int) -> list[FusedStep]:
    """Fuse a run of fixed gates on an `n`-qubit register (see the module docstring)."""
    if n <= DENSE_MAX_QUBITS:
        full = np.eye(1 << n, dtype=np.complex128)
        for op in run:
            full = embed(op.matrix, op.targets, n) @ full
        monomial = _as_monomial(full)
        if monomial is not None:
            return [FusedGather(*monomial)]
        return [FusedDense(full)]
    out: list[FusedStep] = []
    src: np.ndarray | None = None
    phase: np.ndarray | None = None
    for op in run:
        local = _local_monomial(op.matrix, op.targets, n)
        if local is None:
            if src is not None and phase is not None:
                out.append(FusedGather(src, phase))
                src = phase = None
            out.append(FusedLocal(op.targets, op.matrix))
            continue
        s, p = local
        if src is None or phase is None:
            src, phase = s, p
        else:  # new[y] = p[y] * mid[s[y]], mid[x] = phase[x] * old[src[x]]
            src, phase = src[s], p * phase[s]
    if src is not None and phase is not None:
        out.append(FusedGather(src, phase))
    return out


def pauli_mask(term: str, letters: str) -> int:
    """Bit mask of the qubits of a dense Pauli string whose letter is in `letters`."""
    n = len(term)
    return sum(1 << (n - 1 - q) for q, p in enumerate(term) if p in letters)


def pauli_phases(term: str) -> tuple[int, np.ndarray]:
    """``(mask, phase)`` with ``(P ψ)[y] = phase[y] · ψ[y ⊕ mask]`` for a dense Pauli string."""
    n = len(term)
    index = np.arange(1 << n, dtype=np.int64)
    mask = pauli_mask(term, "XY")
    parity = _popcount((index ^ mask) & pauli_mask(term, "YZ")) & 1
    return mask, (1j ** term.count("Y")) * (1 - 2 * parity)


def _popcount(x: np.ndarray) -> np.ndarray:
    count = np.zeros_like(x)
    while np.any(x):
        count += x & 1
        x = x >> 1
    return count


def is_real(compiled: CompiledCircuit) -> bool:
    """Return True when every fixed gate is real and every generator purely imaginary.

    The state then stays real (``cos(θ/2) I − i sin(θ/2) G`` is real for imaginary ``G``).
    """
    for op in compiled.ops:
        if isinstance(op, FixedOp):
            if np.abs(op.matrix.imag).max(initial=0.0) > ATOL:
                return False
        elif np.abs(op.generator.real).max(initial=0.0) > ATOL:
            return False
    return True


def embed(matrix: np.ndarray, targets: tuple[int, ...], n: int) -> np.ndarray:
    """Return the ``2**n x 2**n`` matrix of a k-qubit `matrix` acting on `targets`."""
    k = len(targets)
    tensor = matrix.reshape((2,) * (2 * k))
    full = np.eye(1 << n, dtype=np.complex128).reshape((2,) * n + (1 << n,))
    out = np.tensordot(tensor, full, axes=(list(range(k, 2 * k)), list(targets)))
    out = np.moveaxis(out, list(range(k)), list(targets))
    return out.reshape(1 << n, 1 << n)


def _as_monomial(full: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(src, phase)`` with ``full[y, src[y]] = phase[y]`` the only nonzeros, or None."""
    nonzero = np.abs(full) > ATOL
    if not np.all(nonzero.sum(axis=1) == 1):
        return None
    src = np.argmax(nonzero, axis=1)
    return src.astype(np.int64), full[np.arange(full.shape[0]), src]


def _local_monomial(
    matrix: np.ndarray, targets: tuple[int, ...], n: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the full-register gather of a monomial k-qubit matrix (no ``2**n x 2**n`` matrix)."""
    local = _as_monomial(matrix)
    if local is None:
        return None
    local_src, local_phase = local
    k = len(targets)
    index = np.arange(1 << n, dtype=np.int64)
    bits = [n - 1 - t for t in targets]
    j = np.zeros_like(index)
    for pos, b in enumerate(bits):
        j |= ((index >> b) & 1) << (k - 1 - pos)
    i = local_src[j]
    src = index.copy()
    for pos, b in enumerate(bits):
        src &= ~(1 << b)
        src |= ((i >> (k - 1 - pos)) & 1) << b
    return src, local_phase[j]
