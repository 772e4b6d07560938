"""Slow is not failed: deadlines follow the node's pace; a hung node is still given up on."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest
from faulty_mesh import FaultyNode, assert_same_results, make_tasks, start_faulty_node, wait_until

from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.fault_config import FaultConfig
from qpumesh.wire.job_spec import JobSpec

# A short floor, so that "well above the old deadline" is quick to test.
SHORT = PoolOptions(timeout_seconds=0.25, health_interval_seconds=0.2, connect_timeout_seconds=5.0)


@pytest.fixture
def faulty_node(node_server: Callable[..., tuple[str, grpc.Server]]) -> Callable[..., FaultyNode]:
    return functools.partial(start_faulty_node, node_server)


def test_a_node_four_times_slower_than_the_floor_answers_every_call(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    only = faulty_node(node_id="only", workers=4)
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor(only.address, SHORT) as mesh:
        assert_same_results(mesh.run_round(tasks), reference)  # the node's pace: milliseconds
        only.injector.set_config(FaultConfig(latency_ms=1000))  # 4x the old fixed deadline
        # The first slow round times out at the floor, learns, and waits longer on retry:
        # the one node is never given up on, and the numbers do not change.
        assert_same_results(mesh.run_round(tasks), reference)
        failures = mesh.stats.failures
        started = time.perf_counter()
        assert_same_results(mesh.run_round(tasks), reference)
        assert time.perf_counter() - started >= 1.0
        # Learned: the next slow rounds run without a single timeout or retry.
        assert mesh.stats.failures == failures
        assert_same_results(mesh.run_round(tasks), reference)
        assert mesh.stats.failures == failures
        assert {s.address: s.healthy for s in mesh.node_stats()} == {only.address: True}


def test_a_slow_node_that_then_hangs_is_failed_over(faulty_node: Callable[..., FaultyNode]) -> None:
    slow, spare = faulty_node(node_id="slow", workers=4), faulty_node(node_id="spare", workers=4)
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([slow.address, spare.address], SHORT) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        slow.injector.set_config(FaultConfig(latency_ms=400))

        def served_by_slow() -> bool:
            # The first slow round times out and fails over (the node is briefly marked
            # unhealthy); once its pace is learned and a probe answered, it serves again.
            results = mesh.run_round(tasks)
            assert_same_results(results, reference)
            return {r.node for r in results} == {slow.address}

        assert wait_until(served_by_slow, timeout=20, interval=0.0)
        mesh.drain_fault_events()
        failures = mesh.stats.failures
        assert served_by_slow() and mesh.stats.failures == failures
        slow.injector.set_config(FaultConfig(hang=True))
        started = time.perf_counter()
        results = mesh.run_round(tasks)
        elapsed = time.perf_counter() - started
        assert_same_results(results, reference)
        assert {r.node for r in results} == {spare.address}
        events = mesh.drain_fault_events()
        kinds = [e.kind for e in events]
        assert kinds.count("timeout") == 4 and kinds.count("failover") == 4
        # Each timeout says how its deadline was set: the floor and the cap, by name.
        for event in (e for e in events if e.kind == "timeout"):
            assert "floor 0.25 s (timeout_seconds)" in event.detail
            assert "capped at 3600 s (MAX_DEADLINE_SECONDS)" in event.detail
        # Given up after the floor plus a few multiples of its pace, not after an hour.
        assert elapsed < 0.25 + 4 * 4 * 1.0 + 5


def test_training_through_a_slow_node_gives_the_same_losses(faulty_node: Callable[..., FaultyNode]) -> None:
    nodes = [faulty_node(node_id=f"n{i}", workers=2) for i in range(2)]
    spec = JobSpec(qubits=3, partitions=2, layers=1, epochs=3, series_length=16, seed=3)
    options = dataclasses.replace(SHORT, timeout_seconds=0.15)
    local = Trainer(spec, InProcessExecutor(), ())
    with MeshExecutor([n.address for n in nodes], options) as mesh:
        trainer = Trainer(spec, mesh, mesh.node_max_qubits())
        assert trainer.plan is not None
        mesh.set_assignment(trainer.plan.assignment)
        losses = [trainer.train_epoch()]
        for node in nodes:  # every node now takes 4x the old deadline per call
            node.injector.set_config(FaultConfig(latency_ms=600))
        losses += [trainer.train_epoch() for _ in range(2)]
        assert all(s.healthy for s in mesh.node_stats())
    expected = [local.train_epoch() for _ in range(3)]
    got = np.array([[m.train_loss, m.test_loss, m.test_r2, m.circuit_evaluations] for m in losses])
    want = np.array([[m.train_loss, m.test_loss, m.test_r2, m.circuit_evaluations] for m in expected])
    np.testing.assert_array_equal(got, want)
