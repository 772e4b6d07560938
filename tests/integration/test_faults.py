"""Fault injection on real nodes, and how the mesh executor copes with each fault."""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from faulty_mesh import TOKEN, FaultyNode, assert_same_results, make_tasks, start_faulty_node, wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.client.cli import main as qpumesh_main
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.v1 import node_admin_pb2_grpc as apb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.fault_config import ADMIN_TOKEN_METADATA, FaultConfig

FAST = PoolOptions(timeout_seconds=5.0, health_interval_seconds=0.2, connect_timeout_seconds=5.0)


@pytest.fixture
def faulty_node(node_server: Callable[..., tuple[str, grpc.Server]]) -> Callable[..., FaultyNode]:
    return functools.partial(start_faulty_node, node_server)


def _admin(address: str, method: str, request: object, token: str | None) -> object:
    with open_channel(address) as channel:
        call = getattr(apb_grpc.NodeAdminStub(channel), method)  # type: ignore[no-untyped-call]
        metadata = ((ADMIN_TOKEN_METADATA, token),) if token is not None else None
        return call(request, timeout=5, metadata=metadata)


def test_random_errors_are_retried_and_the_numbers_do_not_change(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    flaky = faulty_node(node_id="flaky", faults=FaultConfig(error_rate=0.5, seed=1))
    steady = faulty_node(node_id="steady")
    tasks = make_tasks(8)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([flaky.address, steady.address], FAST) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        for _ in range(3):
            assert_same_results(mesh.run_round(tasks), reference)
        kinds = [e.kind for e in mesh.drain_fault_events()]
    # Health probes (GetInfo) meet injected errors too; the pool counts only its task calls.
    retries = mesh.stats.retries
    assert 0 < retries <= flaky.injector.counters().injected_errors
    assert mesh.stats.failures == retries and mesh.stats.rpcs == 3 * 8 + retries
    assert flaky.work_calls() + steady.work_calls() == mesh.stats.rpcs
    assert kinds.count("error") == retries and kinds.count("failover") == retries


def test_vjp_tasks_are_retried_and_hedged_with_the_same_numbers(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    """Tasks with cotangents (gradient mode "vjp") take the same retry, failover and hedge paths."""
    flaky = faulty_node(node_id="flaky", workers=4, faults=FaultConfig(error_rate=0.5, seed=3))
    slow = faulty_node(node_id="slow", workers=4, faults=FaultConfig(latency_ms=400))
    tasks = make_tasks(6, jacobian_every=3, vjp_every=2)
    assert sum(t.cotangents is not None for t in tasks) == 2 and sum(t.jacobian for t in tasks) == 2
    reference = InProcessExecutor().run_round(tasks)
    for task, result in zip(tasks, reference, strict=True):
        assert (result.vjp is not None) == (result.expectations is None) == (task.cotangents is not None)
    options = dataclasses.replace(FAST, hedge_after_seconds=0.1)
    with MeshExecutor([flaky.address, slow.address], options) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        for _ in range(3):
            assert_same_results(mesh.run_round(tasks), reference)
        mesh.set_assignment({t.key: 1 for t in tasks})  # the slow node first: hedged on the flaky one
        assert_same_results(mesh.run_round(tasks), reference)
    assert mesh.stats.retries > 0 and mesh.stats.hedges > 0
    gradients = [m for m, _ in flaky.log.calls + slow.log.calls if m == "ShiftGradient"]
    assert len(gradients) >= 4 * 4  # 4 rounds of 2 Jacobian and 2 VJP tasks, retries and hedges on top


def test_a_single_flaky_node_is_retried_in_place(faulty_node: Callable[..., FaultyNode]) -> None:
    only = faulty_node(node_id="only", faults=FaultConfig(error_rate=0.3, seed=5))
    tasks = make_tasks(6)
    options = dataclasses.replace(FAST, max_attempts=8)
    with MeshExecutor(only.address, options) as mesh:
        for _ in range(2):
            assert_same_results(mesh.run_round(tasks), InProcessExecutor().run_round(tasks))
    assert 0 < mesh.stats.retries == mesh.stats.failures <= only.injector.counters().injected_errors
    assert mesh.stats.rpcs == only.work_calls() == 12 + mesh.stats.retries


def test_a_hung_node_times_out_fails_over_and_recovers_when_cleared(
    faulty_node: Callable[..., FaultyNode],
) -> None:
    hung, healthy = faulty_node(node_id="hung"), faulty_node(node_id="healthy")
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)
    options = dataclasses.replace(FAST, timeout_seconds=0.5)
    with MeshExecutor([hung.address, healthy.address], options) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        hung.injector.set_config(FaultConfig(hang=True))
        started = time.perf_counter()
        results = mesh.run_round(tasks)
        assert time.perf_counter() - started < 3
        assert_same_results(results, reference)
        assert {r.node for r in results} == {healthy.address}
        kinds = [e.kind for e in mesh.drain_fault_events()]
        assert kinds.count("timeout") == 4 and kinds.count("failover") == 4 and "unhealthy" in kinds
        # The health probe (GetInfo) hangs too, so the node stays out until the fault is cleared.
        time.sleep(1.0)
        assert not {s.address: s.healthy for s in mesh.node_stats()}[hung.address]
        hung.injector.set_config(FaultConfig())
        assert wait_until(lambda: any(e.kind == "recovered" for e in mesh.drain_fault_events()), timeout=5)
        assert {r.node for r in mesh.run_round(tasks)} == {hung.address}


def test_hedging_beats_a_slow_node(faulty_node: Callable[..., FaultyNode]) -> None:
    slow = faulty_node(node_id="slow", workers=4, faults=FaultConfig(latency_ms=600))
    fast = faulty_node(node_id="fast", workers=4)
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)

    def timed_round(hedge_after: float | None) -> tuple[float, MeshExecutor, list[str]]:
        options = dataclasses.replace(FAST, hedge_after_seconds=hedge_after)
        with MeshExecutor([slow.address, fast.address], options) as mesh:
            mesh.set_assignment({t.key: 0 for t in tasks})
            started = time.perf_counter()
            results = mesh.run_round(tasks)
            elapsed = time.perf_counter() - started
        assert_same_results(results, reference)
        return elapsed, mesh, [r.node for r in results]

    unhedged_time, unhedged, unhedged_nodes = timed_round(None)
    hedged_time, hedged, hedged_nodes = timed_round(0.1)
    assert unhedged_nodes == [slow.address] * 4 and unhedged.stats.hedges == 0
    assert hedged_nodes == [fast.address] * 4
    assert hedged.stats.hedges == hedged.stats.hedge_wins == 4
    hedge_events = [e for e in hedged.drain_fault_events() if e.kind == "hedge"]
    assert len(hedge_events) == 4 and all(e.node == fast.address for e in hedge_events)
    assert all(f"{fast.address} won over {slow.address}" in e.detail for e in hedge_events)
    assert unhedged_time >= 0.6 and hedged_time < unhedged_time


