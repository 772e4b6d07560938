"""``qpumesh node ...``: run a QPU node, ask one for its description, benchmark one.

Registered in the ``qpumesh`` command line through ``register``; ``python -m
qpumesh.node`` runs the same subcommands on their own (``serve`` when none is given,
which is what a container wants). Heavy imports (torch, cirq, grpc) happen inside the
handlers so that ``qpumesh --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from qpumesh.wire.settings import add_port_file_argument, run_service, service_parser, with_default_command


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``node`` command group to the ``qpumesh`` command line."""
    node = subparsers.add_parser("node", help="run or query a QPU node", description=__doc__)
    _add_node_commands(node)


def _add_node_commands(parser: argparse.ArgumentParser) -> None:
    from qpumesh.node.config import add_arguments
    from qpumesh.node.faults import add_fault_arguments

    sub = parser.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run a QPU node until SIGTERM/SIGINT",
        description="Run a QPU node. Every flag can also be set by the environment variable shown "
        "in brackets; flags win over the environment.",
    )
    add_arguments(serve)
    add_fault_arguments(serve)
    add_port_file_argument(serve)
    serve.set_defaults(func=_serve, parser=serve)

    info = sub.add_parser("info", help="print a node's GetInfo answer")
    info.add_argument("address", metavar="ADDRESS", help="host:port of the node")
    info.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default %(default)s)")
    info.add_argument("--json", action="store_true", help="print the raw GetInfoResponse as JSON")
    info.set_defaults(func=_info)

    bench = sub.add_parser(
        "bench",
        help="measure evaluations/s per engine, in process and through gRPC",
        description="Benchmark the node engines on the QLSTM-style VQC (also benchmarks/bench_node.py).",
    )
    bench.add_argument("--quick", action="store_true", help="fewer configurations and rows (a smoke run)")
    bench.add_argument(
        "--backends", default="batched,qsim,cirq", help="comma-separated engines (default %(default)s)"
    )
    bench.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    bench.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    bench.set_defaults(func=_bench)


def _serve(args: argparse.Namespace) -> int:
    from qpumesh.node.config import ConfigError, build_config
    from qpumesh.node.faults import fault_hooks
    from qpumesh.node.server import serve

    try:
        config = build_config(vars(args), os.environ)
    except ConfigError as error:
        args.parser.error(str(error))  # exits with status 2 and the usage line
    hooks = fault_hooks(config.faults, node_id=config.node.node_id)
    serve(config, port_file=args.port_file, **hooks.server_kwargs())
    return 0


def _info(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from qpumesh.client.errors import QpuMeshError
    from qpumesh.client.node_client import NodeClient

    try:
        with NodeClient(args.address, timeout=args.timeout) as client:
            info = client.info()
    except QpuMeshError as error:
        print(f"qpumesh node info: {args.address}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json_format.MessageToJson(info, always_print_fields_with_no_presence=True))
        return 0
    noise = info.noise
    rows = [
        ("node", info.node_id),
        ("version", info.version),
        ("backend", info.backend),
        ("max qubits", str(info.max_qubits)),
        ("default shots", str(info.default_shots)),
        ("max batch rows", str(info.max_batch_rows)),
        ("max message bytes", str(info.max_message_bytes)),
        (
            "noise",
            f"depolarizing 1q {noise.depolarizing_1q:g}, 2q {noise.depolarizing_2q:g}, "
            f"readout {noise.readout_error:g} (gate noise simulated by: {noise.method})",
        ),
        ("supported gates", ", ".join(info.supported_gates)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from qpumesh.node.bench import run_benchmark

    backends = tuple(name.strip() for name in args.backends.split(",") if name.strip())
    run_benchmark(
        backends=backends, quick=args.quick, markdown=args.markdown, torch_threads=args.torch_threads
    )
    return 0


_COMMANDS = ("serve", "info", "bench")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m qpumesh.node``: the node subcommands on their own."""
    parser = service_parser("python -m qpumesh.node", __doc__)
    _add_node_commands(parser)
    return parser


def _with_default_command(arguments: list[str]) -> list[str]:
    """Insert ``serve`` after the global options unless a subcommand (or help) follows them."""
    return with_default_command(arguments, _COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m qpumesh.node``; with no subcommand, ``serve``."""
    return run_service(build_parser(), argv, _COMMANDS)
