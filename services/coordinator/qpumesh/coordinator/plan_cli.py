"""``qpumesh plan`` (``python -m qpumesh.coordinator plan``): how a QLSTM would be cut and placed.

Pure planning, no network: the same ``plan_partitions`` the coordinator runs before
training, so a user can check a partitioning against the nodes' sizes up front.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qpumesh.coordinator.planner import format_plan, plan_partitions
from qpumesh.wire.job_spec import INPUT_DIM


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``plan`` command to the coordinator's command line."""
    plan = subparsers.add_parser(
        "plan",
        help="show the partitioning and node placement of a distributed QLSTM",
        description=__doc__,
    )
    plan.add_argument(
        "--qubits",
        type=int,
        required=True,
        metavar="Q",
        help="width of v_t = [h; x] (d_x + d_h), as in the job spec",
    )
    plan.add_argument(
        "--partitions",
        type=_partitions,
        default=0,
        metavar="M|auto",
        help="sub-circuits per gate, or 'auto' for the smallest M that fits (default: auto)",
    )
    plan.add_argument(
        "--node-qubits",
        type=_node_qubits,
        default=(),
        metavar="Q1,Q2,...",
        help="max qubits of each node, comma separated (default: no nodes, in process)",
    )
    plan.set_defaults(func=_run)


def _partitions(text: str) -> int:
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"partitions must be >= 1 (or 'auto'), got {value}")
    return value


def _node_qubits(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every node needs at least 1 qubit, got {text!r}")
    return values


def _run(args: argparse.Namespace) -> int:
    d_h = int(args.qubits) - INPUT_DIM
    try:
        plan = plan_partitions(INPUT_DIM, d_h, int(args.partitions), args.node_qubits)
    except ValueError as error:
        print(f"qpumesh plan: {error}", file=sys.stderr)
        return 2
    print(format_plan(plan))
    return 0
