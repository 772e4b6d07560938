"""Commands the ``qpumesh`` CLI hands over to a service's own entry point.

``qpumesh node serve``, ``qpumesh coordinator serve`` and ``qpumesh plan`` belong to the
node and the coordinator; the client never imports their code (the import contracts
in pyproject.toml forbid it). Their arguments, unparsed, go to ``python -m
qpumesh.node serve`` / ``python -m qpumesh.coordinator serve|plan`` with this
interpreter: a server *replaces* this process (``os.execv``: the same pid, signals and
exit status, as a container's ``CMD qpumesh node serve`` needs), a one-shot command runs
as a child whose exit status is returned. ``--help`` after the command shows the
service's own flags.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from typing import Any

NODE = "qpumesh.node"
COORDINATOR = "qpumesh.coordinator"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``qpumesh coordinator serve`` and ``qpumesh plan``."""
    coordinator = subparsers.add_parser(
        "coordinator", help="run the training coordinator", description="Run the training coordinator."
    )
    commands = coordinator.add_subparsers(dest="coordinator_command", metavar="SUBCOMMAND", required=True)
    add(
        commands,
        "serve",
        COORDINATOR,
        "run the coordinator until SIGTERM/SIGINT (python -m qpumesh.coordinator serve; --help: its flags)",
    )
    add(
        subparsers,
        "plan",
        COORDINATOR,
        "show the partitioning and node placement of a distributed QLSTM "
        "(python -m qpumesh.coordinator plan; --help for its flags)",
        replace=False,
    )


def add(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    module: str,
    help_text: str,
    *,
    replace: bool = True,
) -> None:
    """Add a command ``name`` whose arguments go to ``python -m MODULE NAME``.

    Args:
        subparsers: where to add it.
        name: the command, also the service's subcommand.
        module: the service's package (run with ``-m``).
        help_text: one line for ``--help``.
        replace: replace this process (a server) rather than wait for a child.
    """
    parser = subparsers.add_parser(name, help=help_text, description=help_text, add_help=False)
    parser.set_defaults(func=run, hand_over=True, module=module, service_command=name, replace=replace)


def run(args: argparse.Namespace) -> int:
    """Hand the command over to its service; return its exit status (unless replaced)."""
    module: str = args.module
    if importlib.util.find_spec(module) is None:
        print(
            f"qpumesh {args.service_command}: {module} is not installed with this client "
            "(install the whole qpumesh distribution, or run the service's container)",
            file=sys.stderr,
        )
        return 2
    command = [
        sys.executable,
        "-m",
        module,
        "--log-level",
        str(args.log_level),
        args.service_command,
        *args.rest,
    ]
    if args.replace:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)
    return subprocess.run(command, check=False).returncode
