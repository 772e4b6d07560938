"""The mesh on Docker Swarm: ``docker stack deploy`` of ``deploy/swarm/qpumesh-stack.yml``.

On a one-node swarm (``docker swarm init --advertise-addr 127.0.0.1``, every placement
label on the one host): 3 ``qpu-large`` tasks, 1 ``qpu-small`` task and the coordinator
come up healthy; the coordinator finds every task by DNS round robin (not a virtual IP);
every connection is mutual TLS and every coordinator call needs a bearer token, with
the certificates, keys and token file from Swarm secrets (made by
``deploy/swarm/create-secrets.sh``), and health checks pass over TLS; the admin token
arrives as a Swarm secret, not in the environment; a training job during
which a node task is ``docker kill``-ed gives exactly the losses of an undisturbed run, and
Swarm replaces the task; ``docker service scale`` is seen by the coordinator; and
``docker stack rm`` plus the volume removal leave nothing of the stack behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_compose import NOTES, TIMINGS, free_port
from e2e_swarm import LABELS, Credentials, Stack, Swarm, docker, teardown

pytestmark = pytest.mark.e2e

LARGE, SMALL = 3, 1
SPEC: dict[str, Any] = {
    "name": "e2e-swarm",
    "task": "pendulum",
    "model": "distributed",
    # One 2-qubit part per node task (3 large + 1 small): whichever task is killed, the
    # job was using it. With 2 parts the planner could leave the victim idle, and its kill
    # went unnoticed by the job (no fault on record).
    "qubits": 2 * (LARGE + SMALL),
    "partitions": LARGE + SMALL,
    "layers": 1,
    "epochs": 12,
    # Long enough that the job is still running well after the kill: at 40 points the
    # 12 epochs took under a second, and a kill after epoch 3 could land after the end.
    "series_length": 160,
    "seed": 0,
}
KILL_AFTER_EPOCH = 2
JOB_TIMEOUT_S = 600


@dataclass
class DeployedStack:
    """A deployed stack: the stack, the coordinator address on the host, the credentials."""

    stack: Stack
    swarm: Swarm
    coordinator: str
    credentials: Credentials


def _client(deployed: DeployedStack) -> Any:
    return deployed.credentials.client(deployed.coordinator, timeout=30)


def _healthy_nodes(client: Any) -> dict[str, Any]:
    return {n.address: n for n in client.nodes() if n.healthy}


def _wait_for_pool(client: Any, addresses: set[str], timeout: float) -> float:
    """Wait until the coordinator's healthy pool is exactly ``addresses``; return the wait."""
    started = time.monotonic()
    seen: set[str] = set()
    while time.monotonic() - started < timeout:
        seen = set(_healthy_nodes(client))
        if seen == addresses:
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(
        f"coordinator's healthy pool {sorted(seen)} != task addresses {sorted(addresses)} "
        f"after {timeout:.0f}s"
    )


def _task_addresses(stack: Stack) -> set[str]:
    return {stack.address(c) for short in ("qpu-large", "qpu-small") for c in stack.healthy(short)}


