"""The ``qpumesh`` command line: the client's commands, and the services' handed over.

The client's own commands come from the client's modules, each contributing a
``register(subparsers)``: ``train``, ``jobs``, ``watch``, ``results``, ``predict``,
``cancel``, ``nodes`` (``jobs_cli``, ``train_cli``), ``fault`` (``fault_cli``),
``mesh up`` (``mesh_cli``), ``node info`` and ``node bench`` (``node_cli``), ``certs init``
(``certs_cli``).

The services' commands belong to the services, and the client never imports them:
``qpumesh node serve ARGS``, ``qpumesh coordinator serve ARGS`` and ``qpumesh plan
ARGS`` run ``python -m qpumesh.node serve ARGS``, ``python -m qpumesh.coordinator
serve ARGS`` and ``python -m qpumesh.coordinator plan ARGS`` (``handover``): a server
replaces this process (same pid, signals and exit status, as a container needs), a
short command runs as a child. Heavy imports happen inside the command handlers, so
``qpumesh --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from qpumesh.client import certs_cli, fault_cli, handover, jobs_cli, mesh_cli, node_cli, train_cli

_COMMAND_MODULES = (node_cli, handover, train_cli, jobs_cli, mesh_cli, fault_cli, certs_cli)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command."""
    parser = argparse.ArgumentParser(
        prog="qpumesh",
        description="A gRPC mesh of emulated QPUs that trains a distributed quantum LSTM.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qpumesh`` console script; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "hand_over", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
