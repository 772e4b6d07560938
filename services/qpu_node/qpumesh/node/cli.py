"""``python -m qpumesh.node [serve] [flags]``: run a QPU node until SIGTERM/SIGINT.

The node's own entry point: a container runs it with no arguments (``serve`` is the
only command and the default), the local mesh launcher and ``qpumesh node serve``
(which hands its arguments over to this module) with flags. Every setting can also
be given by the environment variable shown in ``--help``; flags win. Heavy imports
(torch, cirq) happen once the command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from qpumesh.node.config import add_arguments
from qpumesh.node.faults import add_fault_arguments
from qpumesh.wire.tracing import configure_logging, configure_tracing, shutdown_tracing


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m qpumesh.node``."""
    parser = argparse.ArgumentParser(prog="python -m qpumesh.node", description=__doc__)
    parser.add_argument(
        "command", nargs="?", choices=("serve",), default="serve", help="serve (the default): run the node"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    add_arguments(parser)
    add_fault_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node; returns the exit status (2 for bad settings, 130 on Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(logging, str(args.log_level).upper(), logging.INFO))

    from qpumesh.node.config import ConfigError, build_config
    from qpumesh.node.faults import fault_hooks
    from qpumesh.node.server import serve

    try:
        config = build_config(vars(args), os.environ)
        configure_tracing("qpumesh-node")
    except (ConfigError, ValueError) as error:
        parser.error(str(error))  # exits with status 2 and the usage line
    hooks = fault_hooks(config.faults, node_id=config.node.node_id)
    try:
        serve(config, **hooks.server_kwargs())
    except KeyboardInterrupt:
        return 130
    finally:
        shutdown_tracing()
    return 0
