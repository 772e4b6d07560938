#!/usr/bin/env python3
"""Container healthcheck: ask a gRPC server's standard health service whether it is serving.

Usage: ``healthcheck.py [HOST:PORT] [--service NAME] [--timeout S]``.

The address defaults to ``127.0.0.1:$QPUMESH_PORT`` (``QPUMESH_PORT`` defaults to 50051).
Exit status 0 when the server answers ``SERVING`` for ``NAME`` (default ``""``: the whole
server), 1 otherwise, with one line on stdout saying why (Docker keeps it in
``docker inspect``). With ``QPUMESH_TLS_*`` set (the container's own certificate, key and
CA) it checks over TLS, presenting that certificate, as a mutual-TLS server requires.
Besides ``grpcio`` and ``grpcio-health-checking`` it imports only the project's channel
factory and TLS settings (``qpumesh.wire``: every channel of the project comes from there),
so it stays cheap enough to run every few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.wire.channels import open_channel
from qpumesh.wire.tls import TlsConfig, TlsError, client_tls_from_environment


def check(
    address: str, service: str = "", timeout: float = 3.0, tls: TlsConfig | None = None
) -> tuple[bool, str]:
    """Return ``(serving, message)`` for one health check of ``service`` at ``address``."""
    try:
        with open_channel(address, tls=tls) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError as err:
        if isinstance(err, grpc.Call):
            return False, f"{address}: {err.code().name} {err.details()}"
        return False, f"{address}: {err}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    return serving, f"{address} {service or '<server>'}: {status}"


def main(argv: list[str] | None = None) -> int:
    """Run one check and return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "address",
        nargs="?",
        default=f"127.0.0.1:{os.environ.get('QPUMESH_PORT', '50051')}",
        help="HOST:PORT of the gRPC server (default: 127.0.0.1:$QPUMESH_PORT)",
    )
    parser.add_argument("--service", default="", help='health service name (default: "", the server)')
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline in seconds (default: 3)")
    args = parser.parse_args(argv)
    try:
        tls = client_tls_from_environment(os.environ)
    except TlsError as error:
        print(f"TLS settings: {error}")
        return 1
    ok, message = check(args.address, args.service, args.timeout, tls)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