def test_hedge_loses_to_a_primary_that_answers_first(faulty_node: Callable[..., FaultyNode]) -> None:
    # Both nodes are slow, the primary a bit less: the hedge is sent but the primary wins.
    primary = faulty_node(node_id="primary", workers=4, faults=FaultConfig(latency_ms=250))
    other = faulty_node(node_id="other", workers=4, faults=FaultConfig(latency_ms=1500))
    tasks = make_tasks(2, jacobian_every=0)
    options = dataclasses.replace(FAST, hedge_after_seconds=0.05)
    with MeshExecutor([primary.address, other.address], options) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        results = mesh.run_round(tasks)
        assert [r.node for r in results] == [primary.address] * 2
        assert mesh.stats.hedges == 2 and mesh.stats.hedge_wins == 0
        assert {s.address: s.hedges for s in mesh.node_stats()} == {primary.address: 0, other.address: 2}


def test_a_crashing_node_is_failed_over(faulty_node: Callable[..., FaultyNode]) -> None:
    crashed: list[FaultyNode] = []
    victim = faulty_node(
        node_id="victim",
        faults=FaultConfig(crash_after_calls=4),
        on_crash=lambda: crashed[0].server.stop(None),
    )
    crashed.append(victim)
    survivor = faulty_node(node_id="survivor")
    tasks = make_tasks(4)
    reference = InProcessExecutor().run_round(tasks)
    with MeshExecutor([victim.address, survivor.address], FAST) as mesh:
        mesh.set_assignment({t.key: 0 for t in tasks})
        assert {r.node for r in mesh.run_round(tasks)} == {victim.address}  # calls 1-4
        results = mesh.run_round(tasks)  # call 5 crashes the node
        assert_same_results(results, reference)
        assert {r.node for r in results} == {survivor.address}
        assert mesh.stats.retries == 4


def test_bandwidth_delays_calls_by_their_size(faulty_node: Callable[..., FaultyNode]) -> None:
    node = faulty_node(node_id="thin", faults=FaultConfig(bandwidth_bytes_per_second=20_000))
    task = make_tasks(1, rows=200, jacobian_every=0)[0]
    request_bytes = task.values.nbytes + len(task.circuit.cirq_json)
    with MeshExecutor(node.address, FAST) as mesh:
        started = time.perf_counter()
        mesh.run_round([task])
        elapsed = time.perf_counter() - started
    assert elapsed >= request_bytes / 20_000
    assert node.injector.counters().delayed >= 1


