"""Node discovery against a Kubernetes headless Service's DNS answers, through the real resolver.

In a pod, the coordinator's ``QPUMESH_NODES=dns:qpu:50051`` goes through glibc: the short
name is expanded with the pod's search list (``qpumesh.svc.cluster.local`` first, with
``ndots:5``), and the cluster DNS answers one A record per ready node pod, in rotating
order, changing as pods come and go. This test builds exactly that, without a cluster:
in a private network and mount namespace (``unshare``), a DNS server on 127.0.0.1:53
(``headless_dns``), a pod-like ``/etc/resolv.conf`` bind-mounted over the real one, and
real QPU nodes on 127.0.0.2-5 (every loopback address is local), all on port 50051. The
mesh must follow the answers: the initial pods, a scale-up, a pod gone, reordered
answers that change nothing, and the same numbers as the in-process engine throughout.

The outer test re-runs this file's inner test in the namespace; without the privileges
for ``unshare`` (an unprivileged container) it is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

INNER = "QPUMESH_HEADLESS_DNS_NAMESPACE"
SERVICE = "qpu.qpumesh.svc.cluster.local"
PORT = 50051
RESOLV_CONF = """\
nameserver 127.0.0.1
search qpumesh.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:1 attempts:2
"""


def test_discovery_follows_a_headless_service_through_the_resolver(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(RESOLV_CONF)
    script = (
        f'mount --bind "{resolv}" /etc/resolv.conf && ip link set lo up && '
        f'exec "{sys.executable}" -m pytest -q -p no:cacheprovider -o addopts="" '
        f'"{__file__}::test_inner_headless_service_discovery"'
    )
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--net", "--mount", "true"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    proc = subprocess.run(
        [unshare, "--user", "--map-root-user", "--net", "--mount", "sh", "-c", script],
        env={**os.environ, INNER: "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-5000:] + proc.stderr[-3000:]


@pytest.fixture
def pods() -> Iterator[dict[str, str]]:
    """Real nodes on 127.0.0.2-5, port 50051: ip -> node id (only inside the namespace)."""
    from qpumesh.node.config import ServerConfig
    from qpumesh.node.core import NodeConfig
    from qpumesh.node.server import create_server

    servers = []
    ids = {}
    for index in range(2, 6):
        ip = f"127.0.0.{index}"
        config = ServerConfig(node=NodeConfig(node_id=f"pod-{index}"), host=ip, port=PORT, workers=2)
        server, _ = create_server(config)
        servers.append(server)
        ids[ip] = f"pod-{index}"
    yield ids
    for server in servers:
        server.stop(None)


@pytest.mark.skipif(os.environ.get(INNER) != "1", reason="run by the test above, inside its namespace")
def test_inner_headless_service_discovery(pods: dict[str, str]) -> None:
    from faulty_mesh import assert_same_results, make_tasks, wait_until
    from headless_dns import HeadlessServiceDNS

    from qpumesh.coordinator.mesh.executor import MeshExecutor
    from qpumesh.coordinator.mesh.in_process import InProcessExecutor
    from qpumesh.coordinator.mesh.options import PoolOptions
    from qpumesh.coordinator.mesh.targets import resolve_targets

    dns = HeadlessServiceDNS()
    dns.start()
    try:
        ready = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        dns.set(SERVICE, ready)
        # The short name, as in the coordinator's pod: expanded by the search list.
        assert sorted(resolve_targets([f"dns:qpu:{PORT}"])) == [f"{ip}:{PORT}" for ip in ready]
        assert (f"{SERVICE}.", "A") in dns.queries

        options = PoolOptions(
            timeout_seconds=5.0, health_interval_seconds=0.2, connect_timeout_seconds=10.0,
            resolve_interval_seconds=0.2,
        )  # fmt: skip
        tasks = make_tasks(6, jacobian_every=2)
        reference = InProcessExecutor().run_round(tasks)

        def healthy(mesh: MeshExecutor) -> set[str]:
            return {s.address for s in mesh.node_stats() if s.healthy}

        with MeshExecutor(f"dns:qpu:{PORT}", options) as mesh:
            assert wait_until(lambda: healthy(mesh) == {f"{ip}:{PORT}" for ip in ready})
            assert_same_results(mesh.run_round(tasks), reference)

            dns.set(SERVICE, [*ready, "127.0.0.5"])  # scaled up: a fourth pod became ready
            assert wait_until(lambda: healthy(mesh) == {f"127.0.0.{i}:{PORT}" for i in (2, 3, 4, 5)})
            assert_same_results(mesh.run_round(tasks), reference)

            dns.set(SERVICE, ["127.0.0.5", "127.0.0.4", "127.0.0.3"])  # pod .2 gone (or unready)
            assert wait_until(lambda: [s.address for s in mesh.node_stats()] != [] and all(
                s.address != f"127.0.0.2:{PORT}" for s in mesh.node_stats()
            ))  # fmt: skip
            results = mesh.run_round(tasks)
            assert_same_results(results, reference)
            assert f"127.0.0.2:{PORT}" not in {r.node for r in results}

            # Many more answers, each in another order (rotation): nothing joins or leaves.
            before = [(e.kind, e.node) for e in mesh.drain_fault_events()]
            queries = len(dns.queries)
            assert wait_until(lambda: len(dns.queries) >= queries + 10)
            after = [(e.kind, e.node) for e in mesh.drain_fault_events()]
        assert ("joined", f"127.0.0.5:{PORT}") in before
        assert ("removed", f"127.0.0.2:{PORT}") in before
        assert after == []
        assert {name for name, _ in dns.queries} >= {f"{SERVICE}."}
    finally:
        dns.stop()
