"""The ``qpumesh`` command line.

Each subsystem contributes its own subcommands through a ``register(subparsers)``
function, imported here; heavy imports (torch, cirq) happen inside the command
handlers so that ``qpumesh --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Modules that expose ``register(subparsers: argparse._SubParsersAction) -> None``.
_COMMAND_MODULES = (
    "qpumesh.node.cli",
    "qpumesh.coordinator.cli",
    "qpumesh.coordinator.plan_cli",
    "qpumesh.client.jobs_cli",
    "qpumesh.client.mesh",
    "qpumesh.client.fault_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subsystem's subcommands."""
    parser = argparse.ArgumentParser(
        prog="qpumesh",
        description="A gRPC mesh of emulated QPUs that trains a distributed quantum LSTM.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qpumesh`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
