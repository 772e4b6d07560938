"""The partition planner: how the distributed QLSTM is cut and where its pieces run.

Pure functions, no I/O. ``plan_partitions`` splits v_t = [h_{t-1}; x_t] (D = d_h + d_x
entries) into M contiguous parts of sizes D_m, splits the hidden size d_h into the
read-out counts d_h^(m) <= D_m of the M sub-circuits, and places the M parts on nodes
so every node gets an even share and no node receives a circuit wider than its
``max_qubits``. A part ("part/m") is the unit of placement: its four gates' sub-circuits
("f/m", "i/m", "g/m" for C~, "o/m") share one circuit and travel as one request per time
step (their parameter rows stacked), so a time step costs M calls, not 4*M.

Both splits are as even as possible, but in opposite orders: v_t is split with the
larger parts first and d_h with the smaller parts first (``output_split``). The
order matters for what the model can learn. v_t = [h_{t-1}; x_t] puts x_t in the
last part only, and gate outputs are concatenated in part order, so part m updates
hidden units O_m..O_{m+1}-1 while reading entries I_m..I_{m+1}-1 of v_t. With
aligned splits (O_m = I_m) every part but the last would read exactly the hidden
units it writes and never see x_t: those units would evolve independently of the
data. With O_m < I_m for m >= 1, part m also reads the first unit written by part
m+1, so x_t reaches every hidden unit through the chain M-1 -> M-2 -> ... -> 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GATES = ("f", "i", "g", "o")
"""The four LSTM gates: forget, input, candidate C~ (written "g"), output."""


@dataclass(frozen=True)
class Plan:
    """A partitioning of the QLSTM's gates and their placement on nodes.

    Attributes:
        input_sizes: D_m, the qubits (= entries of v_t) of partition m; sum = D.
        output_sizes: d_h^(m), the hidden units partition m outputs; sum = d_h.
        assignment: part key ("part/0", ...) -> node index; empty when no node
            limits were given.
        node_max_qubits: the limits the plan was made for (may be empty).
    """

    input_sizes: tuple[int, ...]
    output_sizes: tuple[int, ...]
    assignment: dict[str, int]
    node_max_qubits: tuple[int, ...] = ()

    @property
    def partitions(self) -> int:
        """M, the number of sub-circuits per gate."""
        return len(self.input_sizes)

    @property
    def keys(self) -> tuple[str, ...]:
        """The M part keys, "part/0" .. "part/M-1": what is placed on a node and sent as one request."""
        return tuple(f"part/{m}" for m in range(self.partitions))

    @property
    def sub_circuits(self) -> tuple[str, ...]:
        """All 4*M sub-circuit names, gate-major: f/0..f/M-1, i/0, ..., o/M-1."""
        return tuple(f"{gate}/{m}" for gate in GATES for m in range(self.partitions))

    def width(self, key: str) -> int:
        """Return the number of qubits of part (or sub-circuit) ``key``."""
        return self.input_sizes[int(key.split("/")[1])]

    def node_loads(self) -> list[int]:
        """Count the parts assigned to each node (empty without nodes)."""
        loads = [0] * len(self.node_max_qubits)
        for node in self.assignment.values():
            loads[node] += 1
        return loads

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for metrics, logs and job listings."""
        return {
            "partitions": self.partitions,
            "input_sizes": list(self.input_sizes),
            "output_sizes": list(self.output_sizes),
            "assignment": dict(self.assignment),
            "node_max_qubits": list(self.node_max_qubits),
        }


def split_evenly(total: int, parts: int) -> tuple[int, ...]:
    """Split ``total`` into ``parts`` sizes differing by at most one, larger ones first."""
    base, extra = divmod(total, parts)
    return tuple(base + (1 if m < extra else 0) for m in range(parts))


def output_split(d_h: int, input_sizes: Sequence[int]) -> tuple[int, ...]:
    """Split d_h over the parts, smaller parts first, with 1 <= d_h^(m) <= D_m.

    Starts from the even ascending split and moves any excess of a part over its
    width D_m to the nearest earlier part with room (possible since d_h < sum D_m).
    """
    parts = len(input_sizes)
    sizes = list(reversed(split_evenly(d_h, parts)))
    for m in range(parts - 1, -1, -1):
        excess = sizes[m] - input_sizes[m]
        if excess > 0:
            sizes[m] -= excess
            for k in range(m - 1, -1, -1):
                room = min(excess, input_sizes[k] - sizes[k])
                sizes[k] += room
                excess -= room
    return tuple(sizes)


