"""``qpumesh mesh up``: a whole mesh on this machine in the foreground, until Ctrl-C or SIGTERM.

The mesh runs with mutual TLS (certificates made for it in a temporary directory; the
lines it prints export what a client needs). A child that dies (a node killed with
SIGKILL, a crashed coordinator) is restarted on its port with its identity, so running
jobs finish; a child that keeps dying (5 times in a minute) stops the mesh.

Also ``terminate_on_sigterm``, which every command that owns a local mesh uses so that
``kill PID`` stops the mesh as cleanly as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from qpumesh.client.local_mesh import DEFAULT_STARTUP_TIMEOUT, LocalMesh, LocalMeshError, parse_node_args_at


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``qpumesh mesh up`` to the command line."""
    mesh = subparsers.add_parser("mesh", help="run a local mesh (nodes + coordinator)", description=__doc__)
    sub = mesh.add_subparsers(dest="mesh_command", metavar="SUBCOMMAND", required=True)
    up = sub.add_parser(
        "up",
        help="start N nodes and a coordinator; print their addresses; run until Ctrl-C/SIGTERM",
        description="Start N QPU nodes and a coordinator on this machine, print their addresses and "
        "block until Ctrl-C or SIGTERM, then stop them all.",
    )
    up.add_argument(
        "--nodes", type=int, default=4, metavar="N", help="QPU node processes (default %(default)s)"
    )
    up.add_argument("--port", type=int, default=0, metavar="P", help="coordinator port (default: a free one)")
    up.add_argument(
        "--data-dir",
        default=None,
        metavar="D",
        help="coordinator data directory (job store, checkpoints); default: a temporary one",
    )
    up.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every 'qpumesh node serve' (repeatable, e.g. --node-arg=--max-qubits=3)",
    )
    up.add_argument(
        "--node-arg-at",
        action="append",
        default=[],
        metavar="I:ARG",
        help="extra argument for node I only (repeatable; a heterogeneous mesh, "
        "e.g. --node-arg-at=0:--depolarizing-1q=0.01)",
    )
    up.add_argument(
        "--coordinator-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for 'qpumesh coordinator serve' (repeatable)",
    )
    up.add_argument(
        "--plaintext", action="store_true", help="run without TLS (default: mutual TLS, new certificates)"
    )
    up.add_argument(
        "--startup-timeout",
        type=float,
        default=DEFAULT_STARTUP_TIMEOUT,
        metavar="S",
        help="seconds each process may take to start (default %(default)s)",
    )
    up.set_defaults(func=_up)


class TerminatedError(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM so a mesh shuts down through ``__exit__``.

    A ``KeyboardInterrupt`` subclass, so code that handles Ctrl-C handles SIGTERM alike.
    """


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise TerminatedError(signal.Signals(signum).name)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into exceptions in the main thread for a ``with`` block.

    A CLI command that owns a mesh uses this so ``kill PID`` stops the mesh as
    cleanly as Ctrl-C does. SIGINT is set to raise ``KeyboardInterrupt`` even when
    the process inherited it ignored (bash starts background commands of a
    script that way), because Ctrl-C / ``kill -INT`` is the documented way to
    stop the mesh. Outside the main thread it does nothing.
    """
    try:
        previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def _up(args: argparse.Namespace) -> int:
    """Run ``qpumesh mesh up``."""
    try:
        mesh = LocalMesh(
            nodes=args.nodes,
            node_args=args.node_arg,
            node_args_at=parse_node_args_at(args.node_arg_at),
            coordinator_args=args.coordinator_arg,
            data_dir=args.data_dir,
            coordinator_port=args.port,
            startup_timeout=args.startup_timeout,
            tls=not args.plaintext,
        )
    except ValueError as error:
        print(f"qpumesh mesh up: {error}", file=sys.stderr)
        return 2
    try:
        with terminate_on_sigterm():
            print(f"starting {args.nodes} node(s) and a coordinator ...", file=sys.stderr, flush=True)
            with mesh:
                for i, address in enumerate(mesh.node_addresses):
                    print(f"node-{i}       {address}")
                print(f"coordinator  {mesh.coordinator_address}")
                print(f"dashboard    {mesh.dashboard_url}  (Prometheus: {mesh.dashboard_url}metrics)")
                print(f"data dir     {mesh.data_dir}")
                print(f"logs         {mesh.log_dir}")
                print(f"\nexport QPUMESH_COORDINATOR={mesh.coordinator_address}")
                certs = mesh.certificates
                if certs is not None:
                    print(f"export QPUMESH_TLS_CA={certs.ca}")
                    print(f"export QPUMESH_TLS_CERT={certs.client_cert}")
                    print(f"export QPUMESH_TLS_KEY={certs.client_key}")
                sys.stdout.flush()
                print("mesh is up; Ctrl-C or SIGTERM stops it", file=sys.stderr, flush=True)
                while True:
                    for restarted in mesh.revive():
                        print(f"restarted {restarted}", file=sys.stderr, flush=True)
                    time.sleep(0.5)
    except LocalMeshError as error:
        print(f"qpumesh mesh up: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mesh stopped", file=sys.stderr)
        return 0
