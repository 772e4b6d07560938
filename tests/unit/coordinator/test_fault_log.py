"""The mesh's FaultLog: every event is counted per (node, kind), and pool events are logged.

docs/docker.md promises that ``docker compose logs coordinator`` shows the pool's changes
(joined, removed, replaced, unhealthy, recovered); per-call events stay at DEBUG.
"""

from __future__ import annotations

import logging

import pytest

from qpumesh.coordinator.mesh.stats import FaultLog


def test_pool_events_are_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    log = FaultLog()
    with caplog.at_level(logging.DEBUG, logger="qpumesh.coordinator.mesh.stats"):
        log.record("10.0.0.7:50051", "removed", "address no longer in DNS")
        log.record("10.0.0.8:50051", "joined", "address appeared in DNS")
        log.record("10.0.0.7:50051", "replaced", "node 'qpu-1' replaced by 'qpu-5'")
        log.record("10.0.0.8:50051", "error", "task f/0: UNAVAILABLE: ...")
        log.record("10.0.0.8:50051", "error", "task f/1: UNAVAILABLE: ...")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.WARNING, "node 10.0.0.7:50051 removed: address no longer in DNS"),
        (logging.INFO, "node 10.0.0.8:50051 joined: address appeared in DNS"),
        (logging.WARNING, "node 10.0.0.7:50051 replaced: node 'qpu-1' replaced by 'qpu-5'"),
        (logging.DEBUG, "node 10.0.0.8:50051 error: task f/0: UNAVAILABLE: ..."),
        (logging.DEBUG, "node 10.0.0.8:50051 error: task f/1: UNAVAILABLE: ..."),
    ]
    assert log.counts() == {
        ("10.0.0.7:50051", "removed"): 1,
        ("10.0.0.8:50051", "joined"): 1,
        ("10.0.0.7:50051", "replaced"): 1,
        ("10.0.0.8:50051", "error"): 2,
    }
    assert len(log.drain()) == 5
    assert log.counts()[("10.0.0.8:50051", "error")] == 2  # counts outlive draining
