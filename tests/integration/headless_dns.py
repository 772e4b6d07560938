"""A tiny authoritative DNS server answering like a Kubernetes headless Service.

A headless Service's name resolves to one A record per ready pod, in an order that
changes from answer to answer (CoreDNS's ``loadbalance``), with a short TTL, and changes
as pods come, go or turn unready. ``HeadlessServiceDNS`` serves such answers from a
mutable table (``set``), NXDOMAIN for every other name (as the search-list expansions of
a short name get), and keeps the names it was asked for. Built on dnslib's server.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

TTL = 5
"""Seconds; CoreDNS's ``kubernetes`` plugin answers with this TTL by default."""


class HeadlessServiceDNS(BaseResolver):  # type: ignore[misc]
    """Serve A records for fully qualified names; rotate their order on every answer."""

    def __init__(self) -> None:
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self.queries: list[tuple[str, str]] = []
        self._servers: list[Any] = []

    def set(self, name: str, addresses: Sequence[str]) -> None:
        """Make ``name`` (fully qualified, e.g. ``qpu.ns.svc.cluster.local``) answer ``addresses``."""
        with self._lock:
            self._records[name.rstrip(".") + "."] = list(addresses)

    def resolve(self, request: Any, handler: Any) -> Any:
        """dnslib's hook: the reply to one query."""
        reply = request.reply()
        name, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, qtype))
            addresses = self._records.get(name)
            turn = next(self._turn)
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qtype == "A" and addresses:
            shift = turn % len(addresses)
            for address in addresses[shift:] + addresses[:shift]:
                reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=TTL))
        elif qtype == "AAAA":
            pass  # the name exists, with no IPv6 address: NOERROR and no answer, as in IPv4 clusters
        return reply

    def start(self, address: str = "127.0.0.1", port: int = 53) -> None:
        """Serve UDP and TCP on ``address:port`` in background threads."""
        for tcp in (False, True):
            server = DNSServer(self, address=address, port=port, tcp=tcp)
            server.start_thread()
            self._servers.append(server)

    def stop(self) -> None:
        """Stop both servers."""
        for server in self._servers:
            server.stop()
        self._servers.clear()
