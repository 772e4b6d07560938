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
A node serving mutual TLS needs ``--tls-ca``, ``--tls-cert``, ``--tls-key`` (or
``QPUMESH_TLS_*``; inside a node's container these are set already).
Exit codes: 0 success; 1 the node refused or could not be reached; 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from qpumesh.wire.fault_config import ADMIN_TOKEN_ENV, FAULT_OPTIONS, FLAG_PREFIX
from qpumesh.wire.settings import argparse_type, boolean

if TYPE_CHECKING:
    from qpumesh.v1 import node_admin_pb2 as apb

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``fault`` command to the ``qpumesh`` command line.

    Its fault flags are the node's (``FAULT_OPTIONS``) without the ``--fault-`` prefix:
    ``--latency 20ms``, ``--error-rate 0.05``, ``--hang`` (a switch here).
    """
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
    faults = parser.add_argument_group("faults (flags not given are off)")
    for option in FAULT_OPTIONS:
        flag = "--" + option.flag.removeprefix(FLAG_PREFIX)
        if option.parse is boolean:
            faults.add_argument(flag, dest=option.dest, action="store_const", const=True, help=option.help)
        else:
            faults.add_argument(
                flag,
                dest=option.dest,
                type=argparse_type(option.parse),
                metavar=option.metavar,
                help=option.help,
            )
    parser.add_argument(
        "--token", default=None, metavar="TOKEN", help=f"admin token (default ${ADMIN_TOKEN_ENV})"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="deadline (default %(default)s)"
    )
    from qpumesh.client.cli_support import add_security_flags

    add_security_flags(parser.add_argument_group("transport"), token=False)
    parser.set_defaults(func=run_fault, parser=parser)


def _requested_config(args: argparse.Namespace) -> apb.FaultConfig | None:
    """Return the config the flags ask for, or None when no fault flag was given."""
    from qpumesh.wire.fault_config import FaultConfig

    given = {o.dest: getattr(args, o.dest) for o in FAULT_OPTIONS if getattr(args, o.dest) is not None}
    if args.clear:
        if given:
            raise ValueError("--clear cannot be combined with fault flags")
        return FaultConfig().to_proto()
    if not given:
        return None
    if args.show:
        raise ValueError("--show cannot be combined with fault flags")
    return FaultConfig(**given).to_proto()


def format_faults(config: apb.FaultConfig, counters: apb.FaultCounters, node_id: str = "") -> str:
    """Render a node's faults and counters as a few human-readable lines."""
    from qpumesh.wire.fault_config import FaultConfig

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

    from qpumesh.v1 import node_admin_pb2 as apb
    from qpumesh.v1 import node_admin_pb2_grpc as apb_grpc
    from qpumesh.wire.channels import open_channel
    from qpumesh.wire.errors import from_rpc_error
    from qpumesh.wire.fault_config import ADMIN_TOKEN_METADATA, FaultConfigError

    try:
        requested = _requested_config(args)
    except (ValueError, FaultConfigError) as error:
        print(f"qpumesh fault: {error}", file=sys.stderr)
        return EXIT_USAGE
    from qpumesh.client.cli_support import UsageError, client_tls

    try:
        tls = client_tls(args)
    except UsageError as error:
        print(f"qpumesh fault: {error}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token if args.token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")
    metadata: tuple[tuple[str, str | bytes], ...] = ((ADMIN_TOKEN_METADATA, str(token)),) if token else ()
    with open_channel(args.node, tls=tls) as channel:
        admin = apb_grpc.NodeAdminStub(channel)  # type: ignore[no-untyped-call]
        try:
            if requested is None:
                shown: apb.GetFaultsResponse = admin.GetFaults(
                    apb.GetFaultsRequest(), timeout=args.timeout, metadata=metadata
                )
                print(format_faults(shown.faults, shown.counters, shown.node_id))
                return EXIT_OK
            reply: apb.SetFaultsResponse = admin.SetFaults(
                apb.SetFaultsRequest(faults=requested), timeout=args.timeout, metadata=metadata
            )
        except grpc.RpcError as error:
            print(f"qpumesh fault: {args.node}: {from_rpc_error(error)}", file=sys.stderr)
            return EXIT_FAILED
    print(format_faults(reply.faults, reply.counters))
    return EXIT_OK
