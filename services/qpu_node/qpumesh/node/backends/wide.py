"""The plan of a wide circuit for `wide_kernels`: steps grouped into cache-sized stages.

A *unit* is one step of a `Tape` built with ``local_only`` (every fixed gate kept on its own
qubits), or a whole chain of one-qubit steps on one qubit. A *stage* is a run of units whose
qubits together number at most `BLOCK_QUBITS`: the kernels apply it block by block to the
``2**m`` amplitudes that differ only in those qubits, each block held in a buffer that stays
in the core's cache (2**15 amplitudes of complex128 are 512 KiB, half an L2 cache of this
machine's cores).

`plan_wide` groups units greedily in the order of the qubit-wire DAG (any topological order
gives the same state): a stage first takes every ready unit whose qubits are already in its
block, then the ready unit that adds the fewest new qubits while the block has room, and
ends when no ready unit fits. Blocks are then padded with the lowest free bits (qubits
``n − 1``, ``n − 2``...) so that copies move contiguous runs of amplitudes. The grouping
depends only on the circuit, so every node runs the same arithmetic.

Memory: the state (two float64 arrays, one for a real circuit) and one block buffer of at
most ``2**BLOCK_QUBITS`` amplitudes per kernel call, whatever the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpumesh.node.backends.tape import CHAIN, FIXK, KIND, MOFF, NT, SPAN, T0, Tape

__all__ = ["BLOCK_QUBITS", "WidePlan", "plan_wide"]

#: Qubits of a stage's block: 2**15 complex128 amplitudes (512 KiB) stay in a 1 MiB L2 cache.
BLOCK_QUBITS = 15
#: Bits (of the lowest qubits, n − 1, n − 2...) that every block holds.
RUN_BITS = 4
#: Entries within this of 1 (and the rest within it of 0) make a fixed gate a permutation.
_PERM_ATOL = 1e-15


@dataclass(frozen=True, eq=False)
class WidePlan:
    """Stages of a tape for `wide_kernels.expectations` (see the module docstring).

    Attributes:
        tape: The tape (built with ``local_only``).
        stage_mask: Bit mask of each stage's block (bit ``n − 1 − q`` for qubit ``q``), int64.
        stage_start: Units of stage ``s`` are ``units[stage_start[s]:stage_start[s + 1]]``.
        units: Tape row of each unit, stage by stage.
        unit_perm: Offset of a unit's basis permutation in `perm`, −1 when it is a matrix.
        perm: Local permutations: ``new[a] = old[perm[offset + a]]``.
        block: Amplitudes of the largest block.
    """

    tape: Tape
    stage_mask: np.ndarray
    stage_start: np.ndarray
    units: np.ndarray
    unit_perm: np.ndarray
    perm: np.ndarray
    block: int


def _unit_qubits(code: np.ndarray, i: int) -> tuple[int, ...]:
    if code[i, KIND] == CHAIN:
        return (int(code[i, T0]),)
    return tuple(int(q) for q in code[i, T0 : T0 + code[i, NT]])


def _permutation(tape: Tape, i: int) -> np.ndarray | None:
    """``src`` with ``U[a, src[a]] = 1`` for a fixed step that permutes basis states, else None."""
    code = tape.code
    if code[i, KIND] != FIXK or code[i, NT] < 2:
        return None
    size = 1 << int(code[i, NT])
    offset = int(code[i, MOFF])
    u = np.asarray(tape.mats[offset : offset + size * size]).reshape(size, size)
    ones = np.abs(u - 1) <= _PERM_ATOL
    zeros = np.abs(u) <= _PERM_ATOL
    if not (np.all(ones | zeros) and np.all(ones.sum(axis=1) == 1) and np.all(ones.sum(axis=0) == 1)):
        return None
    src: np.ndarray = np.argmax(ones, axis=1).astype(np.int64)
    return src


def plan_wide(tape: Tape, block_qubits: int = BLOCK_QUBITS) -> WidePlan:
    """Group the units of `tape` (built with ``local_only``) into stages of `block_qubits` qubits."""
    if block_qubits < 3:
        raise ValueError(f"block_qubits must be at least 3 (the widest gate), got {block_qubits}")
    n = tape.n
    code = tape.code
    heads: list[int] = []
    i = 0
    while i < code.shape[0]:
        heads.append(i)
        i += int(code[i, SPAN])
    qubits = [_unit_qubits(code, h) for h in heads]
    wires: list[list[int]] = [[] for _ in range(n)]
    for u, qs in enumerate(qubits):
        for q in qs:
            wires[q].append(u)
    position = [0] * n
    done = [False] * len(heads)
    free = [u for u, qs in enumerate(qubits) if not qs]  # global phases wait for no wire
    capacity = min(n, block_qubits)

    def ready() -> list[int]:
        heads_of_wires = {wires[q][position[q]] for q in range(n) if position[q] < len(wires[q])}
        out = [u for u in heads_of_wires if all(wires[q][position[q]] == u for q in qubits[u])]
        return sorted(out + [u for u in free if not done[u]])

    def take(u: int, stage: list[int]) -> None:
        done[u] = True
        stage.append(u)
        for q in qubits[u]:
            position[q] += 1

    stages: list[tuple[set[int], list[int]]] = []
    remaining = len(heads)
    while remaining:
        # Every block holds the lowest RUN_BITS bits (its copies move runs of 2**RUN_BITS)
        # when that leaves room for the widest gate (3 qubits): every stage takes a unit.
        block: set[int] = set(range(n - max(0, min(RUN_BITS, capacity - 3)), n))
        stage: list[int] = []
        while True:
            candidates = ready()
            inside = [u for u in candidates if block.issuperset(qubits[u])]
            if inside:
                for u in inside:
                    take(u, stage)
                continue
            fits = [u for u in candidates if len(block.union(qubits[u])) <= capacity]
            if not fits:
                break
            best = min(fits, key=lambda u: (len(set(qubits[u]) - block), u))
            block.update(qubits[best])
            take(best, stage)
        if not stage:  # cannot happen: a block always has room for a ready unit
            raise RuntimeError("wide plan: no unit fits an empty block")
        remaining -= len(stage)
        stages.append((block, stage))
    masks = []
    for block, _ in stages:
        bits = {n - 1 - q for q in block}
        for bit in range(n):  # pad with the lowest free bits: contiguous copies
            if len(bits) >= capacity:
                break
            bits.add(bit)
        masks.append(sum(1 << b for b in bits))
    units = [heads[u] for _, stage in stages for u in stage]
    starts = np.cumsum([0] + [len(stage) for _, stage in stages]).astype(np.int64)
    perms: list[np.ndarray] = []
    unit_perm = np.full(len(units), -1, dtype=np.int64)
    size = 0
    for j, row in enumerate(units):
        src = _permutation(tape, row)
        if src is not None:
            unit_perm[j] = size
            perms.append(src)
            size += src.size
    return WidePlan(
        tape=tape,
        stage_mask=np.asarray(masks, dtype=np.int64),
        stage_start=starts,
        units=np.asarray(units, dtype=np.int64),
        unit_perm=unit_perm,
        perm=np.concatenate(perms) if perms else np.zeros(1, dtype=np.int64),
        block=1 << capacity,
    )
