"""The plan of a wide circuit for `wide_kernels`: steps grouped into cache-sized stages.

A *unit* is one step of a `Tape` built with ``local_only`` (every fixed gate kept on its own
qubits), or a whole chain of one-qubit steps on one qubit. A *stage* is a run of units whose
qubits together number at most `BLOCK_QUBITS`: the kernels apply it block by block to the
``2**m`` amplitudes that differ only in those qubits, each block held in a buffer that stays
in the core's cache (2**15 amplitudes of complex128 are 512 KiB, half an L2 cache of this
machine's cores).

Each qubit's first unit, when it is a one-qubit unit acting on ``|0⟩``, is not staged: the
kernels start from the product state of these units (`WidePlan.lead`, `product_state`).
`plan_wide` groups the other units greedily in the order of the qubit-wire DAG (any
topological order gives the same state): a stage first takes every ready unit whose qubits
are already in its block, then the ready unit that adds the fewest new qubits while the
block has room, and ends when no ready unit fits. Blocks are then padded with the lowest free bits (qubits
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
#: Largest block: `gather` tables hold block indices as uint16 (half the cache of int32).
MAX_BLOCK_QUBITS = 16
#: Bits (of the lowest qubits, n − 1, n − 2...) that every block holds.
RUN_BITS = 4
#: Consecutive permutation units of a stage (CNOT rings) composed into one block gather from
#: this many on: one move of the block instead of one per gate (a single CNOT stays a swap
#: of two quarters, which moves half the block).
GATHER_MIN_RUN = 2
#: Entries (uint16) of all gather tables of one plan at most (16 MiB); runs beyond it stay
#: gate by gate.
GATHER_BUDGET = 1 << 22
#: Entries within this of 1 (and the rest within it of 0) make a fixed gate a permutation.
_PERM_ATOL = 1e-15


@dataclass(frozen=True, eq=False)
class WidePlan:
    """Stages of a tape for `wide_kernels.expectations` (see the module docstring).

    Attributes:
        tape: The tape (built with ``local_only``).
        lead: Tape row of each qubit's leading one-qubit unit, −1 when its first unit is
            wider: the kernels write the product state of these units directly
            (`product_state`) instead of running them.
        stage_mask: Bit mask of each stage's block (bit ``n − 1 − q`` for qubit ``q``), int64.
        stage_start: Units of stage ``s`` are ``units[stage_start[s]:stage_start[s + 1]]``.
        units: Tape row of each unit, stage by stage.
        unit_perm: Offset of a unit's basis permutation in `perm`, −1 when it is a matrix.
        perm: Local permutations: ``new[a] = old[perm[offset + a]]``.
        unit_gather: Offset of a unit's block gather in `gather`, −1 when it has none: a run
            of consecutive permutation units of a stage composed into one move of the block.
        gather: Block gathers (uint16): ``new[a] = old[gather[offset + a]]`` over the whole block.
        block: Amplitudes of the largest block.
    """

    tape: Tape
    lead: np.ndarray
    stage_mask: np.ndarray
    stage_start: np.ndarray
    units: np.ndarray
    unit_perm: np.ndarray
    perm: np.ndarray
    unit_gather: np.ndarray
    gather: np.ndarray
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


def _is_zero_state(initial: np.ndarray) -> bool:
    return bool(initial[0] == 1 and np.count_nonzero(initial) == 1)


def plan_wide(tape: Tape, block_qubits: int = BLOCK_QUBITS) -> WidePlan:
    """Group the units of `tape` (built with ``local_only``) into stages of `block_qubits` qubits."""
    if not 3 <= block_qubits <= MAX_BLOCK_QUBITS:
        raise ValueError(
            f"block_qubits must be between 3 (the widest gate) and {MAX_BLOCK_QUBITS} (gather tables"
            f" index blocks with uint16), got {block_qubits}"
        )
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
    zero = _is_zero_state(tape.initial)  # (always so for a ``local_only`` tape)
    lead = np.full(n if zero else 0, -1, dtype=np.int64)
    if zero:
        for q in range(n):
            if wires[q] and len(qubits[wires[q][0]]) == 1:  # the qubit's first unit acts on |0>
                lead[q] = heads[wires[q][0]]
                done[wires[q][0]] = True
                position[q] = 1
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
    remaining = len(heads) - int((lead >= 0).sum())
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
    perm_of = {u: _permutation(tape, heads[u]) for _, stage in stages for u in stage}
    ordered = [_permutations_first(stage, qubits, perm_of) for _, stage in stages]
    units: list[int] = []
    gathers: list[np.ndarray] = []
    unit_gather: list[int] = []
    counts: list[int] = []
    size = 0
    budget = GATHER_BUDGET
    for mask, stage in zip(masks, ordered, strict=True):
        count = 0
        j = 0
        while j < len(stage):
            end = j
            while end < len(stage) and perm_of[stage[end]] is not None:
                end += 1
            run = stage[j:end]
            if len(run) >= GATHER_MIN_RUN and budget >= 1 << capacity:
                sources = [src for src in (perm_of[u] for u in run) if src is not None]
                table = _compose(tape, n, mask, [heads[u] for u in run], sources)
                budget -= table.size
                units.append(heads[run[0]])
                unit_gather.append(size)
                gathers.append(table)
                size += table.size
                count += 1
                j = end
                continue
            units.append(heads[stage[j]])
            unit_gather.append(-1)
            count += 1
            j += 1
        counts.append(count)
    starts = np.cumsum([0, *counts]).astype(np.int64)
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
        lead=lead,
        stage_mask=np.asarray(masks, dtype=np.int64),
        stage_start=starts,
        units=np.asarray(units, dtype=np.int64),
        unit_perm=unit_perm,
        perm=np.concatenate(perms) if perms else np.zeros(1, dtype=np.int64),
        unit_gather=np.asarray(unit_gather, dtype=np.int64),
        gather=np.concatenate(gathers) if gathers else np.zeros(1, dtype=np.uint16),
        block=1 << capacity,
    )


def _permutations_first(
    stage: list[int], qubits: list[tuple[int, ...]], perm_of: dict[int, np.ndarray | None]
) -> list[int]:
    """Order the units of a stage topologically with the longest runs of permutations.

    Repeatedly takes every ready permutation unit (until none is ready), then every ready
    other unit: a gap between two runs of permutations is needed anyway when no
    permutation is ready, so filling it with all ready units never adds a gap.
    """
    last: dict[int, int] = {}
    waits: list[int] = []
    after: list[list[int]] = [[] for _ in stage]
    for j, u in enumerate(stage):
        before = {last[q] for q in qubits[u] if q in last}
        waits.append(len(before))
        for b in before:
            after[b].append(j)
        for q in qubits[u]:
            last[q] = j
    ready = [j for j, w in enumerate(waits) if w == 0]
    out: list[int] = []

    def take(j: int) -> None:
        out.append(stage[j])
        for k in after[j]:
            waits[k] -= 1
            if waits[k] == 0:
                ready.append(k)

    while ready:
        perms = sorted(j for j in ready if perm_of[stage[j]] is not None)
        if perms:
            j = perms[0]
            ready.remove(j)
            take(j)
            continue
        batch = sorted(ready)
        ready.clear()
        for j in batch:
            take(j)
    return out


def _compose(tape: Tape, n: int, mask: int, rows: list[int], sources: list[np.ndarray]) -> np.ndarray:
    """Compose the permutation steps `rows` (in order, on block `mask`) into one block gather (uint16)."""
    code = tape.code
    block = 1 << bin(mask).count("1")
    a = np.arange(block, dtype=np.int64)
    total = a.copy()
    for row, u in zip(rows, sources, strict=True):
        k = int(code[row, NT])
        bits = [bin(mask & ((1 << (n - 1 - int(q))) - 1)).count("1") for q in code[row, T0 : T0 + k]]
        sub = np.zeros(block, dtype=np.int64)
        tmask = 0
        for j, b in enumerate(bits):
            sub |= ((a >> b) & 1) << (k - 1 - j)
            tmask |= 1 << b
        src_sub = u[sub]
        src = a & ~tmask
        for j, b in enumerate(bits):
            src |= ((src_sub >> (k - 1 - j)) & 1) << b
        total = total[src]
    return total.astype(np.uint16)
