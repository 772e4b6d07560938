"""TLS and mutual TLS on real servers: node and coordinator, Python clients, the mesh, the CLI.

Defect 3 of issue 9 (part): every server used ``add_insecure_port`` only, and anyone
who could reach a node could use it (and guess its admin token). With ``--tls-ca`` a
node now admits only clients holding a certificate its CA signed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from faulty_mesh import TOKEN, FaultyNode, assert_same_results, make_tasks, start_faulty_node

from qpumesh.client.cli import main
from qpumesh.client.coordinator_client import CoordinatorClient
from qpumesh.client.node_client import NodeClient
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.errors import QpuMeshError
from qpumesh.wire.tls import load_tls

FAST = PoolOptions(timeout_seconds=5.0, health_interval_seconds=0.2, connect_timeout_seconds=5.0)


def _server_tls(certs: Any) -> Any:
    return load_tls(certs.server_cert, certs.server_key, certs.ca)


def _client_tls(certs: Any, **kwargs: Any) -> Any:
    return load_tls(certs.client_cert, certs.client_key, certs.ca, **kwargs)


def _refused(call: Callable[[], object]) -> QpuMeshError:
    with pytest.raises(QpuMeshError) as info:
        call()
    return info.value


def test_a_mutual_tls_node_serves_only_clients_with_a_certificate_from_its_ca(
    node_server: Callable[..., tuple[str, grpc.Server]], mesh_certs: Any, other_certs: Any
) -> None:
    address, _ = node_server(node_id="secure", tls=_server_tls(mesh_certs))
    with NodeClient(address, timeout=5, tls=_client_tls(mesh_certs)) as client:
        assert client.info().node_id == "secure"
    # By host name too: the certificate is for localhost and 127.0.0.1.
    port = address.rsplit(":", 1)[1]
    with NodeClient(f"localhost:{port}", timeout=5, tls=_client_tls(mesh_certs)) as client:
        assert client.info().node_id == "secure"
    refused = [
        None,  # plaintext
        load_tls(ca=mesh_certs.ca),  # TLS, but no client certificate
        load_tls(other_certs.client_cert, other_certs.client_key, mesh_certs.ca),  # a stranger's certificate
        _client_tls(other_certs),  # a CA that did not sign the node's certificate
    ]
    for tls in refused:
        with NodeClient(address, timeout=3, tls=tls) as client:
            assert _refused(client.info).code == grpc.StatusCode.UNAVAILABLE


def test_the_server_name_is_checked(
    node_server: Callable[..., tuple[str, grpc.Server]], mesh_certs: Any
) -> None:
    address, _ = node_server(node_id="named", tls=_server_tls(mesh_certs))
    with NodeClient(address, timeout=3, tls=_client_tls(mesh_certs, server_name="qpu")) as client:
        assert client.info().node_id == "named"  # the certificate is for "qpu" too
    with NodeClient(address, timeout=3, tls=_client_tls(mesh_certs, server_name="evil.example")) as client:
        assert _refused(client.info).code == grpc.StatusCode.UNAVAILABLE


def test_the_mesh_runs_rounds_over_mutual_tls_with_the_same_numbers(
    node_server: Callable[..., tuple[str, grpc.Server]], mesh_certs: Any
) -> None:
    faulty = functools.partial(start_faulty_node, node_server, tls=_server_tls(mesh_certs))
    nodes: list[FaultyNode] = [faulty(node_id="a"), faulty(node_id="b")]
    tasks = make_tasks(6)
    reference = InProcessExecutor().run_round(tasks)
    # The coordinator presents the server certificate (it is valid for client auth too).
    with MeshExecutor([n.address for n in nodes], FAST, tls=_server_tls(mesh_certs)) as mesh:
        assert mesh.node_max_qubits() == [20, 20]
        assert_same_results(mesh.run_round(tasks), reference)
    # Without TLS the same nodes answer nothing.
    with MeshExecutor([n.address for n in nodes], FAST) as plain:
        assert all(not s.healthy for s in plain.node_stats())
        with pytest.raises(QpuMeshError):
            plain.node_max_qubits()


def test_dns_targets_check_the_service_name_in_the_node_certificate(
    node_server: Callable[..., tuple[str, grpc.Server]], mesh_certs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qpumesh.coordinator.mesh import targets

    node = start_faulty_node(node_server, node_id="dns", tls=_server_tls(mesh_certs))
    port = node.address.rsplit(":", 1)[1]
    # "qpu" resolves to 127.0.0.1 here (as a compose service name resolves to replica IPs).
    real = targets.socket.getaddrinfo
    monkeypatch.setattr(
        targets.socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.1" if host == "qpu" else host, *a, **k),
    )
    with MeshExecutor(f"dns:qpu:{port}", FAST, tls=_server_tls(mesh_certs)) as mesh:
        assert mesh.node_max_qubits() == [20]  # dialled by IP, checked as "qpu"


def test_a_tls_coordinator_with_its_python_client_and_the_cli(
    coordinator_server: Any,
    mesh_certs: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address, _ = coordinator_server(in_process=True, tls=_server_tls(mesh_certs))
    with CoordinatorClient(address, timeout=5, tls=_client_tls(mesh_certs)) as client:
        job_id = client.submit({"model": "classical", "epochs": 1, "series_length": 40})
        assert client.wait(job_id, timeout=60).state == pb.JOB_STATE_SUCCEEDED
    with CoordinatorClient(address, timeout=3) as plain:
        assert _refused(plain.nodes).code == grpc.StatusCode.UNAVAILABLE
    flags = ["--tls-ca", str(mesh_certs.ca), "--tls-cert", str(mesh_certs.client_cert)]
    assert main(["jobs", "--coordinator", address, *flags, "--tls-key", str(mesh_certs.client_key)]) == 0
    assert job_id in capsys.readouterr().out
    # The same from QPUMESH_TLS_* variables; a half-given pair is a usage error naming the flag.
    monkeypatch.setenv("QPUMESH_TLS_CA", str(mesh_certs.ca))
    monkeypatch.setenv("QPUMESH_TLS_CERT", str(mesh_certs.client_cert))
    monkeypatch.setenv("QPUMESH_TLS_KEY", str(mesh_certs.client_key))
    assert main(["jobs", "--coordinator", address]) == 0
    monkeypatch.delenv("QPUMESH_TLS_KEY")
    assert main(["jobs", "--coordinator", address]) == 2
    assert "--tls-cert (QPUMESH_TLS_CERT) needs --tls-key (QPUMESH_TLS_KEY)" in capsys.readouterr().err
    monkeypatch.delenv("QPUMESH_TLS_CA")
    monkeypatch.delenv("QPUMESH_TLS_CERT")
    assert main(["jobs", "--coordinator", address, "--timeout", "3"]) == 1
    assert "give --tls-ca" in capsys.readouterr().err  # the hint for a TLS server reached in plaintext


def test_client_certificates_can_be_optional_on_the_coordinator(
    coordinator_server: Any, mesh_certs: Any
) -> None:
    tls = load_tls(mesh_certs.server_cert, mesh_certs.server_key, mesh_certs.ca, client_auth="optional")
    address, _ = coordinator_server(in_process=True, tls=tls)
    with CoordinatorClient(address, timeout=5, tls=load_tls(ca=mesh_certs.ca)) as client:
        assert client.list() == []


def test_fault_cli_reaches_a_mutual_tls_node(
    node_server: Callable[..., tuple[str, grpc.Server]], mesh_certs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    node = start_faulty_node(node_server, node_id="admin", tls=_server_tls(mesh_certs))
    flags = ["--tls-ca", str(mesh_certs.ca), "--tls-cert", str(mesh_certs.client_cert)]
    flags += ["--tls-key", str(mesh_certs.client_key), "--token", TOKEN]
    assert main(["fault", node.address, "--latency", "5ms", *flags]) == 0
    assert node.injector.config.latency_ms == 5
    assert main(["fault", node.address, "--show", "--token", TOKEN, "--timeout", "3"]) == 1
    assert main(["node", "info", node.address, *flags[:6]]) == 0
    assert "admin" in capsys.readouterr().out