@pytest.fixture(scope="module")
def deployed(docker_client: Any, images: None) -> Iterator[DeployedStack]:
    """A one-node swarm with the stack deployed and healthy; everything undone afterwards."""
    name = os.environ.get("QPUMESH_E2E_STACK", "qpmswarm-e2e")
    teardown(name)  # leftovers of an interrupted run
    swarm = Swarm.ensure(name)
    swarm.label()
    # The names the coordinator checks the nodes' certificate for, and its own.
    credentials = Credentials.create(name, ("qpu-large", "qpu-small", "qpu-noisy", "coordinator"))
    env = dict(os.environ)
    env.update(
        QPUMESH_TAG=os.environ.get("QPUMESH_TAG", "e2e"),
        QPUMESH_PORT=str(free_port()),
        QPUMESH_HTTP_PORT=str(free_port()),
        QPUMESH_SECRET_PREFIX=name,
        QPUMESH_LARGE_REPLICAS=str(LARGE),
        QPUMESH_SMALL_REPLICAS=str(SMALL),
        # A call stuck on a killed task fails over after this many seconds.
        QPUMESH_RPC_TIMEOUT="10",
    )
    stack = Stack(name, env, docker_client)
    state = Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e"))
    try:
        started = time.monotonic()
        stack.deploy()
        stack.wait_healthy({"qpu-large": LARGE, "qpu-small": SMALL, "coordinator": 1}, timeout=420)
        deployed = DeployedStack(stack, swarm, f"127.0.0.1:{env['QPUMESH_PORT']}", credentials)
        with _client(deployed) as client:
            _wait_for_pool(client, _task_addresses(stack), timeout=60)
        TIMINGS.append(("swarm: stack deploy -> 4 nodes + coordinator healthy", time.monotonic() - started))
        yield deployed
    finally:
        if stack.leftovers()["services"]:
            stack.logs(state / f"{name}.log")
        if os.environ.get("QPUMESH_E2E_KEEP", "") != "1":
            teardown(name)


def test_stack_is_healthy_and_discovered_by_dns_round_robin(deployed: DeployedStack) -> None:
    stack = deployed.stack
    services = stack.config()["services"]
    for short in ("qpu-large", "qpu-small", "qpu-noisy"):
        assert services[short]["deploy"]["endpoint_mode"] == "dnsrr", short
        assert services[short]["deploy"]["placement"]["constraints"] == [
            f"node.labels.qpumesh.{short} == true"
        ]
    coordinator = services["coordinator"]
    assert coordinator["ports"] == [
        {"mode": "host", "target": 50050, "published": int(stack.env["QPUMESH_PORT"]), "protocol": "tcp"},
        {"mode": "host", "target": 8080, "published": int(stack.env["QPUMESH_HTTP_PORT"]), "protocol": "tcp"},
    ]
    assert coordinator["deploy"]["placement"]["constraints"] == ["node.labels.qpumesh.coordinator == true"]
    assert set(LABELS) <= set(deployed.swarm.node_labels())
    # No noisy task by default; every other task healthy and running as the service user.
    assert stack.containers("qpu-noisy", all_states=True) == []
    with _client(deployed) as client:
        pool = _healthy_nodes(client)
    large = {stack.address(c) for c in stack.containers("qpu-large")}
    small = {stack.address(c) for c in stack.containers("qpu-small")}
    # One pool entry per task address (dnsrr), not one virtual IP per service.
    assert set(pool) == large | small and len(pool) == LARGE + SMALL
    assert {pool[a].max_qubits for a in large} == {20}
    assert {pool[a].max_qubits for a in small} == {3}
    coordinator_container = stack.containers("coordinator")[0]
    code, out = coordinator_container.exec_run(["ls", "/data"])
    assert code == 0 and b"jobs.db" in out, out


def test_admin_token_comes_from_the_swarm_secret(deployed: DeployedStack) -> None:
    container = deployed.stack.containers("qpu-large")[0]
    env = container.attrs["Config"]["Env"]
    admin_token = deployed.credentials.admin_token
    # The value is only in the secret file, not in the container's configuration.
    assert not any(admin_token in item for item in env), env
    assert "QPUMESH_ADMIN_TOKEN_FILE=/run/secrets/qpumesh_admin_token" in env
    # `qpumesh fault` inside the task talks mutual TLS with the task's QPUMESH_TLS_* files.
    code, out = container.exec_run(["qpumesh", "fault", "127.0.0.1:50051", "--show", "--token", admin_token])
    assert code == 0, out.decode(errors="replace")
    code, out = container.exec_run(["qpumesh", "fault", "127.0.0.1:50051", "--show", "--token", "wrong"])
    assert code != 0 and b"PERMISSION_DENIED" in out, out


PROBE_COST = """
import resource, statistics, subprocess, time
walls, cpus = [], []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["python", "/usr/local/bin/qpumesh-healthcheck"], check=True, capture_output=True)
    walls.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
print(f"median of 5: {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU")
"""


