"""What the mesh counts: its own call counters and the log of node faults.

``MeshStats`` adds the mesh's counters to the ``ExecutorStats`` every executor keeps.
``FaultLog`` collects everything that went wrong (or was worked around) with a node as
``qpumesh.v1.FaultEvent`` messages, until the job runner drains them into the job's
event stream. Per-node counters live with each node (``nodes.MeshNode``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from qpumesh.coordinator.executor import ExecutorStats
from qpumesh.v1 import coordinator_pb2 as cpb

logger = logging.getLogger(__name__)

FAULT_BACKLOG = 10_000
"""Fault events kept until drained (oldest dropped first)."""

FAULT_KINDS = (
    "error",
    "timeout",
    "failover",
    "hedge",
    "unhealthy",
    "recovered",
    "replaced",
    "joined",
    "removed",
)
"""The ``FaultEvent.kind`` values: a transient failure, a deadline exceeded, a task retried
on another node, a hedge resolved (the detail names the winner), a node marked unhealthy
or back, another node id answering at an address (counters restart), a ``dns:`` target's
address set changing."""

POOL_EVENT_LEVELS = {
    "unhealthy": logging.WARNING,
    "removed": logging.WARNING,
    "replaced": logging.WARNING,
    "recovered": logging.INFO,
    "joined": logging.INFO,
}
"""Pool events (membership and health changes) are logged at these levels; per-call events
(error, timeout, failover, hedge) only at DEBUG -- they are in the job's events and the metrics."""


@dataclass
class MeshStats(ExecutorStats):
    """``ExecutorStats`` plus the mesh's own counters.

    Attributes:
        rpcs: Evaluate/ShiftGradient calls sent (hedges and NOT_FOUND resends included).
        failures: calls that failed with any status.
        retries: task attempts after the first.
        hedges: hedge calls sent.
        hedge_wins: hedges whose reply arrived first.
    """

    rpcs: int = 0
    failures: int = 0
    retries: int = 0
    hedges: int = 0
    hedge_wins: int = 0

    def add(self, **counts: int) -> None:
        """Increase the named counters."""
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class FaultLog:
    """Fault events in arrival order, thread-safe; the oldest are dropped beyond ``FAULT_BACKLOG``.

    Every event is also counted per (node, kind) for the metrics, and logged (see
    ``POOL_EVENT_LEVELS``), so ``docker compose logs coordinator`` shows the pool's changes.
    """

    def __init__(self) -> None:
        self._events: deque[cpb.FaultEvent] = deque(maxlen=FAULT_BACKLOG)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, node: str, kind: str, detail: str) -> None:
        """Append an event of ``kind`` (one of ``FAULT_KINDS``) about ``node``, stamped now."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        event = cpb.FaultEvent(time=time.time(), node=node, kind=kind, detail=detail)
        with self._lock:
            self._events.append(event)
            self._counts[node, kind] += 1
        logger.log(POOL_EVENT_LEVELS.get(kind, logging.DEBUG), "node %s %s: %s", node, kind, detail)

    def counts(self) -> dict[tuple[str, str], int]:
        """Return how many events of each (node, kind) were recorded since the start."""
        with self._lock:
            return dict(self._counts)

    def drain(self) -> list[cpb.FaultEvent]:
        """Return the events recorded since the last call, oldest first."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events
