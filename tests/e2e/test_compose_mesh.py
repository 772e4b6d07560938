"""The user story on a real Docker engine: ``docker compose up`` gives a working mesh.

A coordinator and 4 QPU node containers come up healthy; a client on the host submits a
short distributed-QLSTM training job through the published port; in the middle of the job
one node gets 150 ms of injected latency (``qpumesh fault`` inside its container) and
another is ``docker kill``-ed. The job must still finish every epoch with finite metrics,
and its results must show both faults. The job store must survive recreating the
coordinator container (named volume).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_compose import COMPOSE_FILE, HETERO_FILE, NOTES, REPLICAS, TIMINGS, Compose, Mesh

pytestmark = pytest.mark.e2e

SPEC: dict[str, Any] = {
    "name": "e2e-compose-faults",
    "task": "pendulum",
    "model": "distributed",
    # One request per part and time step: 4 parts, so that every one of the 4 nodes (the
    # slow one and the one killed among them) serves calls.
    "qubits": 5,
    "partitions": 4,
    "layers": 1,
    "epochs": 10,
    "series_length": 40,
    "seed": 0,
}
LATENCY_MS = 150
LATENCY_AFTER_EPOCH = 2
KILL_AFTER_EPOCH = 4
JOB_TIMEOUT_S = 420


@dataclass
class FaultedJob:
    """What happened to the training job run under faults."""

    job: Any
    results: Any
    slow_address: str
    killed_address: str
    killed_container: Any
    epochs_at_latency: int = -1
    epochs_at_kill: int = -1
    events: list[str] = field(default_factory=list)


def _client(mesh: Mesh) -> Any:
    from qpumesh.client import CoordinatorClient

    return CoordinatorClient(mesh.coordinator, timeout=30, tls=mesh.tls, token=mesh.token)


def _wait_for_nodes(client: Any, count: int, timeout: float = 90) -> list[Any]:
    """Poll ListNodes until ``count`` nodes are healthy; return them."""
    deadline = time.monotonic() + timeout
    nodes: list[Any] = []
    while time.monotonic() < deadline:
        nodes = [n for n in client.nodes() if n.healthy]
        if len(nodes) >= count:
            return nodes
        time.sleep(1)
    pytest.fail(f"coordinator sees {len(nodes)} healthy node(s) after {timeout:.0f}s, expected {count}")


def _exec(container: Any, *cmd: str) -> str:
    """Run ``cmd`` in ``container``; fail the test on a non-zero exit status."""
    code, output = container.exec_run(list(cmd))
    text = output.decode(errors="replace")
    assert code == 0, f"{' '.join(cmd)} in {container.name} exited {code}: {text}"
    return str(text)


def test_services_are_healthy_and_run_as_the_service_user(mesh: Mesh) -> None:
    compose = mesh.compose
    nodes = compose.containers("qpu")
    coordinators = compose.containers("coordinator")
    assert len(nodes) == REPLICAS
    assert len(coordinators) == 1
    for container in [*nodes, *coordinators]:
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "healthy", container.name
        assert container.attrs["Config"]["User"] == "qpumesh", container.name
        assert _exec(container, "id", "-u").strip() == "10001"
    # The named volume holds the coordinator's SQLite store.
    listing = _exec(coordinators[0], "ls", "-l", "/data")
    assert "jobs.db" in listing, listing

    with _client(mesh) as client:
        pool = _wait_for_nodes(client, REPLICAS)
    addresses = {compose.address(c) for c in nodes}
    assert {n.address for n in pool} == addresses
    assert all(n.max_qubits == 20 and n.backend == "batched" for n in pool)


def test_the_mesh_speaks_only_mutual_tls_and_the_coordinator_wants_a_token(mesh: Mesh) -> None:
    import grpc

    from qpumesh.client import CoordinatorClient
    from qpumesh.wire.errors import QpuMeshError
    from qpumesh.wire.tls import load_tls

    assert mesh.certs_dir is not None
    refused = [
        (CoordinatorClient(mesh.coordinator, timeout=5), grpc.StatusCode.UNAVAILABLE),  # plaintext
        (CoordinatorClient(mesh.coordinator, timeout=5, tls=load_tls(ca=mesh.certs_dir / "ca.crt")),
         grpc.StatusCode.UNAVAILABLE),  # no client certificate
        (CoordinatorClient(mesh.coordinator, timeout=5, tls=mesh.tls), grpc.StatusCode.UNAUTHENTICATED),
        (CoordinatorClient(mesh.coordinator, timeout=5, tls=mesh.tls, token="x" * 32),
         grpc.StatusCode.UNAUTHENTICATED),
    ]  # fmt: skip
    for client, code in refused:
        with client, pytest.raises(QpuMeshError) as error:
            client.nodes()
        assert error.value.code == code, error.value
    # Inside the network, a node answers the coordinator's certificate and nothing else.
    coordinator = mesh.compose.containers("coordinator")[0]
    probe = (
        "import sys; from qpumesh.client.node_client import NodeClient; "
        "from qpumesh.wire.tls import load_tls; "
        "tls = None if sys.argv[1] == 'plain' else load_tls(ca='/certs/ca.crt', server_name='qpu') "
        "if sys.argv[1] == 'ca' else load_tls('/certs/server.crt', '/certs/server.key', '/certs/ca.crt'); "
        "print(NodeClient('qpu:50051', timeout=5, tls=tls).info().node_id)"
    )
    for how in ("plain", "ca"):
        code, output = coordinator.exec_run(["python", "-c", probe, how])
        assert code != 0 and b"UNAVAILABLE" in output, output
    assert _exec(coordinator, "python", "-c", probe, "mutual").strip()


@pytest.fixture(scope="module")
def faulted_job(mesh: Mesh) -> Iterator[FaultedJob]:
    """Run the training job; inject latency on qpu-1 and kill qpu-2 mid-job."""
    from qpumesh.v1 import coordinator_pb2 as pb

    compose: Compose = mesh.compose
    nodes = compose.containers("qpu")
    assert len(nodes) == REPLICAS
    slow, victim = nodes[0], nodes[1]
    record = FaultedJob(
        job=None,
        results=None,
        slow_address=compose.address(slow),
        killed_address=compose.address(victim),
        killed_container=victim,
    )
    started = time.monotonic()
    with _client(mesh) as client:
        _wait_for_nodes(client, REPLICAS)
        job_id = client.submit(SPEC)
        for event in client.watch(job_id):
            kind = event.WhichOneof("kind")
            if kind == "fault":
                record.events.append(f"fault {event.fault.node} {event.fault.kind}: {event.fault.detail}")
            elif kind == "log":
                record.events.append(f"log {event.log}")
            elif kind == "state":
                record.events.append(f"state {pb.JobState.Name(event.state)}")
            if kind != "epoch":
                continue
            epoch = event.epoch.epoch
            record.events.append(f"epoch {epoch} train_loss {event.epoch.train_loss:.4g}")
            if epoch >= LATENCY_AFTER_EPOCH and record.epochs_at_latency < 0:
                # Runtime fault through the node's NodeAdmin service (token from its env).
                _exec(slow, "qpumesh", "fault", "127.0.0.1:50051", "--latency", f"{LATENCY_MS}ms")
                record.epochs_at_latency = epoch
            if epoch >= KILL_AFTER_EPOCH and record.epochs_at_kill < 0:
                victim.kill()  # docker kill: SIGKILL, the container is gone mid-job
                record.epochs_at_kill = epoch
        record.job = client.wait(job_id, timeout=JOB_TIMEOUT_S)
        record.results = client.results(job_id)
    TIMINGS.append(("training job under faults (10 epochs)", time.monotonic() - started))
    job = record.results.job
    NOTES.append(
        f"slow node {record.slow_address} (+{LATENCY_MS} ms after epoch {record.epochs_at_latency}), "
        f"killed node {record.killed_address} (after epoch {record.epochs_at_kill})"
    )
    kinds: dict[tuple[str, str], int] = {}
    for fault in job.faults:
        kinds[fault.node, fault.kind] = kinds.get((fault.node, fault.kind), 0) + 1
    NOTES.extend(f"  fault events {node:<22} {kind:<10} x{n}" for (node, kind), n in sorted(kinds.items()))
    NOTES.extend(
        f"  node {n.address:<22} calls {n.calls:<5} failures {n.failures:<3} "
        f"mean {n.mean_latency_ms:6.1f} ms  p95 {n.p95_latency_ms:6.1f} ms"
        for n in job.nodes
    )
    yield record


def test_job_completes_every_epoch_despite_latency_and_a_killed_node(faulted_job: FaultedJob) -> None:
    from qpumesh.v1 import coordinator_pb2 as pb

    job = faulted_job.job
    trace = "\n".join(faulted_job.events)
    assert job.state == pb.JOB_STATE_SUCCEEDED, f"{pb.JobState.Name(job.state)}: {job.error}\n{trace}"
    # The faults really happened in the middle of the job, not after it.
    assert 0 < faulted_job.epochs_at_latency < faulted_job.epochs_at_kill < SPEC["epochs"], trace
    assert job.epochs_done == SPEC["epochs"]
    assert [m.epoch for m in job.history] == list(range(1, SPEC["epochs"] + 1))
    for metrics in job.history:
        for value in (metrics.train_loss, metrics.test_loss, metrics.test_r2, metrics.wall_seconds):
            assert math.isfinite(value), metrics
        assert metrics.rounds > 0 and metrics.circuit_evaluations > 0
    results = faulted_job.results
    assert len(results.targets) == len(results.predictions) > 0
    assert all(math.isfinite(v) for v in [*results.targets, *results.predictions])

    faulted_job.killed_container.reload()
    assert faulted_job.killed_container.status == "exited"
    assert faulted_job.killed_container.attrs["State"]["ExitCode"] == 137


def test_results_show_the_killed_node_and_the_slow_node(faulted_job: FaultedJob) -> None:
    job = faulted_job.results.job
    trace = "\n".join(faulted_job.events)
    # The killed node: its calls failed and were retried elsewhere (or it was dropped).
    killed = [f for f in job.faults if f.node == faulted_job.killed_address]
    assert killed, f"no fault event names {faulted_job.killed_address}: {list(job.faults)}\n{trace}"
    assert {f.kind for f in killed} & {"error", "timeout", "unhealthy", "removed"}, killed
    assert any(f.kind == "failover" for f in job.faults), list(job.faults)
    # The slow node: its calls took the injected latency; the others did not.
    stats = {n.address: n for n in job.nodes}
    slow = stats.get(faulted_job.slow_address)
    assert slow is not None, f"{faulted_job.slow_address} not in the job's node stats: {list(stats)}"
    assert slow.p95_latency_ms >= 0.9 * LATENCY_MS, slow
    others = [n for a, n in stats.items() if a not in (faulted_job.slow_address, faulted_job.killed_address)]
    assert others and all(n.mean_latency_ms < slow.mean_latency_ms for n in others), list(stats.values())


def test_job_store_survives_recreating_the_coordinator(mesh: Mesh, faulted_job: FaultedJob) -> None:
    from qpumesh.v1 import coordinator_pb2 as pb

    compose = mesh.compose
    before = compose.containers("coordinator")[0].id
    compose.save_logs(Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e")) / "before-recreate.log")
    started = time.monotonic()
    compose.run(
        "up", "--detach", "--no-build", "--no-deps", "--force-recreate",
        "--wait", "--wait-timeout", "180", "coordinator",
        timeout=240,
    )
    TIMINGS.append(("coordinator recreated and healthy", time.monotonic() - started))
    after = compose.containers("coordinator")[0].id
    assert after != before
    job_id = faulted_job.job.id
    with _client(mesh) as client:
        job = client.get(job_id)
        assert job.state == pb.JOB_STATE_SUCCEEDED
        assert job.epochs_done == SPEC["epochs"]
        assert job_id in [j.id for j in client.list()]
        # The best checkpoint is on the volume; predicting runs its circuits on the 3 nodes left.
        _wait_for_nodes(client, REPLICAS - 1)
        predictions = client.predict(job_id, [0.1, 0.2, 0.35, 0.4, 0.38, 0.3])
    assert len(predictions) == 6 - SPEC.get("window", 4) + 1
    assert all(math.isfinite(float(p)) for p in predictions)


def test_heterogeneous_override_adds_distinct_nodes_under_the_qpu_name(
    docker_client: Any, compose_env: dict[str, str]
) -> None:
    compose = Compose("qpumesh-hetero-config", [COMPOSE_FILE, HETERO_FILE], compose_env, docker_client)
    config = json.loads(compose.run("config", "--format", "json").stdout)
    services = config["services"]
    extra = {"qpu-small", "qpu-noisy", "qpu-slow"}
    assert extra <= set(services)
    for name in extra:
        assert services[name]["networks"]["default"]["aliases"] == ["qpu"]
        assert services[name]["deploy"]["replicas"] == 1
        assert services["coordinator"]["depends_on"][name]["condition"] == "service_healthy"
    assert services["qpu-small"]["environment"]["QPUMESH_MAX_QUBITS"] == "3"
    assert float(services["qpu-noisy"]["environment"]["QPUMESH_DEPOLARIZING_1Q"]) > 0
    assert float(services["qpu-slow"]["environment"]["QPUMESH_FAULT_LATENCY_MS"]) > 0
    assert services["coordinator"]["environment"]["QPUMESH_NODES"] == "dns:qpu:50051"
