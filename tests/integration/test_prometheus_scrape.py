"""A real Prometheus server (Debian's ``prometheus``) scrapes two nodes and a coordinator.

Node B injects errors and random latency; the coordinator hedges calls slower than 30 ms. After a short
distributed job, the test asks Prometheus's HTTP API (not our own endpoints) for what a
user would graph: every target up, per-RPC counts by status code (injected UNAVAILABLEs
included), latency histograms, queue wait, circuit executions and cache hits on the
nodes, injected faults, the pool's per-node calls, retries and hedges, fault events, and
the job's epochs, loss and R².
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from external_tools import require

from qpumesh.client import CoordinatorClient
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig
from qpumesh.node.faults import FaultSettings, fault_hooks
from qpumesh.node.server import RunningNode, start_node
from qpumesh.wire.fault_config import FaultConfig

EPOCHS = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def nodes() -> Iterator[list[RunningNode]]:
    started = []
    for name, faults in (
        ("node-a", FaultConfig()),
        ("node-b", FaultConfig(error_rate=0.2, latency_ms=5, jitter_ms=40, jitter_dist="exponential", seed=3)),  # noqa: E501
    ):
        hooks = fault_hooks(FaultSettings(faults=faults), node_id=name)
        config = ServerConfig(node=NodeConfig(node_id=name), host="127.0.0.1", port=0, metrics_port=0)
        started.append(start_node(config, **hooks.server_kwargs()))
    yield started
    for node in started:
        node.stop(None)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    binary = require("prometheus", "apt-get install prometheus")
    processes: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, list[int]]) -> str:
        scrape = [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports]}]}
            for job, ports in targets.items()
        ]
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": scrape}
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        port = _free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(
            subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _get(url + "/-/ready") is not None, 30, "prometheus ready", tmp_path / "prometheus.log")
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None


def _wait(condition: Any, timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def _query(url: str, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Run an instant query; return {sorted labels: value}."""
    body = _get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert body is not None, promql
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return {
        tuple(sorted(sample["metric"].items())): float(sample["value"][1])
        for sample in answer["data"]["result"]
    }


def _value(url: str, promql: str) -> float:
    result = _query(url, promql)
    return sum(result.values()) if result else math.nan


def test_prometheus_scrapes_nodes_and_coordinator(
    nodes: list[RunningNode], coordinator_server: Any, prometheus: Any
) -> None:
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    coordinator, server = coordinator_server(nodes=",".join(addresses), http_port=0, hedge_after_seconds=0.03)
    url = prometheus(
        {
            "qpumesh-node": [node.metrics.port for node in nodes if node.metrics],
            "qpumesh-coordinator": [server.http.port],
        }
    )
    spec = {"task": "pendulum", "model": "distributed", "qubits": 4, "partitions": 2, "layers": 1,
            "epochs": EPOCHS, "series_length": 24}  # fmt: skip
    with CoordinatorClient(coordinator) as client:
        job_id = client.submit(spec)
        job = client.wait(job_id, timeout=300)
    assert job.epochs_done == EPOCHS

    # Prometheus has everything once it scraped the coordinator after the last epoch.
    _wait(
        lambda: _value(url, f'qpumesh_job_epochs_done{{job_id="{job_id}"}}') == EPOCHS, 30, "the job's epochs"
    )
    _wait(lambda: len(_query(url, "up == 1")) == 3, 10, "every target up")

    handled = _query(
        url, 'sum by (instance, grpc_code) (grpc_server_handled_total{grpc_method="ShiftGradient"})'
    )
    node_a, node_b = (f"127.0.0.1:{node.metrics.port}" for node in nodes if node.metrics)
    codes = {
        (dict(labels)["instance"], dict(labels)["grpc_code"]): value for labels, value in handled.items()
    }
    assert codes[node_a, "OK"] > 0 and codes[node_b, "OK"] > 0
    assert codes[node_b, "UNAVAILABLE"] > 0  # injected errors, counted with their status
    assert (node_a, "UNAVAILABLE") not in codes
    assert _value(url, 'grpc_server_handling_seconds_count{grpc_method="ShiftGradient"}') > 0
    assert (
        _value(url, f'grpc_server_handling_seconds_sum{{instance="{node_b}",grpc_method="ShiftGradient"}}')
        > 0
    )
    assert _value(url, 'qpumesh_node_queue_seconds_count{method="ShiftGradient"}') > 0
    assert _value(url, "qpumesh_node_circuit_executions_total") > 0
    assert _value(url, 'qpumesh_node_circuit_cache_lookups_total{result="hit"}') > 0
    assert _value(url, f'qpumesh_node_injected_faults_total{{instance="{node_b}",kind="error"}}') > 0
    assert _value(url, f'qpumesh_node_injected_faults_total{{instance="{node_a}"}}') == 0
    assert _value(url, f'qpumesh_node_fault_setting{{instance="{node_b}",setting="latency_ms"}}') == 5

    # The coordinator's view of the pool and the job.
    assert _value(url, 'grpc_server_handled_total{grpc_method="SubmitJob",grpc_code="OK"}') == 1
    assert _value(url, "qpumesh_mesh_rounds_total") > 0
    calls = _query(url, "qpumesh_mesh_node_calls_total")
    assert {dict(labels)["node"] for labels in calls} == set(addresses)
    assert all(value > 0 for value in calls.values())
    assert _value(url, "qpumesh_mesh_retries_total") > 0
    assert _value(url, "qpumesh_mesh_hedges_total") > 0
    assert _value(url, f'qpumesh_mesh_fault_events_total{{node="{addresses[1]}",kind="error"}}') > 0
    assert _value(url, "sum(qpumesh_mesh_node_healthy)") == 2
    assert _value(url, f'qpumesh_mesh_node_latency_seconds{{node="{addresses[1]}",quantile="0.5"}}') >= 0.005
    assert _value(url, "qpumesh_round_seconds_count") > 0
    assert _value(url, "qpumesh_job_epochs_total") == EPOCHS
    assert math.isfinite(_value(url, f'qpumesh_job_test_r2{{job_id="{job_id}"}}'))
    assert _value(url, f'qpumesh_job_train_loss{{job_id="{job_id}"}}') > 0
    assert _value(url, 'qpumesh_jobs{state="SUCCEEDED"}') == 1
