"""MeshExecutor against real node servers: one round per time step, same numbers, failover."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from faulty_mesh import FaultyNode, assert_same_results, make_tasks, start_faulty_node, wait_until

from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.targets import resolve_targets
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig
from qpumesh.node.server import create_server
from qpumesh.wire.errors import MeshError
from qpumesh.wire.fault_config import FaultConfig

FAST = PoolOptions(timeout_seconds=5.0, health_interval_seconds=0.2, connect_timeout_seconds=5.0)


@pytest.fixture
def faulty_node(node_server: Callable[..., tuple[str, grpc.Server]]) -> Callable[..., FaultyNode]:
    return functools.partial(start_faulty_node, node_server)


@pytest.fixture
def restarted() -> Iterator[list[grpc.Server]]:
    """Servers a test starts itself (on a fixed port); stopped afterwards."""
    servers: list[grpc.Server] = []
    yield servers
    for server in servers:
        server.stop(None)


def test_a_round_is_one_concurrent_call_per_task_with_the_in_process_numbers(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    nodes = [faulty_node(node_id=f"n{i}") for i in range(2)]
    tasks = make_tasks(8, jacobian_every=3)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([n.address for n in nodes], FAST) as mesh:
        assert mesh.node_max_qubits() == [20, 20]
        mesh.set_assignment({t.key: i % 2 for i, t in enumerate(tasks)})
        first = mesh.run_round(tasks)
        second = mesh.run_round(tasks)
        stats = mesh.stats.snapshot()
    assert_same_results(first, reference)
    assert_same_results(second, reference)
    # Routed as planned, one RPC per task per round, nothing retried.
    assert [r.node for r in first] == [nodes[i % 2].address for i in range(8)]
    assert sum(n.work_calls() for n in nodes) == 16
    assert stats["rounds"] == 2 and stats["tasks"] == 16 and stats["rpcs"] == 16
    assert stats["retries"] == stats["failures"] == stats["hedges"] == 0
    # Circuit JSON travels once per node; afterwards the hash alone.
    for node in nodes:
        sent_json = [with_json for _, with_json in node.log.calls]
        assert sent_json == [True] * 4 + [False] * 4
        assert {method for method, _ in node.log.calls} == {"Evaluate", "ShiftGradient"}


def test_the_tasks_of_a_round_run_concurrently(faulty_node: Callable[..., FaultyNode]) -> None:
    nodes = [faulty_node(node_id=f"n{i}", workers=4, faults=FaultConfig(latency_ms=300)) for i in range(2)]
    tasks = make_tasks(8, jacobian_every=0)
    with MeshExecutor([n.address for n in nodes], FAST) as mesh:
        mesh.set_assignment({t.key: i % 2 for i, t in enumerate(tasks)})
        mesh.run_round(tasks)  # warm-up: compile the circuits on the nodes
        started = time.perf_counter()
        mesh.run_round(tasks)
        elapsed = time.perf_counter() - started
    # 8 calls of >= 300 ms each: sequential would take >= 2.4 s; one concurrent round ~0.3 s.
    assert 0.3 <= elapsed < 1.2


def test_a_stopped_node_fails_over_then_recovers(
    faulty_node: Callable[..., FaultyNode], restarted: list[grpc.Server]
) -> None:
    a, b = faulty_node(node_id="a"), faulty_node(node_id="b")
    tasks = make_tasks(8)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([a.address, b.address], FAST) as mesh:
        assert mesh.node_max_qubits() == [20, 20]
        mesh.set_assignment({t.key: i % 2 for i, t in enumerate(tasks)})
        assert_same_results(mesh.run_round(tasks), reference)

        a.server.stop(None).wait()
        results = mesh.run_round(tasks)
        assert_same_results(results, reference)
        assert {r.node for r in results} == {b.address}
        assert mesh.stats.retries == 4  # a's four tasks, each once
        events = mesh.drain_fault_events()
        kinds = [e.kind for e in events]
        assert kinds.count("error") == 4 and kinds.count("failover") == 4 and "unhealthy" in kinds
        assert all(e.node == a.address for e in events if e.kind in ("error", "unhealthy"))
        assert all(e.node == b.address for e in events if e.kind == "failover")
        status = {s.address: s for s in mesh.node_stats()}
        assert not status[a.address].healthy and status[a.address].failures == 4
        assert status[b.address].healthy and status[b.address].retries == 4

        # While a is down it is skipped: no more failures or retries.
        rpcs = mesh.stats.rpcs
        assert_same_results(mesh.run_round(tasks), reference)
        assert mesh.stats.rpcs == rpcs + 8 and mesh.stats.retries == 4

        # a comes back on the same port: the health check notices, routing returns to plan,
        # and the circuits are sent again (a restarted node has an empty cache).
        config = ServerConfig(node=NodeConfig(node_id="a"), host="127.0.0.1", port=a.port)
        server, _ = create_server(config)
        restarted.append(server)
        assert wait_until(lambda: any(e.kind == "recovered" for e in mesh.drain_fault_events()), timeout=8)
        results = mesh.run_round(tasks)
        assert_same_results(results, reference)
        assert [r.node for r in results] == [(a, b)[i % 2].address for i in range(8)]
        assert mesh.stats.failures == 4


def test_a_different_node_on_a_known_address_starts_with_fresh_counters(
    faulty_node: Callable[..., FaultyNode], restarted: list[grpc.Server]
) -> None:
    a, b = faulty_node(node_id="old"), faulty_node(node_id="b")
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([a.address, b.address], FAST) as mesh:
        mesh.node_max_qubits()
        mesh.set_assignment({t.key: 0 for t in tasks})
        mesh.run_round(tasks)
        assert {s.address: s.calls for s in mesh.node_stats()}[a.address] == 4

        # A new QPU (another node id) comes up at the same address, as a new container
        # reusing a removed container's IP would.
        a.server.stop(None).wait()
        config = ServerConfig(node=NodeConfig(node_id="new"), host="127.0.0.1", port=a.port)
        server, _ = create_server(config)
        restarted.append(server)
        assert wait_until(
            lambda: {s.address: s.node_id for s in mesh.node_stats()}[a.address] == "new", timeout=8
        )
        events = mesh.drain_fault_events()
        assert any(e.kind == "replaced" and e.node == a.address and "'new'" in e.detail for e in events)
        status = {s.address: s for s in mesh.node_stats()}[a.address]
        assert (status.calls, status.failures, status.retries, status.mean_latency_ms) == (0, 0, 0, 0.0)
        # It is used again, and gets the circuits' JSON anew (its cache is empty).
        assert_same_results(mesh.run_round(tasks), reference)


def test_failover_only_goes_to_nodes_wide_enough(faulty_node: Callable[..., FaultyNode]) -> None:
    wide, narrow, spare = (
        faulty_node(node_id="wide", max_qubits=5),
        faulty_node(node_id="narrow", max_qubits=3),
        faulty_node(node_id="spare", max_qubits=5),
    )
    tasks = make_tasks(4, qubits=4)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([wide.address, narrow.address, spare.address], FAST) as mesh:
        assert mesh.node_max_qubits() == [5, 3, 5]
        mesh.set_assignment({t.key: 0 for t in tasks})
        wide.server.stop(None).wait()
        results = mesh.run_round(tasks)
        assert_same_results(results, reference)
        assert {r.node for r in results} == {spare.address}
        assert narrow.work_calls() == 0

        with pytest.raises(MeshError) as caught:
            mesh.run_round(make_tasks(1, qubits=6))
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "6-qubit" in caught.value.details and "largest node: 5 qubits" in caught.value.details


def test_invalid_argument_is_raised_at_once_not_retried(faulty_node: Callable[..., FaultyNode]) -> None:
    a, b = faulty_node(node_id="a"), faulty_node(node_id="b")
    good = make_tasks(1)[0]
    bad = dataclasses.replace(good, symbols=good.symbols[:-1], values=np.zeros((2, len(good.symbols) - 1)))
    with MeshExecutor([a.address, b.address], FAST) as mesh:
        mesh.node_max_qubits()
        mesh.set_assignment({good.key: 0})
        with pytest.raises(MeshError) as caught:
            mesh.run_round([bad])
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.node == a.address
        assert a.address in str(caught.value) and "symbol" in caught.value.details
        assert mesh.stats.retries == 0 and mesh.stats.rpcs == 1
        assert a.work_calls() == 1 and b.work_calls() == 0
        # The node stays in service.
        assert {s.address: s.healthy for s in mesh.node_stats()} == {a.address: True, b.address: True}


def test_no_reachable_node_is_a_clear_error() -> None:
    options = dataclasses.replace(FAST, connect_timeout_seconds=0.5)
    with MeshExecutor("127.0.0.1:1", options) as mesh:
        started = time.perf_counter()
        with pytest.raises(MeshError) as caught:
            mesh.node_max_qubits()
        assert time.perf_counter() - started < 3
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "no QPU node answered" in caught.value.details and "127.0.0.1:1" in caught.value.details


def test_dns_targets_resolve_to_every_address(faulty_node: Callable[..., FaultyNode]) -> None:
    node = faulty_node(node_id="dns")
    assert f"127.0.0.1:{node.port}" in resolve_targets([f"dns:localhost:{node.port}"])
    assert resolve_targets(["dns:no-such-host.invalid:1"]) == []
    tasks = make_tasks(2)
    with MeshExecutor(f"dns:localhost:{node.port}", FAST) as mesh:
        assert 20 in mesh.node_max_qubits()
        assert_same_results(mesh.run_round(tasks), InProcessExecutor().run_round(tasks))


def test_node_stats_report_counters_and_latency(faulty_node: Callable[..., FaultyNode]) -> None:
    node = faulty_node(node_id="stats", faults=FaultConfig(latency_ms=50))
    with MeshExecutor(node.address, FAST) as mesh:
        mesh.node_max_qubits()
        for _ in range(3):
            mesh.run_round(make_tasks(2, jacobian_every=0))
        (status,) = mesh.node_stats()
    assert (status.node_id, status.backend, status.max_qubits, status.healthy) == (
        "stats",
        "batched",
        20,
        True,
    )
    assert status.calls == 6 and status.failures == 0 and status.in_flight == 0
    assert 50 <= status.p50_latency_ms <= status.p95_latency_ms
    assert status.mean_latency_ms >= 50
    assert status.address == node.address


def test_bad_node_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="no QPU nodes"):
        MeshExecutor(" , ")
    with pytest.raises(ValueError, match="has no port"):
        MeshExecutor("localhost")
    with pytest.raises(ValueError, match="max_attempts"):
        PoolOptions(max_attempts=0)


def test_close_ends_a_round_in_flight_and_keeps_the_last_stats(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    import threading

    node = faulty_node(node_id="slow", faults=FaultConfig(latency_ms=3000))
    mesh = MeshExecutor(node.address, FAST)
    mesh.node_max_qubits()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            mesh.run_round(make_tasks(1, jacobian_every=0))
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert wait_until(lambda: mesh.node_stats()[0].in_flight == 1)
    started = time.perf_counter()
    mesh.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and time.perf_counter() - started < 3
    assert len(errors) == 1 and isinstance(errors[0], MeshError)
    assert errors[0].code == grpc.StatusCode.CANCELLED
    (status,) = mesh.node_stats()
    assert status.address == node.address and status.in_flight == 1
    with pytest.raises(RuntimeError, match="closed"):
        mesh.run_round(make_tasks(1))


def test_nodes_that_are_down_are_left_out_of_the_plan(faulty_node: Callable[..., FaultyNode]) -> None:
    live = faulty_node(node_id="live", max_qubits=7)
    with MeshExecutor([live.address, "127.0.0.1:1"], FAST) as mesh:
        assert mesh.node_max_qubits() == [7]  # after a short grace for slow starters
        started = time.perf_counter()
        assert mesh.node_max_qubits() == [7]  # no grace once the mesh is known
        assert time.perf_counter() - started < 1.0
        with pytest.raises(ValueError, match="the pool has 1 node"):
            mesh.set_assignment({"g/0": 1})
        assert {s.address: s.healthy for s in mesh.node_stats()} == {live.address: True, "127.0.0.1:1": False}


def test_dns_targets_follow_scaling(
    faulty_node: Callable[..., FaultyNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `docker compose --scale` changes the A records of the service name; emulate the resolver.
    from qpumesh.coordinator.mesh import membership

    a, b = faulty_node(node_id="a"), faulty_node(node_id="b")
    records = {"dns:qpu-node:50051": [a.address]}
    def resolve(targets: list[str]) -> dict[str, str]:
        return dict.fromkeys(records[targets[0]], "qpu-node")

    monkeypatch.setattr(membership, "resolve_named", resolve)
    tasks = make_tasks(4, jacobian_every=0)
    options = dataclasses.replace(FAST, resolve_interval_seconds=0.1)
    with MeshExecutor("dns:qpu-node:50051", options) as mesh:
        assert mesh.node_max_qubits() == [20]
        assert {r.node for r in mesh.run_round(tasks)} == {a.address}

        records["dns:qpu-node:50051"] = [a.address, b.address]  # scaled up
        assert wait_until(
            lambda: {s.address for s in mesh.node_stats() if s.healthy} == {a.address, b.address}
        )
        assert {r.node for r in mesh.run_round(tasks)} == {a.address, b.address}  # least-loaded spreads

        records["dns:qpu-node:50051"] = [b.address]  # scaled down
        assert wait_until(lambda: [s.address for s in mesh.node_stats()] == [b.address])
        assert {r.node for r in mesh.run_round(tasks)} == {b.address}
        kinds = [(e.kind, e.node) for e in mesh.drain_fault_events()]
        assert ("joined", b.address) in kinds and ("removed", a.address) in kinds
        assert mesh.stats.failures == 0


def test_a_node_stopped_during_a_round_fails_over(faulty_node: Callable[..., FaultyNode]) -> None:
    import threading

    a = faulty_node(node_id="a", workers=4, faults=FaultConfig(latency_ms=1000))
    b = faulty_node(node_id="b", workers=4)
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([a.address, b.address], FAST) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(mesh.run_round(tasks)))
        worker.start()
        assert wait_until(lambda: a.injector.counters().work_calls == 4)  # all four calls held by a
        a.server.stop(None)  # kill the node with the calls in flight
        worker.join(timeout=10)
        assert not worker.is_alive() and len(results) == 1
        assert_same_results(results[0], reference)  # type: ignore[arg-type]
        assert {r.node for r in results[0]} == {b.address}  # type: ignore[attr-defined]
        assert mesh.stats.retries == 4
        assert {e.kind for e in mesh.drain_fault_events()} >= {"error", "failover", "unhealthy"}


def test_closing_while_rounds_are_submitted_leaves_no_caller_waiting(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    import threading

    node = faulty_node(node_id="busy", faults=FaultConfig(latency_ms=5))
    mesh = MeshExecutor(node.address, FAST)
    mesh.node_max_qubits()
    outcomes: list[str] = []

    def submit() -> None:
        while True:
            try:
                mesh.run_round(make_tasks(2, jacobian_every=0))
            except MeshError as error:
                outcomes.append(error.code.name)
                return
            except RuntimeError as error:
                outcomes.append(str(error))
                return

    workers = [threading.Thread(target=submit) for _ in range(3)]
    for worker in workers:
        worker.start()
    assert wait_until(lambda: mesh.stats.rounds >= 3)
    mesh.close()
    for worker in workers:
        worker.join(timeout=10)
    assert not any(worker.is_alive() for worker in workers)
    assert len(outcomes) == 3
    assert all(o == "CANCELLED" or "closed" in o for o in outcomes), outcomes
