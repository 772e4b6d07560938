"""``qpumesh certs init DIR [--hosts h1,h2]``: a private CA and the mesh's certificates (``certs``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qpumesh.client.cli_support import EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``qpumesh certs init`` to the command line."""
    certs = subparsers.add_parser(
        "certs", help="make TLS certificates for a mesh", description="TLS certificates for a mesh."
    )
    sub = certs.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", required=True)
    init = sub.add_parser(
        "init",
        help="write a private CA, a server and a client certificate to DIR",
        description="Write ca.crt (+ ca.key), server.crt/.key (every node and the coordinator; also "
        "their client certificate towards the nodes) and client.crt/.key (people and tools) to DIR. "
        "Keys are written with mode 0600. See docs/security.md.",
    )
    init.add_argument("directory", metavar="DIR", help="where to write the files (created if needed)")
    init.add_argument(
        "--hosts",
        default="",
        metavar="H1,H2",
        help="DNS names and IPs the servers are reached by, besides localhost, 127.0.0.1 and ::1 "
        "(e.g. qpu,coordinator)",
    )
    init.add_argument(
        "--days", type=int, default=365, metavar="N", help="validity of the server and client certificates"
    )
    existing = init.add_mutually_exclusive_group()
    existing.add_argument("--force", action="store_true", help="replace existing files")
    existing.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing (exit 0) when DIR already holds a complete set (a one-shot container step)",
    )
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from qpumesh.client.certs import MeshCertificates, make_certificates

    if args.if_missing and MeshCertificates(Path(args.directory)).exists():
        print(f"{args.directory} already holds the mesh's certificates; left as they are")
        return EXIT_OK
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    try:
        made = make_certificates(args.directory, hosts, days=args.days, overwrite=args.force)
    except (ValueError, OSError) as error:
        print(f"qpumesh certs init: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote ca.crt, ca.key, server.crt, server.key, client.crt, client.key to {made.directory}")
    print("servers: --tls-cert server.crt --tls-key server.key --tls-ca ca.crt")
    print("clients: --tls-ca ca.crt --tls-cert client.crt --tls-key client.key  (keep ca.key offline)")
    return EXIT_OK
