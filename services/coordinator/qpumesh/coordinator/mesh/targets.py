"""Which nodes the mesh talks to: ``host:port`` lists and ``dns:SERVICE:PORT`` discovery.

``dns:SERVICE:PORT`` names every address a DNS name resolves to (one A/AAAA record per
``docker compose --scale`` replica); the mesh resolves it again periodically, so nodes
that join or leave are picked up while a job runs. Over TLS a node found that way is
dialled by IP but must hold a certificate for ``SERVICE`` (``tls_names``).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

logger = logging.getLogger(__name__)

DNS_PREFIX = "dns:"


def parse_targets(nodes: str | Sequence[str]) -> list[str]:
    """Split a node list into targets: ``host:port`` or ``dns:SERVICE:PORT`` entries.

    Args:
        nodes: a comma-separated string or a sequence of targets.

    Raises:
        ValueError: when the list is empty or an entry has no port.
    """
    items = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    targets = [item.strip() for item in items if item.strip()]
    if not targets:
        raise ValueError("no QPU nodes given: expected 'host:port,...' or 'dns:SERVICE:PORT'")
    for target in targets:
        _, _, port = target.removeprefix(DNS_PREFIX).removeprefix("///").rpartition(":")
        if not port.isdigit():
            raise ValueError(f"node target {target!r} has no port: expected host:port or dns:SERVICE:PORT")
    return targets


def has_dns(targets: Sequence[str]) -> bool:
    """Whether any target is a ``dns:`` name (to be resolved again while running)."""
    return any(target.startswith(DNS_PREFIX) for target in targets)


def tls_names(targets: Sequence[str]) -> dict[str, str]:
    """Return the host name each ``dns:`` target's addresses must show in their certificates.

    Keys are the ``dns:SERVICE:PORT`` targets, values ``SERVICE``; plain ``host:port``
    targets are checked against their own host by gRPC and are not listed.
    """
    names = {}
    for target in targets:
        if target.startswith(DNS_PREFIX):
            host, _, _ = target.removeprefix(DNS_PREFIX).removeprefix("///").rpartition(":")
            names[target] = host.strip("[]")
    return names


def resolve_named(targets: Sequence[str]) -> dict[str, str]:
    """Like ``resolve_targets``, mapping each address to its TLS name ("" = its own host)."""
    names = tls_names(targets)
    resolved: dict[str, str] = {}
    for target in targets:
        for address in resolve_targets([target]):
            resolved.setdefault(address, names.get(target, ""))
    return resolved


def resolve_targets(targets: Sequence[str]) -> list[str]:
    """Expand ``dns:SERVICE:PORT`` targets into one ``ip:port`` per A/AAAA record.

    Plain ``host:port`` targets are kept as they are (gRPC resolves them). A DNS name
    that does not resolve (yet) contributes no address.
    """
    addresses: list[str] = []
    for target in targets:
        if not target.startswith(DNS_PREFIX):
            addresses.append(target)
            continue
        host, _, port = target.removeprefix(DNS_PREFIX).removeprefix("///").rpartition(":")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            logger.debug("cannot resolve %s: %s", host, error)
            continue
        ips = sorted({str(info[4][0]) for info in infos})
        addresses.extend(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip in ips)
    return list(dict.fromkeys(addresses))
