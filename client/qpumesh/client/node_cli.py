"""``qpumesh node serve | info | bench``: run a QPU node, ask one for its description, benchmark one.

``serve`` is the node's own command, handed over to ``python -m qpumesh.node serve``
(see ``handover``); ``info`` and ``bench`` are clients of a node.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qpumesh.client import handover
from qpumesh.client.cli_support import UsageError, add_security_flags, client_tls
from qpumesh.wire.backends import BACKENDS


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``node`` command group to the ``qpumesh`` command line."""
    node = subparsers.add_parser("node", help="run, query or benchmark a QPU node", description=__doc__)
    sub = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    handover.add(
        sub, "serve", handover.NODE, "run a QPU node until SIGTERM/SIGINT (python -m qpumesh.node serve; "
        "--help for its flags)",
    )  # fmt: skip

    info = sub.add_parser("info", help="print a node's GetInfo answer")
    info.add_argument("address", metavar="ADDRESS", help="host:port of the node")
    info.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default %(default)s)")
    info.add_argument("--json", action="store_true", help="print the raw GetInfoResponse as JSON")
    add_security_flags(info.add_argument_group("transport"), token=False)
    info.set_defaults(func=_info)

    bench = sub.add_parser(
        "bench",
        help="measure evaluations/s and Jacobians/s per engine through gRPC",
        description="Benchmark node engines on the QLSTM-style VQC through gRPC: one local node process per "
        "engine, or the node at --node. benchmarks/bench_node.py also measures them in process.",
    )
    add_bench_arguments(bench)
    bench.add_argument("--node", metavar="ADDRESS", help="measure this running node instead (its own engine)")
    add_security_flags(bench.add_argument_group("transport (with --node)"), token=False)
    bench.set_defaults(func=_bench)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's flags: ``--quick``, ``--backends``, ``--markdown``, ``--torch-threads``."""
    parser.add_argument("--quick", action="store_true", help="one small shape, fewer rows (a smoke run)")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated engines (default %(default)s)"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")


def backends_of(args: argparse.Namespace) -> tuple[str, ...]:
    """Return the engines ``--backends`` names."""
    return tuple(name.strip() for name in args.backends.split(",") if name.strip())


def _info(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from qpumesh.client.node_client import NodeClient
    from qpumesh.wire.errors import QpuMeshError

    try:
        with NodeClient(args.address, timeout=args.timeout, tls=client_tls(args)) as client:
            info = client.info()
    except (QpuMeshError, UsageError) as error:
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
        ("mitigation", noise.mitigation or "none"),
        ("hardware", info.hardware),
        ("supported gates", ", ".join(info.supported_gates)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from qpumesh.client.node_bench import NodeFor, existing_node, node_process, run_benchmark
    from qpumesh.client.node_client import NodeClient

    backends = backends_of(args)
    node_for: NodeFor = node_process
    if args.node:
        from qpumesh.wire.errors import QpuMeshError

        try:
            tls = client_tls(args)
            with NodeClient(args.node, timeout=10, tls=tls) as client:
                backends = (client.info().backend,)
        except (QpuMeshError, UsageError) as error:
            print(f"qpumesh node bench: {args.node}: {error}", file=sys.stderr)
            return 1
        node_for = existing_node(args.node, tls)
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        print(
            f"qpumesh node bench: unknown engine(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}",
            file=sys.stderr,
        )
        return 2
    run_benchmark(
        backends,
        quick=args.quick,
        markdown=args.markdown,
        torch_threads=args.torch_threads,
        node_for=node_for,
    )
    return 0
