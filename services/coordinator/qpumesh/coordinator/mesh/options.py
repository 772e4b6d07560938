"""``PoolOptions``: how the coordinator's mesh talks to the nodes, validated in one place.

The coordinator's settings (``QPUMESH_RPC_TIMEOUT``, ``--max-attempts``, ...) fill these
fields directly (``config.OPTIONS``), so a bound is decided and checked here only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolOptions:
    """How the mesh talks to the nodes.

    Attributes:
        timeout_seconds: the floor of every Evaluate/ShiftGradient deadline, and the whole
            deadline of a call before any node has answered one; beyond it a call may
            take a few multiples of what the node's recent calls took for their work
            (``deadlines``), so a slow node is waited for and a hung one is not.
        max_attempts: attempts per task, the first included, before giving up.
        hedge_after_seconds: when set, a call still unanswered after this long is
            duplicated on a second capable node and the first reply wins.
        health_interval_seconds: how often every node is probed with GetInfo.
        resolve_interval_seconds: how often ``dns:`` targets are resolved again.
        connect_timeout_seconds: how long to wait for a first healthy node.

    Raises:
        ValueError: a field is out of its range (the message names it).
    """

    timeout_seconds: float = 30.0
    max_attempts: int = 4
    hedge_after_seconds: float | None = None
    health_interval_seconds: float = 2.0
    resolve_interval_seconds: float = 5.0
    connect_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("timeout_seconds", "health_interval_seconds", "resolve_interval_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if not (math.isfinite(self.connect_timeout_seconds) and self.connect_timeout_seconds >= 0):
            raise ValueError(f"connect_timeout_seconds must be >= 0, got {self.connect_timeout_seconds}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.hedge_after_seconds is not None and not (
            math.isfinite(self.hedge_after_seconds) and self.hedge_after_seconds >= 0
        ):
            raise ValueError(f"hedge_after_seconds must be >= 0 or None, got {self.hedge_after_seconds}")
