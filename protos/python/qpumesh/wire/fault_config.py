"""A node's fault injection settings: ``FaultConfig``, its units, variables and flags.

What the node injects into its QPUNode calls (latency, jitter, bandwidth, errors, hang,
crash; see the node's ``fault_injection``) is described once here, because three
parties speak it: the node reads it from ``QPUMESH_FAULT_*`` / ``--fault-*`` at
start-up (``FAULT_OPTIONS``), ``qpumesh fault`` builds it from its own flags (the same
table without the ``--fault-`` prefix) and both send it as the ``qpumesh.v1.FaultConfig``
message of the token-guarded ``NodeAdmin`` service. docs/faults.md is the user reference.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.wire.settings import Option, boolean, choice, integer, probability
from qpumesh.wire.units import bandwidth, duration_ms

JITTER_DISTRIBUTIONS = ("normal", "exponential")

ADMIN_SERVICE = apb.DESCRIPTOR.services_by_name["NodeAdmin"]
"""``qpumesh.v1.NodeAdmin``."""
ADMIN_TOKEN_METADATA = "x-qpumesh-admin-token"
"""Metadata key carrying the admin token."""
ADMIN_TOKEN_ENV = "QPUMESH_ADMIN_TOKEN"
"""The variable holding the admin token, on the node (enables NodeAdmin) and for ``qpumesh fault``."""
ADMIN_TOKEN_FLAG = "--admin-token"
"""The node's flag for the admin token."""
FLAG_PREFIX = "--fault-"
"""The node's fault flags are ``--fault-<name>``; ``qpumesh fault`` takes ``--<name>``."""


class FaultConfigError(ValueError):
    """A fault setting has a bad value; the message names the field, variable or flag."""


@dataclass(frozen=True)
class FaultConfig:
    """The faults a node injects into its QPUNode calls; the default injects none.

    Attributes:
        latency_ms: fixed extra latency per call, in milliseconds.
        jitter_ms: scale of the random extra latency per call, in milliseconds.
        jitter_dist: "normal" (``|N(0, jitter_ms)|``) or "exponential" (mean ``jitter_ms``).
        bandwidth_bytes_per_second: emulated link speed; each call is delayed by
            (request + reply bytes) / bandwidth. 0 = unlimited.
        error_rate: probability that a call fails with UNAVAILABLE.
        hang: never answer; calls wait until the caller's deadline or cancellation.
        crash_after_calls: end the process (``os._exit``) when the Evaluate/
            ShiftGradient call after the first N arrives. 0 = never.
        seed: seed of the jitter and error draws; None = nondeterministic.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: str = "normal"
    bandwidth_bytes_per_second: float = 0.0
    error_rate: float = 0.0
    hang: bool = False
    crash_after_calls: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "bandwidth_bytes_per_second"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise FaultConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.jitter_dist not in JITTER_DISTRIBUTIONS:
            raise FaultConfigError(
                f"jitter_dist must be one of {', '.join(JITTER_DISTRIBUTIONS)}, got {self.jitter_dist!r}"
            )
        if not 0.0 <= self.error_rate <= 1.0:
            raise FaultConfigError(f"error_rate must be in [0, 1], got {self.error_rate}")
        if self.crash_after_calls < 0:
            raise FaultConfigError(f"crash_after_calls must be >= 0, got {self.crash_after_calls}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise FaultConfigError(f"seed must be in 0..2**64-1, got {self.seed}")

    @property
    def active(self) -> bool:
        """Whether any fault is configured."""
        return self.describe() != "none"

    def describe(self) -> str:
        """Summarise the faults in one line, e.g. "latency 20ms, jitter 5ms (normal), error rate 0.05"."""
        parts = []
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g}ms")
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:g}ms ({self.jitter_dist})")
        if self.bandwidth_bytes_per_second:
            parts.append(f"bandwidth {self.bandwidth_bytes_per_second:g} B/s")
        if self.error_rate:
            parts.append(f"error rate {self.error_rate:g}")
        if self.hang:
            parts.append("hang")
        if self.crash_after_calls:
            parts.append(f"crash after {self.crash_after_calls} calls")
        return ", ".join(parts) or "none"

    def to_proto(self) -> apb.FaultConfig:
        """Return the ``qpumesh.v1.FaultConfig`` message (its fields are this dataclass's)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return apb.FaultConfig(**{name: value for name, value in values.items() if value is not None})

    @classmethod
    def from_proto(cls, message: apb.FaultConfig) -> FaultConfig:
        """Build a config from its message (empty ``jitter_dist`` = "normal", unset ``seed`` = None).

        Raises:
            FaultConfigError: a field has a bad value.
        """
        values = {f.name: getattr(message, f.name) for f in dataclasses.fields(cls)}
        values["jitter_dist"] = message.jitter_dist.strip().lower() or "normal"
        values["seed"] = message.seed if message.HasField("seed") else None
        return cls(**values)


FAULT_OPTIONS: tuple[Option, ...] = (
    Option("latency_ms", "QPUMESH_FAULT_LATENCY_MS", "--fault-latency", duration_ms,
           "extra latency per QPUNode call, e.g. 20ms or 0.02s (bare number = ms)", "DURATION"),
    Option("jitter_ms", "QPUMESH_FAULT_JITTER_MS", "--fault-jitter", duration_ms,
           "random extra latency per call, e.g. 5ms (see --fault-jitter-dist)", "DURATION"),
    Option("jitter_dist", "QPUMESH_FAULT_JITTER_DIST", "--fault-jitter-dist", choice(*JITTER_DISTRIBUTIONS),
           "jitter distribution: normal (|N(0, jitter)|) or exponential (mean jitter)",
           "|".join(JITTER_DISTRIBUTIONS)),
    Option("bandwidth_bytes_per_second", "QPUMESH_FAULT_BANDWIDTH_BPS", "--fault-bandwidth",
           bandwidth, "emulated link bandwidth, e.g. 1MB/s or 10Mbit/s (bare number = bytes/s)", "RATE"),
    Option("error_rate", "QPUMESH_FAULT_ERROR_RATE", "--fault-error-rate", probability(),
           "probability that a call fails with UNAVAILABLE, e.g. 0.05", "P"),
    Option("hang", "QPUMESH_FAULT_HANG", "--fault-hang", boolean,
           "true = never answer QPUNode calls (callers hit their deadline)", "BOOL"),
    Option("crash_after_calls", "QPUMESH_FAULT_CRASH_AFTER", "--fault-crash-after", integer(0),
           "exit the process when Evaluate/ShiftGradient call N+1 arrives (0 = never)", "N"),
    Option("seed", "QPUMESH_FAULT_SEED", "--fault-seed", integer(0),
           "seed of the jitter and error draws (default: random)", "N"),
)  # fmt: skip
"""One entry per ``FaultConfig`` field: the node's variable and flag, and the value parser."""