def _code(call: Any) -> Any:
    """The status code a client call fails with (None: it succeeded)."""
    from qpumesh.wire.errors import QpuMeshError

    try:
        call()
    except QpuMeshError as error:
        return error.code
    return None


def test_transport_is_mutual_tls_and_calls_need_a_token(deployed: DeployedStack) -> None:
    import grpc

    from qpumesh.client import CoordinatorClient

    credentials, stack = deployed.credentials, deployed.stack
    # From the host: only a client with a certificate of the mesh's CA and a token gets in.
    with CoordinatorClient(deployed.coordinator, timeout=10, token=credentials.token) as plaintext:
        assert _code(plaintext.nodes) == grpc.StatusCode.UNAVAILABLE
    with CoordinatorClient(deployed.coordinator, timeout=10, tls=credentials.tls()) as no_token:
        assert _code(no_token.nodes) == grpc.StatusCode.UNAUTHENTICATED
    with CoordinatorClient(deployed.coordinator, timeout=10, tls=credentials.tls(), token="x" * 32) as wrong:
        assert _code(wrong.nodes) == grpc.StatusCode.UNAUTHENTICATED
    with _client(deployed) as client:
        assert len([n for n in client.nodes() if n.healthy]) == LARGE + SMALL
    # Inside the overlay network, a node answers a client holding a certificate of the CA
    # (as the coordinator does: by IP, checking the certificate for the service name) and
    # refuses a plaintext client and a TLS client without a certificate.
    coordinator = stack.containers("coordinator")[0]
    node = stack.address(stack.containers("qpu-large")[0])
    check = ["python", "/usr/local/bin/qpumesh-healthcheck", node]
    named = "QPUMESH_TLS_SERVER_NAME=qpu-large"
    no_cert = ["-u", "QPUMESH_TLS_CERT", "-u", "QPUMESH_TLS_KEY"]
    for command, answers in (
        (["env", named, *check], 0),
        (["env", *no_cert, "-u", "QPUMESH_TLS_CA", *check], 1),  # plaintext
        (["env", *no_cert, named, *check], 1),  # TLS without a client certificate
    ):
        code, out = coordinator.exec_run(command)
        assert code == answers, (command, out.decode(errors="replace"))
    # What one run of the health command costs (the Kubernetes exec probes run it too).
    code, out = coordinator.exec_run(["python", "-c", PROBE_COST])
    assert code == 0, out
    NOTES.append(f"swarm: one health check over mutual TLS inside a task: {out.decode().strip()}")
    # Keys and the token file: readable by the service user only.
    for container, paths in (
        (coordinator, ("/run/secrets/qpumesh_coordinator_key", "/run/secrets/qpumesh_auth_tokens")),
        (stack.containers("qpu-small")[0], ("/run/secrets/qpumesh_node_key",)),
    ):
        code, out = container.exec_run(["stat", "-L", "-c", "%a %u", *paths])
        assert code == 0 and out.decode().split("\n")[:-1] == ["400 10001"] * len(paths), out


def _train(client: Any, spec: dict[str, Any], on_epoch: Any = None) -> Any:
    from qpumesh.v1 import coordinator_pb2 as pb

    job_id = client.submit(spec)
    for event in client.watch(job_id):
        if event.WhichOneof("kind") == "epoch" and on_epoch is not None:
            on_epoch(event.epoch.epoch)
    job = client.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert job.state == pb.JOB_STATE_SUCCEEDED, f"{pb.JobState.Name(job.state)}: {job.error}"
    return client.results(job_id)


