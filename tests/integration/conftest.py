"""Fixtures shared by the integration tests: real gRPC servers on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest

from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig
from qpumesh.node.server import ServiceAdder, create_server

NodeServerFactory = Callable[..., tuple[str, grpc.Server]]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the hostile-input suites sent and how it was answered (if they ran)."""
    import sys

    hostile = sys.modules.get("hostile_requests")
    for line in getattr(hostile, "SUMMARY", []):
        terminalreporter.write_line(line)


@pytest.fixture
def node_server() -> Iterator[NodeServerFactory]:
    """Start real QPU nodes on 127.0.0.1 with a free port; all are stopped after the test.

    Call it as ``address, server = node_server(backend="batched", max_qubits=6)``:
    keyword arguments are ``NodeConfig`` fields (``node_id`` defaults to "test-node"),
    plus ``workers``, ``interceptors``, ``extra_services`` and ``tls`` for the server.
    """
    servers: list[grpc.Server] = []

    def start(
        *,
        workers: int = 1,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        extra_services: Sequence[ServiceAdder] = (),
        tls: Any = None,
        **node_fields: Any,
    ) -> tuple[str, grpc.Server]:
        node_fields.setdefault("node_id", "test-node")
        node = NodeConfig(**node_fields)
        config = ServerConfig(node=node, host="127.0.0.1", port=0, workers=workers, tls=tls)
        server, port = create_server(config, interceptors=interceptors, extra_services=extra_services)
        servers.append(server)
        return f"127.0.0.1:{port}", server

    yield start
    for server in servers:
        server.stop(None)


CoordinatorFactory = Callable[..., tuple[str, Any]]


@pytest.fixture
def coordinator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorFactory]:
    """Start real coordinators on 127.0.0.1 with a free port; all are stopped after the test.

    Call it as ``address, server = coordinator_server(nodes="127.0.0.1:1,...")`` or
    ``coordinator_server(in_process=True)``: keyword arguments are
    ``CoordinatorConfig`` fields, or ``PoolOptions`` fields for its ``pool``; ``data_dir``
    defaults to a fresh temporary directory. ``server.manager`` is the coordinator's
    ``JobManager``.
    """
    import dataclasses
    from pathlib import Path

    from qpumesh.coordinator.config import CoordinatorConfig
    from qpumesh.coordinator.mesh.options import PoolOptions
    from qpumesh.coordinator.server import create_server as create_coordinator

    pool_fields = {f.name for f in dataclasses.fields(PoolOptions)}

    servers: list[Any] = []

    def start(**fields: Any) -> tuple[str, Any]:
        fields.setdefault("data_dir", tmp_path_factory.mktemp("coordinator"))
        fields["data_dir"] = Path(fields["data_dir"])
        fields.setdefault("connect_timeout_seconds", 10.0)
        pool = PoolOptions(**{name: fields.pop(name) for name in pool_fields & set(fields)})
        config = CoordinatorConfig(host="127.0.0.1", port=0, pool=pool, **fields)
        server, port = create_coordinator(config)
        servers.append(server)
        return f"127.0.0.1:{port}", server

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture(scope="session")
def mesh_certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A private CA with server and client certificates (``qpumesh certs init``), for TLS tests."""
    from qpumesh.client.certs import make_certificates

    return make_certificates(tmp_path_factory.mktemp("certs"), ["qpu"])


@pytest.fixture(scope="session")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Certificates of another CA: valid certificates the mesh must not trust."""
    from qpumesh.client.certs import make_certificates

    return make_certificates(tmp_path_factory.mktemp("other-certs"))