def plan_partitions(
    d_x: int,
    d_h: int,
    partitions: int,
    node_max_qubits: Sequence[int] = (),
) -> Plan:
    """Plan the split of v_t and d_h into M parts and place the parts on the nodes.

    Args:
        d_x: input size per time step.
        d_h: hidden size.
        partitions: M; 0 = auto, the smallest M whose parts fit the largest node
            (1 when no node limits are given).
        node_max_qubits: max qubits of each available node, by node index; empty
            means unlimited and no placement (in-process execution).

    Returns:
        The plan.

    Raises:
        ValueError: if the sizes are invalid or no placement respects the nodes'
            max qubits; the message says which limit and what to change.
    """
    if d_x < 1 or d_h < 1:
        raise ValueError(f"d_x and d_h must be at least 1, got d_x={d_x}, d_h={d_h}")
    if partitions < 0:
        raise ValueError(f"partitions must be >= 0 (0 = auto), got {partitions}")
    limits = tuple(int(n) for n in node_max_qubits)
    if any(n < 1 for n in limits):
        raise ValueError(f"every node needs at least 1 qubit, got max qubits {list(limits)}")
    total = d_x + d_h
    largest = max(limits) if limits else total
    if partitions == 0:
        partitions = _auto_partitions(total, d_h, largest)
    if partitions > d_h:
        raise ValueError(
            f"{partitions} partitions exceed the hidden size d_h={d_h}: every sub-circuit must "
            f"output at least one hidden unit; use --partitions <= {d_h}"
        )
    input_sizes = split_evenly(total, partitions)
    output_sizes = output_split(d_h, input_sizes)
    for m, width in enumerate(input_sizes):
        if width > largest:
            fit = -(-total // largest)
            raise ValueError(
                f"the largest node has {largest} qubits but partition {m} needs {width}; "
                f"use --partitions >= {fit}" + ("" if fit <= d_h else " (not possible for this d_h)")
            )
    plan = Plan(input_sizes, output_sizes, {}, limits)
    if not limits:
        return plan
    return Plan(input_sizes, output_sizes, _assign(plan, limits), limits)


def _auto_partitions(total: int, d_h: int, largest: int) -> int:
    """Return the smallest M <= d_h whose widest part (ceil(D/M) qubits) fits ``largest`` qubits."""
    for m in range(1, d_h + 1):
        if -(-total // m) <= largest:
            return m
    raise ValueError(
        f"the largest node has {largest} qubits but even {d_h} partitions (the most the hidden "
        f"size allows) need {-(-total // d_h)}; add wider nodes or reduce --qubits"
    )


def _assign(plan: Plan, limits: tuple[int, ...]) -> dict[str, int]:
    """Greedy balanced placement: widest parts first, each to the least-loaded node that fits.

    Load is counted in parts (ties broken by qubits already placed, then node index),
    so with uniform widths every node gets floor or ceil of M/N parts: 16 parts on 16
    nodes are one per node.
    """
    counts = [0] * len(limits)
    qubit_load = [0] * len(limits)
    assignment: dict[str, int] = {}
    for key in sorted(plan.keys, key=lambda k: -plan.width(k)):
        width = plan.width(key)
        fitting = [n for n, cap in enumerate(limits) if cap >= width]
        node = min(fitting, key=lambda n: (counts[n], qubit_load[n], n))
        counts[node] += 1
        qubit_load[node] += width
        assignment[key] = node
    return {key: assignment[key] for key in plan.keys}


def format_plan(plan: Plan) -> str:
    """Render the plan as a plain-text table: partitions, then the per-node placement."""
    lines = [
        f"M = {plan.partitions} partition(s), {4 * plan.partitions} sub-circuits "
        f"({len(GATES)} gates of each part in one request per time step)"
    ]
    lines.append(f"{'part':>4}  {'qubits D_m':>10}  {'outputs d_h^(m)':>15}  v_t entries")
    start = 0
    for m, (width, outputs) in enumerate(zip(plan.input_sizes, plan.output_sizes, strict=True)):
        lines.append(f"{m:>4}  {width:>10}  {outputs:>15}  {start}..{start + width - 1}")
        start += width
    if not plan.assignment:
        lines.append("no node limits given: every sub-circuit runs in process")
        return "\n".join(lines)
    lines.append("")
    lines.append(f"{'node':>4}  {'max qubits':>10}  {'load':>4}  parts")
    loads = plan.node_loads()
    for node, cap in enumerate(plan.node_max_qubits):
        keys = [k for k, n in plan.assignment.items() if n == node]
        lines.append(f"{node:>4}  {cap:>10}  {loads[node]:>4}  {' '.join(keys) or '-'}")
    return "\n".join(lines)
