"""Throttling failed authentication: per peer address, with exponential backoff.

Both token checks of qpumesh use it: the coordinator's bearer tokens and the node's
NodeAdmin token. A peer (its IP address, whatever its source port) may fail
``free_failures`` times in a row; each further failure blocks it for a delay that
doubles from ``base_delay`` up to ``max_delay``, and while blocked every attempt is
refused without looking at the token (``RESOURCE_EXHAUSTED``, saying when to retry), so
a guesser gets a handful of tries a minute instead of thousands a second. A success
resets the peer. The table holds at most ``max_peers`` peers (the least recently failed
are forgotten first), so a flood of addresses cannot grow it without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


def peer_address(peer: str) -> str:
    """Return the address part of a gRPC peer string, without the port.

    ``ipv4:127.0.0.1:5123`` -> ``ipv4:127.0.0.1``; ``ipv6:[::1]:5123`` -> ``ipv6:[::1]``;
    anything else (``unix:...``) is returned unchanged.
    """
    if peer.startswith(("ipv4:", "ipv6:")):
        host, sep, port = peer.rpartition(":")
        if sep and port.isdigit():
            return host
    return peer


@dataclass
class _Peer:
    failures: int = 0
    blocked_until: float = 0.0


class FailureThrottle:
    """Counts failed attempts per peer and blocks peers that keep failing.

    Thread-safe.

    Args:
        free_failures: failures in a row allowed before the first block.
        base_delay: seconds of the first block; each further failure doubles it.
        max_delay: longest block, in seconds.
        max_peers: peers remembered at most.
        clock: monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        max_peers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 0 or max_peers < 1:
            raise ValueError("free_failures must be >= 0 and max_peers >= 1")
        if not (math.isfinite(base_delay) and 0 < base_delay <= max_delay and math.isfinite(max_delay)):
            raise ValueError("need 0 < base_delay <= max_delay, both finite")
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_peers = max_peers
        self._clock = clock
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._lock = threading.Lock()

    def blocked_for(self, peer: str) -> float:
        """Seconds ``peer`` must still wait before its next attempt (0: it may try now)."""
        with self._lock:
            state = self._peers.get(peer)
            if state is None:
                return 0.0
            return max(0.0, float(state.blocked_until - self._clock()))

    def failure(self, peer: str) -> float:
        """Record a failed attempt of ``peer``; return how long it is now blocked (0: not)."""
        with self._lock:
            state = self._peers.pop(peer, None) or _Peer()
            self._peers[peer] = state  # most recently failed last
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
            state.failures += 1
            excess = state.failures - self.free_failures
            if excess <= 0:
                return 0.0
            delay = min(self.max_delay, self.base_delay * 2.0 ** min(excess - 1, 64))
            state.blocked_until = self._clock() + delay
            return delay

    def success(self, peer: str) -> None:
        """Forget ``peer``'s failures."""
        with self._lock:
            self._peers.pop(peer, None)

    def failures(self, peer: str) -> int:
        """Failed attempts of ``peer`` in a row (for tests and logs)."""
        with self._lock:
            state = self._peers.get(peer)
            return state.failures if state is not None else 0


def retry_message(what: str, seconds: float) -> str:
    """Return the message of an attempt refused because its peer is blocked."""
    return f"too many failed {what} from this address; retry in {math.ceil(seconds)} s"
