"""``python -m qpumesh.coordinator [serve|plan] ...``: the coordinator's command line.

- ``serve`` (the default, which is what a container runs): the job service, until
  SIGTERM/SIGINT. Every setting can also be given by the environment variable shown in
  ``--help``; flags win. Jobs left QUEUED or RUNNING in the data directory resume.
- ``plan``: how a distributed QLSTM would be cut and placed on nodes (``plan_cli``).

``qpumesh coordinator serve`` and ``qpumesh plan`` hand their arguments over to this
module. Heavy imports (torch, grpc) happen once a command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from qpumesh.coordinator import plan_cli
from qpumesh.coordinator.config import add_arguments
from qpumesh.wire.tracing import configure_logging

COMMANDS = ("serve", "plan")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m qpumesh.coordinator``."""
    parser = argparse.ArgumentParser(prog="python -m qpumesh.coordinator", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the coordinator until SIGTERM/SIGINT (the default)",
        description="Run the coordinator: the job service that trains QLSTMs on the QPU nodes. "
        "Every flag can also be set by the environment variable shown in brackets; flags win "
        "over the environment. Jobs left QUEUED or RUNNING in the data directory resume.",
    )
    add_arguments(serve)
    serve.set_defaults(func=_serve, parser=serve)
    plan_cli.register(sub)
    return parser


def with_default_command(arguments: Sequence[str]) -> list[str]:
    """Insert ``serve`` after ``--log-level`` unless a command (or help) follows it."""
    arguments = list(arguments)
    i = 0
    while i < len(arguments):
        if arguments[i] == "--log-level":
            i += 2
        elif arguments[i].startswith("--log-level="):
            i += 1
        else:
            break
    if i < len(arguments) and (arguments[i] in COMMANDS or arguments[i] in ("-h", "--help")):
        return arguments
    return [*arguments[:i], "serve", *arguments[i:]]


def _serve(args: argparse.Namespace) -> int:
    from qpumesh.coordinator.config import ConfigError, build_config
    from qpumesh.coordinator.server import serve
    from qpumesh.wire.tracing import configure_tracing, shutdown_tracing

    try:
        config = build_config(vars(args), os.environ)
        configure_tracing("qpumesh-coordinator")
    except (ConfigError, ValueError) as error:
        args.parser.error(str(error))  # exits with status 2 and the usage line
    try:
        serve(config)
    finally:
        shutdown_tracing()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a coordinator command; returns its exit status (130 on Ctrl-C)."""
    args = build_parser().parse_args(with_default_command(sys.argv[1:] if argv is None else argv))
    configure_logging(getattr(logging, str(args.log_level).upper(), logging.INFO))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
