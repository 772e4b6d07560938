"""What the ``qpumesh`` job commands share: the coordinator flag, errors and exit codes, tables.

Every job command talks to a coordinator given by ``--coordinator HOST:PORT`` or the
``QPUMESH_COORDINATOR`` environment variable. Exit codes: 0 success; 1 the job failed
or was cancelled, or an RPC failed; 2 bad usage or a job spec the client or
coordinator refused (the message names the field); 130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qpumesh.client.coordinator_client import CoordinatorClient

ENV_COORDINATOR = "QPUMESH_COORDINATOR"
"""Environment variable holding the default coordinator address."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command cannot run as asked; the message says why (exit status 2)."""


def add_coordinator_flag(parser: argparse._ActionsContainer, *, local_default: bool = False) -> None:
    """Add ``--coordinator HOST:PORT`` and ``--timeout S``."""
    where = "start a local mesh" if local_default else "required"
    parser.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help=f"coordinator address (default: ${ENV_COORDINATOR}; if unset: {where})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="deadline of each call (default %(default)s s)",
    )


def add_show_faults_flag(parser: argparse._ActionsContainer) -> None:
    """Add ``--show-faults``."""
    parser.add_argument(
        "--show-faults",
        action="store_true",
        help="print every node fault event (default: count them on the progress line)",
    )


def coordinator_address(args: argparse.Namespace) -> str:
    """Return the coordinator the command talks to.

    Raises:
        UsageError: neither ``--coordinator`` nor ``QPUMESH_COORDINATOR`` is set.
    """
    address = args.coordinator or os.environ.get(ENV_COORDINATOR, "")
    if not address:
        raise UsageError(f"no coordinator: pass --coordinator HOST:PORT or set {ENV_COORDINATOR}")
    return str(address)


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[CoordinatorClient]:
    """Yield a ``CoordinatorClient`` to the command's coordinator, closed afterwards."""
    from qpumesh.client.coordinator_client import CoordinatorClient

    with CoordinatorClient(coordinator_address(args), timeout=args.timeout) as client:
        yield client


def error(prog: str, message: str) -> None:
    """Print ``qpumesh PROG: MESSAGE`` on stderr."""
    print(f"qpumesh {prog}: {message}", file=sys.stderr)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a command body, mapping expected errors to messages and exit codes."""
    import grpc

    from qpumesh.client.local_mesh import LocalMeshError
    from qpumesh.wire.errors import QpuMeshError
    from qpumesh.wire.job_spec import SpecError

    try:
        return body()
    except UsageError as failure:
        error(prog, str(failure))
        return EXIT_USAGE
    except SpecError as failure:
        reason = str(failure).removeprefix(f"{failure.field}: ")
        error(prog, f"invalid job spec: field '{failure.field}': {reason}")
        return EXIT_USAGE
    except QpuMeshError as failure:
        error(prog, f"{failure.code.name}: {failure.details}")
        return EXIT_USAGE if failure.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except LocalMeshError as failure:
        error(prog, f"local mesh failed: {failure}")
        return EXIT_FAILED


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a plain left-aligned text table (two spaces between columns)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def format_r2(value: float) -> str:
    """Format R² with four decimals ("-" when not finite)."""
    return f"{value:.4f}" if math.isfinite(value) else "-"


def format_time(timestamp: float) -> str:
    """Format a Unix time as local date and time ("-" when unset)."""
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp > 0 else "-"