def test_killed_task_is_replaced_and_losses_are_identical(deployed: DeployedStack) -> None:
    stack = deployed.stack
    with _client(deployed) as client:
        started = time.monotonic()
        undisturbed = _train(client, {**SPEC, "name": "e2e-swarm-undisturbed"})
        TIMINGS.append(
            (f"swarm: training, undisturbed ({SPEC['epochs']} epochs)", time.monotonic() - started)
        )

        used = {n.address for n in undisturbed.job.nodes if n.calls > 0}
        assert used == _task_addresses(stack), list(undisturbed.job.nodes)
        victim = stack.containers("qpu-large")[0]
        victim_address = stack.address(victim)
        killed_at: list[int] = []

        def kill(epoch: int) -> None:
            if epoch >= KILL_AFTER_EPOCH and not killed_at:
                victim.kill()  # docker kill: SIGKILL, the task fails mid-job
                killed_at.append(epoch)

        started = time.monotonic()
        disturbed = _train(client, {**SPEC, "name": "e2e-swarm-killed"}, on_epoch=kill)
        TIMINGS.append(
            (f"swarm: training, a task killed ({SPEC['epochs']} epochs)", time.monotonic() - started)
        )
        assert killed_at and killed_at[0] < SPEC["epochs"], "the task was not killed during the job"

        first = [(m.train_loss, m.test_loss) for m in undisturbed.job.history]
        second = [(m.train_loss, m.test_loss) for m in disturbed.job.history]
        assert len(first) == len(second) == SPEC["epochs"]
        assert second == first  # bit for bit
        assert list(disturbed.predictions) == list(undisturbed.predictions)
        faults = [(f.node, f.kind) for f in disturbed.job.faults]
        assert any(node == victim_address for node, _ in faults), faults
        NOTES.append(
            f"swarm: killed {victim.name} ({victim_address}) after epoch {killed_at[0]}; "
            f"losses identical to the undisturbed run: {second == first}"
        )
        NOTES.extend(f"  fault event {node:<22} {kind}" for node, kind in faults)

        # Swarm replaces the task (restart_policy any); the coordinator takes it into the pool.
        started = time.monotonic()
        stack.wait_healthy({"qpu-large": LARGE}, timeout=300)
        wait = _wait_for_pool(client, _task_addresses(stack), timeout=60)
        TIMINGS.append(("swarm: killed task replaced, healthy and in the pool", time.monotonic() - started))
        NOTES.append(f"swarm: replacement in the coordinator's pool {wait:.1f} s after it was healthy")
    victim.reload()
    assert victim.attrs["State"]["ExitCode"] == 137


def test_service_scale_is_discovered(deployed: DeployedStack) -> None:
    stack = deployed.stack
    with _client(deployed) as client:
        # Start from a settled pool: a task replaced by an earlier test must be in it already.
        stack.wait_healthy({"qpu-large": LARGE}, timeout=300)
        _wait_for_pool(client, _task_addresses(stack), timeout=60)
        before = set(_healthy_nodes(client))
        started = time.monotonic()
        docker("service", "scale", "--detach", f"{stack.service('qpu-large')}={LARGE + 1}")
        stack.wait_healthy({"qpu-large": LARGE + 1}, timeout=300)
        healthy_at = time.monotonic()
        addresses = _task_addresses(stack)
        wait = _wait_for_pool(client, addresses, timeout=60)
    assert len(addresses - before) == 1
    TIMINGS.append(("swarm: service scale +1 -> new task healthy", healthy_at - started))
    TIMINGS.append(("swarm: ... -> in the coordinator's pool (DNS re-resolution)", wait))


def test_stack_rm_leaves_nothing_behind(deployed: DeployedStack) -> None:
    stack = deployed.stack
    stack.logs(Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e")) / f"{stack.name}.log")
    started = time.monotonic()
    stack.remove()
    TIMINGS.append(("swarm: stack rm + volume and secret removal", time.monotonic() - started))
    assert stack.leftovers() == {
        kind: [] for kind in ("services", "containers", "networks", "volumes", "secrets")
    }
    # And what the test did to the swarm is undone: the swarm it created is left, with its
    # docker_gwbridge; on a swarm it found, only its labels are taken back.
    teardown(stack.name)
    if deployed.swarm.owned:
        assert docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "inactive"
        assert "docker_gwbridge" not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    else:
        assert not set(LABELS) & set(deployed.swarm.node_labels())
