"""``MeshNode``: one node as the mesh sees it: its channel and stub, health, and counters.

A node's state is touched only on the mesh's event-loop thread, so it needs no locks.
``status()`` reports it as the ``qpumesh.v1.NodeStats`` message the job runner stores
and ``ListNodes`` returns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import grpc.aio
import numpy as np

from qpumesh.coordinator.mesh.deadlines import Paces
from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_aio_channel
from qpumesh.wire.node_calls import HeldCircuits
from qpumesh.wire.tls import TlsConfig

UNHEALTHY_AFTER = 2
"""Consecutive transient failures (calls or health probes) after which a node is skipped."""
LATENCY_WINDOW = 512
"""Latencies kept per node for the percentiles."""
RECENT_CALLS = 16
"""Calls whose mean latency ranks hedge partners."""
RECONNECT_MAX_MS = 2000
"""Reconnect quickly to a node that comes back (gRPC's default backoff grows to 120 s)."""


@dataclass(eq=False)
class MeshNode:
    """One node's channel, stub and bookkeeping.

    ``calls`` counts RPCs sent to the node, ``failures`` those that failed, ``retries``
    the calls that were retries of a task that failed elsewhere (or here), ``hedges`` the
    hedge calls sent to it. Latencies cover successful calls, over the last
    ``LATENCY_WINDOW`` of them; ``paces`` (one per call kind) are what the node's
    deadlines follow (``deadlines``).
    """

    address: str
    channel: grpc.aio.Channel
    stub: Any  # pb_grpc.QPUNodeStub on the asyncio channel (the generated stub is untyped)
    info: pb.GetInfoResponse | None = None
    healthy: bool = False
    removed: bool = False
    probing: bool = False
    ever_healthy: bool = False
    consecutive_failures: int = 0
    held: HeldCircuits = field(default_factory=HeldCircuits)
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    retries: int = 0
    hedges: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    paces: Paces = field(default_factory=Paces)

    @classmethod
    def connect(cls, address: str, tls: TlsConfig | None = None, tls_name: str = "") -> MeshNode:
        """Open a channel to ``address`` (must run on the event loop).

        Args:
            address: the node's ``host:port``.
            tls: TLS towards the node (None: plaintext).
            tls_name: the name the node's certificate must be for ("" = the address's host).
        """
        channel = open_aio_channel(
            address, tls=tls, tls_server_name=tls_name, reconnect_max_ms=RECONNECT_MAX_MS
        )
        return cls(address=address, channel=channel, stub=pb_grpc.QPUNodeStub(channel))  # type: ignore[no-untyped-call]

    @property
    def max_qubits(self) -> int:
        """The node's largest circuit (0 before its first GetInfo answer)."""
        return int(self.info.max_qubits) if self.info is not None else 0

    @property
    def usable(self) -> bool:
        """Healthy, known (answered GetInfo) and still a target."""
        return self.healthy and not self.removed and self.info is not None

    def can_host(self, width: int) -> bool:
        """Whether the node is still a target and large enough for a ``width``-qubit circuit."""
        return not self.removed and self.max_qubits >= width

    def reset_counters(self) -> None:
        """Forget the circuits, counters and latencies of the node that answered here before."""
        self.held.clear()
        self.calls = self.failures = self.retries = self.hedges = 0
        self.latencies_ms.clear()
        self.paces.clear()

    def recent_latency_ms(self) -> float:
        """Mean latency of the last few successful calls (0 when none yet)."""
        recent = list(self.latencies_ms)[-RECENT_CALLS:]
        return sum(recent) / len(recent) if recent else 0.0

    def status(self) -> cpb.NodeStats:
        """Return the node's statistics."""
        latencies = np.fromiter(self.latencies_ms, dtype=np.float64)
        mean, p50, p95 = (
            (float(latencies.mean()), *(float(q) for q in np.percentile(latencies, [50, 95])))
            if latencies.size
            else (0.0, 0.0, 0.0)
        )
        return cpb.NodeStats(
            address=self.address,
            node_id=self.info.node_id if self.info is not None else "",
            healthy=self.healthy,
            max_qubits=self.max_qubits,
            backend=self.info.backend if self.info is not None else "",
            in_flight=self.in_flight,
            calls=self.calls,
            failures=self.failures,
            retries=self.retries,
            hedges=self.hedges,
            mean_latency_ms=mean,
            p50_latency_ms=p50,
            p95_latency_ms=p95,
        )
