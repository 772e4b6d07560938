"""The compose mesh seen from outside: the dashboard, /metrics and the ``observability`` profile.

``docker compose --profile observability up`` with 2 nodes: the coordinator publishes its
dashboard and ``/metrics`` on ``QPUMESH_HTTP_PORT``; Prometheus (Debian's package on the
images' base, built by run_e2e.sh) finds every ``qpu`` replica by DNS and scrapes it and
the coordinator. A short job trains; Prometheus's HTTP API must then report both nodes and
the coordinator up, the nodes' ShiftGradient calls and the job's epochs.

The mesh runs as deployed (docs/security.md): mutual TLS and bearer tokens. The dashboard
is HTTPS with the mesh's certificate and wants a token; Prometheus scrapes the nodes with
the client certificate and the coordinator with a ``metrics`` token
(``QPUMESH_SCRAPE_TOKEN_FILE``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_compose import COMPOSE_FILE, TIMINGS, Compose, free_port

pytestmark = pytest.mark.e2e

NODES = 2
EPOCHS = 2


def _get(url: str, token: str = "", context: ssl.SSLContext | None = None) -> bytes | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return bytes(response.read())
    except OSError:
        return None


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    body = _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    if body is None:
        return []
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def observed(docker_client: Any, compose_env: dict[str, str], images: None) -> Iterator[dict[str, str]]:
    tag = compose_env["QPUMESH_TAG"]
    try:
        docker_client.images.get(f"qpumesh-prometheus:{tag}")
    except Exception:
        skipped = Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e")) / "prometheus-skipped"
        reason = skipped.read_text().strip() if skipped.exists() else "run bash tests/e2e/run_e2e.sh"
        pytest.skip(f"qpumesh-prometheus:{tag} not built: {reason}")
    env = dict(compose_env)
    state = Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e"))
    admin, scrape = secrets.token_hex(24), secrets.token_hex(24)
    tokens, scrape_file = state / "tokens-obs", state / "scrape-token-obs"
    tokens.write_text(
        "".join(f"sha256:{hashlib.sha256(t.encode()).hexdigest()} {who}\n"
                for t, who in ((admin, "e2e admin"), (scrape, "prometheus metrics")))
    )  # fmt: skip
    scrape_file.write_text(scrape + "\n")
    for path in (tokens, scrape_file):
        path.chmod(0o644)  # read by the containers' uid 10001
    env.update(
        QPUMESH_AUTH_TOKENS_FILE=str(tokens),
        QPUMESH_SCRAPE_TOKEN_FILE=str(scrape_file),
        QPUMESH_PORT=str(free_port()),
        QPUMESH_HTTP_PORT=str(free_port()),
        QPUMESH_PROMETHEUS_PORT=str(free_port()),
        COMPOSE_PROFILES="observability",  # `down` removes the profile's service too
    )
    compose = Compose(
        project=os.environ.get("COMPOSE_PROJECT_NAME", "qpumesh-e2e") + "-obs",
        files=[COMPOSE_FILE],
        env=env,
        docker=docker_client,
    )
    compose.down()
    started = time.monotonic()
    try:
        compose.run(
            "up", "--detach", "--no-build", "--scale", f"qpu={NODES}", "--wait", "--wait-timeout", "300",
            timeout=360,
        )  # fmt: skip
        TIMINGS.append(("compose up with the observability profile (2 nodes)", time.monotonic() - started))
        certs = state / f"certs-{compose.project}"
        shutil.rmtree(certs, ignore_errors=True)
        compose.run("cp", "certs:/certs", str(certs), timeout=60)
        yield {
            "coordinator": f"127.0.0.1:{env['QPUMESH_PORT']}",
            "dashboard": f"https://127.0.0.1:{env['QPUMESH_HTTP_PORT']}",
            "prometheus": f"http://127.0.0.1:{env['QPUMESH_PROMETHEUS_PORT']}",
            "token": admin,
            "certs": str(certs),
        }
    finally:
        compose.save_logs(state / f"{compose.project}.log")
        if os.environ.get("QPUMESH_E2E_KEEP", "") != "1":
            compose.down()


def test_dashboard_metrics_and_prometheus_on_the_compose_mesh(observed: dict[str, str]) -> None:
    from qpumesh.client import CoordinatorClient
    from qpumesh.wire.tls import load_tls

    certs, token = Path(observed["certs"]), observed["token"]
    https = ssl.create_default_context(cafile=str(certs / "ca.crt"))  # the dashboard's certificate
    assert _get(observed["dashboard"] + "/api/mesh", context=https) is None  # no token: 401
    page = _wait(lambda: _get(observed["dashboard"] + "/", token, https), 60, "the dashboard")
    assert b"qpumesh dashboard" in page

    def healthy_nodes() -> int:
        body = _get(observed["dashboard"] + "/api/mesh", token, https)
        return sum(node["healthy"] for node in json.loads(body)["nodes"]) if body else 0

    _wait(lambda: healthy_nodes() == NODES, 60, "both nodes healthy on the dashboard")

    tls = load_tls(certs / "client.crt", certs / "client.key", certs / "ca.crt")
    with CoordinatorClient(observed["coordinator"], tls=tls, token=token) as client:
        job_id = client.submit(
            {"task": "pendulum", "model": "distributed", "qubits": 4, "partitions": 2, "layers": 1,
             "epochs": EPOCHS, "series_length": 24}
        )  # fmt: skip
        assert client.wait(job_id, timeout=300).epochs_done == EPOCHS

    prometheus = observed["prometheus"]
    _wait(lambda: len(_query(prometheus, 'up{job="qpumesh-node"} == 1')) == NODES, 60, "both nodes scraped")
    _wait(lambda: _query(prometheus, 'up{job="qpumesh-coordinator"} == 1'), 30, "the coordinator scraped")
    epochs = _wait(
        lambda: _query(prometheus, f'qpumesh_job_epochs_done{{job_id="{job_id}"}} == {EPOCHS}'),
        60,
        "the job's epochs in Prometheus",
    )
    assert epochs
    # The nodes are scraped on their own 5 s clock: wait for a scrape after their first calls.
    promql = 'sum by (instance) (grpc_server_handled_total{grpc_method="ShiftGradient"}) > 0'
    _wait(lambda: len(_query(prometheus, promql)) == NODES, 30, "both nodes' ShiftGradient calls scraped")
