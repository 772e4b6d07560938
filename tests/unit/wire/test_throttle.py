"""Failed-authentication throttling per peer address (qpumesh.wire.throttle)."""

from __future__ import annotations

import pytest

from qpumesh.wire.throttle import FailureThrottle, peer_address, retry_message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_peer_address_drops_the_port() -> None:
    assert peer_address("ipv4:127.0.0.1:5123") == "ipv4:127.0.0.1"
    assert peer_address("ipv6:[::1]:5123") == "ipv6:[::1]"
    assert peer_address("unix:/tmp/socket") == "unix:/tmp/socket"


def test_free_failures_then_a_doubling_block_capped_and_reset_by_success() -> None:
    clock = Clock()
    throttle = FailureThrottle(free_failures=3, base_delay=1.0, max_delay=8.0, clock=clock)
    peer = "ipv4:10.0.0.1"
    assert [throttle.failure(peer) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.blocked_for(peer) == 0.0
    delays = [throttle.failure(peer) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.blocked_for(peer) == 8.0
    clock.now += 5
    assert throttle.blocked_for(peer) == 3.0
    clock.now += 3
    assert throttle.blocked_for(peer) == 0.0
    # Another address is not affected; a success forgets the failures.
    assert throttle.blocked_for("ipv4:10.0.0.2") == 0.0
    throttle.success(peer)
    assert throttle.failures(peer) == 0 and throttle.failure(peer) == 0.0


def test_a_flood_of_addresses_cannot_grow_the_table_without_bound() -> None:
    throttle = FailureThrottle(free_failures=0, max_peers=100, clock=Clock())
    for i in range(10_000):
        throttle.failure(f"ipv4:10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(throttle._peers) == 100  # the most recent failures are kept
    assert throttle.blocked_for("ipv4:10.0.39.15") > 0  # the last address


def test_guessing_is_slowed_to_a_handful_of_tries_a_minute() -> None:
    # The defect: ~1000 admin token guesses/s. With the defaults, a minute of guessing
    # gets at most the free failures plus the few attempts let through between blocks.
    clock = Clock()
    throttle = FailureThrottle(clock=clock)
    peer, tries, t_end = "ipv4:10.9.9.9", 0, clock.now + 60
    while clock.now < t_end:
        wait = throttle.blocked_for(peer)
        if wait:
            clock.now += wait
            continue
        throttle.failure(peer)
        tries += 1
    assert tries <= 11


def test_bad_settings_and_the_retry_message() -> None:
    with pytest.raises(ValueError, match="base_delay"):
        FailureThrottle(base_delay=0)
    assert retry_message("admin token attempts", 1.2) == (
        "too many failed admin token attempts from this address; retry in 2 s"
    )
