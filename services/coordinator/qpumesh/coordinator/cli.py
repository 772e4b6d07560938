"""``qpumesh coordinator serve``: run the coordinator service.

Registered in the ``qpumesh`` command line through ``register``; ``python -m
qpumesh.coordinator`` runs the same subcommand on its own (``serve`` when none is
given, which is what a container wants). Heavy imports (torch, grpc) happen inside
the handler so that ``qpumesh --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from qpumesh.wire.settings import add_port_file_argument, run_service, service_parser


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``coordinator`` command group to the ``qpumesh`` command line."""
    coordinator = subparsers.add_parser(
        "coordinator", help="run the training coordinator", description=__doc__
    )
    _add_coordinator_commands(coordinator)


def _add_coordinator_commands(parser: argparse.ArgumentParser) -> None:
    from qpumesh.coordinator.config import add_arguments

    sub = parser.add_subparsers(dest="coordinator_command", metavar="SUBCOMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the coordinator until SIGTERM/SIGINT",
        description="Run the coordinator: the job service that trains QLSTMs on the QPU nodes. "
        "Every flag can also be set by the environment variable shown in brackets; flags win "
        "over the environment. Jobs left QUEUED or RUNNING in the data directory resume.",
    )
    add_arguments(serve)
    add_port_file_argument(serve)
    serve.set_defaults(func=_serve, parser=serve)


def _serve(args: argparse.Namespace) -> int:
    from qpumesh.coordinator.config import ConfigError, build_config
    from qpumesh.coordinator.server import serve

    try:
        config = build_config(vars(args), os.environ)
    except ConfigError as error:
        args.parser.error(str(error))  # exits with status 2 and the usage line
    serve(config, port_file=args.port_file)
    return 0


_COMMANDS = ("serve",)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m qpumesh.coordinator``: the coordinator subcommands."""
    parser = service_parser("python -m qpumesh.coordinator", __doc__)
    _add_coordinator_commands(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m qpumesh.coordinator``; with no subcommand, ``serve``."""
    return run_service(build_parser(), argv, _COMMANDS)