def test_health_and_admin_are_never_faulted(faulty_node: Callable[..., FaultyNode]) -> None:
    node = faulty_node(node_id="stuck", faults=FaultConfig(hang=True, error_rate=1.0))
    with open_channel(node.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    shown = _admin(node.address, "GetFaults", apb.GetFaultsRequest(), TOKEN)
    assert isinstance(shown, apb.GetFaultsResponse)
    assert shown.faults.hang and shown.node_id == "stuck"


def test_admin_requires_the_token(faulty_node: Callable[..., FaultyNode]) -> None:
    guarded = faulty_node(node_id="guarded")
    disabled = faulty_node(node_id="disabled", token="")
    request = apb.SetFaultsRequest(faults=apb.FaultConfig(latency_ms=20))
    cases = [
        (disabled.address, TOKEN, grpc.StatusCode.FAILED_PRECONDITION, "QPUMESH_ADMIN_TOKEN"),
        (guarded.address, None, grpc.StatusCode.UNAUTHENTICATED, ADMIN_TOKEN_METADATA),
        (guarded.address, "wrong", grpc.StatusCode.PERMISSION_DENIED, "wrong admin token"),
    ]
    for address, token, code, message in cases:
        with pytest.raises(grpc.RpcError) as caught:
            _admin(address, "SetFaults", request, token)
        assert caught.value.code() == code  # type: ignore[attr-defined]
        assert message in caught.value.details()  # type: ignore[attr-defined]
    assert guarded.injector.config == FaultConfig() and disabled.injector.config == FaultConfig()

    reply = _admin(guarded.address, "SetFaults", request, TOKEN)
    assert isinstance(reply, apb.SetFaultsResponse) and reply.faults.latency_ms == 20
    assert guarded.injector.config == FaultConfig(latency_ms=20)

    with pytest.raises(grpc.RpcError) as caught:
        _admin(
            guarded.address, "SetFaults", apb.SetFaultsRequest(faults=apb.FaultConfig(error_rate=2)), TOKEN
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_fault_cli_sets_shows_and_clears(
    faulty_node: Callable[..., FaultyNode],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = faulty_node(node_id="cli")
    monkeypatch.setenv("QPUMESH_ADMIN_TOKEN", TOKEN)
    argv = ["fault", node.address, "--latency", "20ms", "--jitter", "5ms", "--jitter-dist", "exponential",
            "--bandwidth", "1MB/s", "--error-rate", "0.05"]  # fmt: skip
    assert qpumesh_main(argv) == 0
    assert node.injector.config == FaultConfig(
        latency_ms=20, jitter_ms=5, jitter_dist="exponential", bandwidth_bytes_per_second=1e6, error_rate=0.05
    )
    assert "latency 20ms, jitter 5ms (exponential)" in capsys.readouterr().out

    assert qpumesh_main(["fault", node.address, "--show"]) == 0
    out = capsys.readouterr().out
    assert "cli" in out and "error rate 0.05" in out

    assert qpumesh_main(["fault", node.address, "--clear"]) == 0
    assert node.injector.config == FaultConfig()
    assert "faults    none" in capsys.readouterr().out

    assert qpumesh_main(["fault", node.address, "--hang", "--token", "wrong"]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    assert node.injector.config == FaultConfig()
    assert qpumesh_main(["fault", node.address, "--clear", "--hang"]) == 2


@pytest.mark.slow  # a node process starts in ~3 s on an idle host, ~20 s on a loaded one
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process exit status")
def test_crash_after_ends_a_real_node_process(tmp_path: Path) -> None:
    import subprocess

    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, "-m", "qpumesh.node", "serve", "--host", "127.0.0.1", "--port", "0",
         "--port-file", str(port_file), "--node-id", "doomed", "--fault-crash-after", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert wait_until(port_file.exists, timeout=60)
        address = f"127.0.0.1:{port_file.read_text().strip()}"
        tasks = make_tasks(1, jacobian_every=0)
        with MeshExecutor(address, dataclasses.replace(FAST, max_attempts=2)) as mesh:
            mesh.run_round(tasks)
            with pytest.raises(Exception, match="UNAVAILABLE"):
                mesh.run_round(tasks)
        assert process.wait(timeout=10) == 3
        assert process.stderr is not None and b"crash_after_calls" in process.stderr.read()
    finally:
        process.kill()
        process.wait()
