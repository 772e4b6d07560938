"""``qpumesh fault NODE ...``: inject, show or clear faults on a running QPU node.

Talks to the node's ``qpumesh.v1.NodeAdmin`` service, which the node enables only
when started with an admin token (``QPUMESH_ADMIN_TOKEN`` / ``--admin-token``); the
same token is sent here as ``x-qpumesh-admin-token`` metadata (``--token``, default
``$QPUMESH_ADMIN_TOKEN``).

    qpumesh fault localhost:50051 --latency 20ms --jitter 5ms --error-rate 0.05
    qpumesh fault localhost:50051 --hang
    qpumesh fault localhost:50051 --show
    qpumesh fault localhost:50051 --clear

Setting faults *replaces* the node's whole fault config: flags not given are off.
Exit codes: 0 success; 1 the node refused or could not be reached; 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qpumesh.v1 import node_admin_pb2 as apb

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``fault`` command to the ``qpumesh`` command line."""
    from qpumesh.node.faults import (
        ADMIN_TOKEN_ENV,
        JITTER_DISTRIBUTIONS,
        parse_bandwidth,
        parse_count,
        parse_duration_ms,
        parse_jitter_distribution,
        parse_probability,
    )
    from qpumesh.wire.settings import argparse_type as checked

    parser = subparsers.add_parser(
        "fault",
        help="inject, show or clear faults on a QPU node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("node", metavar="NODE_ADDRESS", help="host:port of the node")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--show", action="store_true", help="print the node's faults and counters (default)")
    action.add_argument("--clear", action="store_true", help="turn every fault off")
    parser.add_argument(
        "--latency",
        type=checked(parse_duration_ms),
        metavar="DURATION",
        help="extra latency per call, e.g. 20ms",
    )
    parser.add_argument(
        "--jitter", type=checked(parse_duration_ms), metavar="DURATION", help="random extra latency, e.g. 5ms"
    )
    parser.add_argument(
        "--jitter-dist",
        type=checked(parse_jitter_distribution),
        metavar="|".join(JITTER_DISTRIBUTIONS),
        help="jitter distribution (default normal)",
    )
    parser.add_argument(
        "--bandwidth", type=checked(parse_bandwidth), metavar="RATE", help="link bandwidth, e.g. 1MB/s"
    )
    parser.add_argument(
        "--error-rate", type=checked(parse_probability), metavar="P", help="probability of UNAVAILABLE"
    )
    parser.add_argument("--hang", action="store_true", help="never answer (callers hit their deadline)")
    parser.add_argument(
        "--crash-after",
        type=checked(parse_count),
        metavar="N",
        help="exit the node process when Evaluate/ShiftGradient call N+1 arrives",
    )
    parser.add_argument("--seed", type=checked(parse_count), metavar="N", help="seed of the fault draws")
    parser.add_argument(
        "--token", default=None, metavar="TOKEN", help=f"admin token (default ${ADMIN_TOKEN_ENV})"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="deadline (default %(default)s)"
    )
    parser.set_defaults(func=run_fault, parser=parser)


_SETTING_FLAGS = ("latency", "jitter", "jitter_dist", "bandwidth", "error_rate", "crash_after", "seed")


def _requested_config(args: argparse.Namespace) -> apb.FaultConfig | None:
    """Return the config the flags ask for, or None when no fault flag was given."""
    from qpumesh.node.faults import FaultConfig

    given = [name for name in _SETTING_FLAGS if getattr(args, name) is not None] + (
        ["hang"] if args.hang else []
    )
    if args.clear:
        if given:
            raise ValueError("--clear cannot be combined with fault flags")
        return FaultConfig().to_proto()
    if not given:
        return None
    if args.show:
        raise ValueError("--show cannot be combined with fault flags")
    config = FaultConfig(
        latency_ms=args.latency or 0.0,
        jitter_ms=args.jitter or 0.0,
        jitter_dist=args.jitter_dist or "normal",
        bandwidth_bytes_per_second=args.bandwidth or 0.0,
        error_rate=args.error_rate or 0.0,
        hang=bool(args.hang),
        crash_after_calls=args.crash_after or 0,
        seed=args.seed,
    )
    return config.to_proto()


def format_faults(config: apb.FaultConfig, counters: apb.FaultCounters, node_id: str = "") -> str:
    """Render a node's faults and counters as a few human-readable lines."""
    from qpumesh.node.faults import FaultConfig

    lines = []
    if node_id:
        lines.append(f"node      {node_id}")
    lines.append(f"faults    {FaultConfig.from_proto(config).describe()}")
    lines.append(
        f"counters  calls {counters.calls}, work calls {counters.work_calls}, delayed {counters.delayed}, "
        f"errors {counters.injected_errors}, hung {counters.hung}"
    )
    return "\n".join(lines)


def run_fault(args: argparse.Namespace) -> int:
    """Handle ``qpumesh fault``; returns the exit status."""
    import grpc

    from qpumesh.node.faults import ADMIN_SERVICE_NAME, ADMIN_TOKEN_ENV, ADMIN_TOKEN_METADATA
    from qpumesh.v1 import node_admin_pb2 as apb

    try:
        requested = _requested_config(args)
    except ValueError as error:
        print(f"qpumesh fault: {error}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token if args.token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")
    metadata: tuple[tuple[str, str | bytes], ...] = ((ADMIN_TOKEN_METADATA, str(token)),) if token else ()
    with grpc.insecure_channel(args.node) as channel:
        try:
            if requested is None:
                get_faults = channel.unary_unary(
                    f"/{ADMIN_SERVICE_NAME}/GetFaults",
                    request_serializer=apb.GetFaultsRequest.SerializeToString,
                    response_deserializer=apb.GetFaultsResponse.FromString,
                )
                shown: apb.GetFaultsResponse = get_faults(
                    apb.GetFaultsRequest(), timeout=args.timeout, metadata=metadata
                )
                print(format_faults(shown.faults, shown.counters, shown.node_id))
                return EXIT_OK
            set_faults = channel.unary_unary(
                f"/{ADMIN_SERVICE_NAME}/SetFaults",
                request_serializer=apb.SetFaultsRequest.SerializeToString,
                response_deserializer=apb.SetFaultsResponse.FromString,
            )
            reply: apb.SetFaultsResponse = set_faults(
                apb.SetFaultsRequest(faults=requested), timeout=args.timeout, metadata=metadata
            )
        except grpc.RpcError as error:
            from qpumesh.client.errors import from_rpc_error

            print(f"qpumesh fault: {args.node}: {from_rpc_error(error)}", file=sys.stderr)
            return EXIT_FAILED
    print(format_faults(reply.faults, reply.counters))
    return EXIT_OK
