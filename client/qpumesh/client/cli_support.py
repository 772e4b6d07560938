"""What the ``qpumesh`` job commands share: the coordinator flag, errors and exit codes, tables.

Every job command talks to a coordinator given by ``--coordinator HOST:PORT`` or the
``QPUMESH_COORDINATOR`` environment variable, over TLS when ``--tls-ca`` / ``--tls-cert`` /
``--tls-key`` (or ``QPUMESH_TLS_CA`` / ``_CERT`` / ``_KEY``) are given, presenting
``--token`` (``QPUMESH_TOKEN``) when the coordinator wants one. Exit codes: 0 success; 1 the job failed
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

from qpumesh.wire import settings
from qpumesh.wire.auth import TOKEN_OPTION
from qpumesh.wire.tls import CLIENT_OPTIONS

if TYPE_CHECKING:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.wire.tls import TlsConfig

ENV_COORDINATOR = "QPUMESH_COORDINATOR"
"""Environment variable holding the default coordinator address."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command cannot run as asked; the message says why (exit status 2)."""


def add_coordinator_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, local_default: bool = False
) -> None:
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
        help="deadline of each call from this client to the coordinator (default %(default)s s); "
        "the coordinator's calls to its nodes have their own floor: coordinator --rpc-timeout",
    )
    add_security_flags(parser, token=True)


def add_security_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, token: bool) -> None:
    """Add ``--tls-ca``, ``--tls-cert``, ``--tls-key``, ``--tls-server-name`` (and ``--token``)."""
    settings.add_arguments(parser, (*CLIENT_OPTIONS, TOKEN_OPTION) if token else CLIENT_OPTIONS)


def client_tls(args: argparse.Namespace) -> TlsConfig | None:
    """Return the command's TLS settings (flags over ``QPUMESH_TLS_*``); None for plaintext.

    Raises:
        UsageError: a TLS file is unusable (the message names the flag or variable).
    """
    from qpumesh.wire.tls import TlsError, client_tls

    try:
        return client_tls(vars(args), os.environ)
    except TlsError as failure:
        raise UsageError(str(failure)) from None


def client_token(args: argparse.Namespace) -> str | None:
    """Return the command's bearer token (``--token``, else ``QPUMESH_TOKEN``), or None."""
    token = getattr(args, "token", None) or os.environ.get(TOKEN_OPTION.env, "").strip()
    return token or None


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

    address = coordinator_address(args)
    tls, token = client_tls(args), client_token(args)
    with CoordinatorClient(address, timeout=args.timeout, tls=tls, token=token) as client:
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
        error(prog, f"{failure.code.name}: {failure.details}{_hint(failure)}")
        return EXIT_USAGE if failure.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except LocalMeshError as failure:
        error(prog, f"local mesh failed: {failure}")
        return EXIT_FAILED


def _hint(failure: Exception) -> str:
    """Return a hint for errors whose message alone does not say what to do."""
    import grpc

    code = getattr(failure, "code", None)
    details = str(getattr(failure, "details", ""))
    if code == grpc.StatusCode.UNAVAILABLE and ("Socket closed" in details or "handshake" in details.lower()):
        return (
            " (if the server runs TLS, give --tls-ca; if it requires client certificates, "
            "--tls-cert and --tls-key too; see docs/security.md)"
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return " (give --token or set QPUMESH_TOKEN)"
    return ""


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
