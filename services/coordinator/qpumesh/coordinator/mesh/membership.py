"""Membership and health: which nodes the mesh has, and which of them can take work.

``Membership`` keeps one ``MeshNode`` per address. ``dns:`` targets are resolved again
every ``resolve_interval_seconds`` (addresses that appear join, addresses that vanish are
removed once idle). Every ``health_interval_seconds`` each node is probed with GetInfo,
which goes through the same fault path as real work: a node that fails
``UNHEALTHY_AFTER`` times in a row (calls or probes) is marked unhealthy and skipped
until it answers again. A different node id at a known address (a new container that got
a removed one's IP) starts with fresh counters and an empty circuit cache. Everything
that changes is recorded in the ``FaultLog``. All of it runs on the mesh's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

import grpc
import grpc.aio

from qpumesh.coordinator.mesh import deadlines
from qpumesh.coordinator.mesh.nodes import UNHEALTHY_AFTER, MeshNode
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.stats import FaultLog
from qpumesh.coordinator.mesh.targets import has_dns, resolve_named
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.errors import MeshError
from qpumesh.wire.tls import TlsConfig

logger = logging.getLogger(__name__)

READY_GRACE_SECONDS = 2.0
"""After the first node answers, how long the first plan still waits for the others."""


class Membership:
    """The mesh's nodes, their discovery and their health.

    Args:
        targets: from ``targets.parse_targets``.
        options: probing intervals and timeouts.
        faults: where membership and health changes are recorded.
        tls: TLS towards the nodes (None: plaintext).
    """

    def __init__(
        self, targets: Sequence[str], options: PoolOptions, faults: FaultLog, tls: TlsConfig | None = None
    ) -> None:
        self.targets = list(targets)
        self.options = options
        self.faults = faults
        self.tls = tls
        self.nodes: dict[str, MeshNode] = {}
        self._probes: set[asyncio.Task[bool]] = set()

    # ------------------------------------------------------------------ views

    def usable(self) -> list[MeshNode]:
        """Return the nodes that can take work now, in discovery order."""
        return [node for node in self.nodes.values() if node.usable]

    def current(self) -> list[MeshNode]:
        """Return every node that is still a target, healthy or not."""
        return [node for node in self.nodes.values() if not node.removed]

    # ------------------------------------------------------------------ discovery

    async def start(self) -> list[asyncio.Task[None]]:
        """Resolve the targets once; return the background loops (health, and DNS when needed)."""
        self.sync(await asyncio.to_thread(resolve_named, self.targets), announce=False)
        loops = [asyncio.create_task(self._health_loop())]
        if has_dns(self.targets):
            loops.append(asyncio.create_task(self._resolve_loop()))
        return loops

    def sync(self, addresses: Mapping[str, str] | Sequence[str], *, announce: bool) -> None:
        """Add channels for new addresses; mark vanished ones removed.

        ``addresses`` maps each address to the name its TLS certificate must be for
        ("" = its own host); a plain sequence means "" for all.
        """
        named = dict(addresses) if isinstance(addresses, Mapping) else dict.fromkeys(addresses, "")
        current = set(named)
        for address, tls_name in named.items():
            node = self.nodes.get(address)
            if node is None:
                self.nodes[address] = MeshNode.connect(address, self.tls, tls_name)
                if announce:
                    self.faults.record(address, "joined", "address appeared in DNS")
            elif node.removed:
                node.removed = False
                if announce:
                    self.faults.record(address, "joined", "address reappeared in DNS")
        for address, node in list(self.nodes.items()):
            if address not in current and not node.removed:
                node.removed = True
                node.healthy = False
                self.faults.record(address, "removed", "address no longer in DNS")

    async def _resolve_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.resolve_interval_seconds)
            try:
                addresses = await asyncio.to_thread(resolve_named, self.targets)
            except OSError as error:
                logger.warning("resolving %s failed: %s", ",".join(self.targets), error)
                continue
            if addresses:  # a DNS hiccup must not empty the pool
                self.sync(addresses, announce=True)
            for node in list(self.nodes.values()):
                if node.removed and node.in_flight == 0:
                    del self.nodes[node.address]
                    await node.channel.close(None)

    async def close(self) -> None:
        """Cancel the probes and close every channel."""
        for probe in self._probes:
            probe.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        await asyncio.gather(
            *(node.channel.close(None) for node in self.nodes.values()), return_exceptions=True
        )

    # ------------------------------------------------------------------ health

    async def _health_loop(self) -> None:
        while True:
            for node in self.current():
                if not node.probing:
                    probe = asyncio.create_task(self.probe(node))
                    self._probes.add(probe)
                    probe.add_done_callback(self._probes.discard)
            await asyncio.sleep(self.options.health_interval_seconds)

    async def probe(self, node: MeshNode, timeout: float | None = None) -> bool:
        """GetInfo on ``node``; update its health. Returns whether it answered.

        Without ``timeout`` the probe's deadline follows the node's pace (``deadlines``)
        from a floor of ``min(timeout_seconds, 5 s)``, so a node whose calls are slow is not
        declared dead for a slow answer; a probe that times out joins the pace like a call.
        """
        if node.probing:
            return node.healthy
        node.probing = True
        if timeout is None:
            others = [n.paces for n in self.current() if n is not node]
            timeout = deadlines.probe_deadline(min(self.options.timeout_seconds, 5.0), node.paces, others)
        try:
            info: pb.GetInfoResponse = await node.stub.GetInfo(pb.GetInfoRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                node.paces.probes.record(timeout, 0.0)
            if node.healthy:
                self.failed(node, f"health check: {error.code().name}: {error.details()}")
            return False
        finally:
            node.probing = False
        if node.info is not None and node.info.node_id != info.node_id:
            # Another QPU now answers at this address (e.g. a new container that got a
            # removed one's IP): its cache is empty and the old node's counters are not its.
            detail = f"node {node.info.node_id!r} replaced by {info.node_id!r}"
            self.faults.record(node.address, "replaced", detail)
            node.reset_counters()
        node.info = info
        self.answered(node, "health check answered")
        return True

    def answered(self, node: MeshNode, reason: str) -> None:
        """``node`` answered a call or a probe: its failure streak ends; a known node is healthy."""
        node.consecutive_failures = 0
        if not node.healthy and node.info is not None:
            self._mark_healthy(node, reason)

    def failed(self, node: MeshNode, reason: str) -> None:
        """``node`` failed transiently; after ``UNHEALTHY_AFTER`` in a row it is skipped."""
        node.consecutive_failures += 1
        if node.consecutive_failures >= UNHEALTHY_AFTER and node.healthy:
            node.healthy = False
            self.faults.record(node.address, "unhealthy", reason)  # logged by the FaultLog

    def _mark_healthy(self, node: MeshNode, reason: str) -> None:
        node.healthy = True
        # A node that was down may have restarted with an empty circuit cache.
        node.held.clear()
        if node.ever_healthy:
            self.faults.record(node.address, "recovered", reason)  # logged by the FaultLog
            return
        node.ever_healthy = True
        assert node.info is not None
        logger.info(
            "node %s (%s) is up: %d qubits, backend %s",
            node.address, node.info.node_id, node.max_qubits, node.info.backend,
        )  # fmt: skip

    async def wait_ready(self, *, all_nodes: bool) -> None:
        """Wait until a node is usable (and, with ``all_nodes``, briefly for the rest).

        Raises:
            MeshError: UNAVAILABLE when no node answered within ``connect_timeout_seconds``.
        """
        deadline = time.monotonic() + self.options.connect_timeout_seconds
        grace_end: float | None = None
        while True:
            pending = [node for node in self.current() if not node.healthy]
            usable = self.usable()
            now = time.monotonic()
            if usable and grace_end is None:
                grace_end = min(deadline, now + READY_GRACE_SECONDS)
            if usable and (not all_nodes or not pending or now >= (grace_end or now)):
                return
            if now >= deadline:
                targets = ", ".join(self.targets)
                raise MeshError(
                    ",".join(self.targets),
                    grpc.StatusCode.UNAVAILABLE,
                    f"no QPU node answered GetInfo within {self.options.connect_timeout_seconds:g} s "
                    f"(targets: {targets}; resolved: {', '.join(self.nodes) or 'nothing'})",
                )
            if not self.nodes and has_dns(self.targets):
                self.sync(await asyncio.to_thread(resolve_named, self.targets), announce=False)
            probe_timeout = max(0.05, min(1.0, deadline - now))
            await asyncio.gather(*(self.probe(node, probe_timeout) for node in pending))
            await asyncio.sleep(0.1)
