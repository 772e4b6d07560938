"""The coordinator's dashboard in a real headless browser (Debian's chromium, driven by Playwright).

Two real nodes (with NodeAdmin) and a coordinator with ``http_port=0``; a distributed
QLSTM job trains while the browser watches. Asserts what a person relies on: the front
page lists both nodes as healthy and the job; the job page's loss curve gains points
while the job runs, the R² and prediction charts are drawn; the fault form changes a
node's faults with the admin token and shows the node's refusal without it. The
screenshots are kept in ``build/test-artifacts/`` (``QPUMESH_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from external_tools import ARTIFACTS, require

from qpumesh.client import CoordinatorClient
from qpumesh.node.faults import FaultSettings, fault_hooks
from qpumesh.wire.job_state import JobState

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-test-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    require(CHROMIUM, "apt-get install chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def mesh(node_server: Any, coordinator_server: Any) -> Iterator[dict[str, Any]]:
    injectors = []
    addresses = []
    for index in range(2):
        hooks = fault_hooks(FaultSettings(admin_token=TOKEN), node_id=f"node-{index}")
        address, _ = node_server(
            node_id=f"node-{index}",
            max_qubits=8,
            interceptors=hooks.interceptors,
            extra_services=hooks.extra_services,
        )
        injectors.append(hooks.injector)
        addresses.append(address)
    address, server = coordinator_server(nodes=",".join(addresses), http_port=0)
    yield {
        "coordinator": address,
        "url": f"http://127.0.0.1:{server.http.port}",
        "nodes": addresses,
        "injectors": injectors,
    }


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_dashboard_shows_the_mesh_and_a_growing_curve(browser: Any, mesh: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with CoordinatorClient(mesh["coordinator"]) as client:
        job_id = client.submit(
            {
                "name": "browser",
                "task": "pendulum",
                "model": "distributed",
                "qubits": 4,
                "partitions": 2,
                "layers": 1,
                # Far more epochs than the test watches (it cancels the job at the end): an
                # epoch of this model takes ~0.1 s, and the curve must grow while it runs.
                "epochs": 2000,
                "series_length": 40,
            }
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        # The front page: both nodes, healthy, and the job.
        page.goto(mesh["url"] + "/")
        assert page.title() == "qpumesh dashboard"
        for address in mesh["nodes"]:
            row = page.locator(f'#nodes tr[data-node="{address}"]')
            row.wait_for(timeout=20_000)
            _wait(lambda row=row: "healthy" in row.inner_text().split(), 20, f"{row} healthy")
        page.locator(f'#jobs tr[data-job="{job_id}"]').wait_for(timeout=10_000)
        _wait(lambda: client.get(job_id).epochs_done >= 1, 120, "the first epoch")
        page.wait_for_timeout(1500)  # one refresh: calls and latencies filled in
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # The fault form: the node refuses a wrong token; the right one sets the fault.
        page.select_option("#fault-node", mesh["nodes"][1])
        page.fill("#fault-token", "wrong")
        page.fill('#faults input[name="latency_ms"]', "5ms")
        page.click('#faults button[name="apply"]')
        _wait(lambda: "wrong admin token" in page.inner_text("#fault-result"), 10, "the refusal")
        assert mesh["injectors"][1].config.latency_ms == 0
        page.fill("#fault-token", TOKEN)
        page.click('#faults button[name="apply"]')
        _wait(lambda: "latency 5ms" in page.inner_text("#fault-result"), 10, "the new faults")
        assert mesh["injectors"][1].config.latency_ms == 5.0
        page.click("#fault-clear")
        _wait(lambda: mesh["injectors"][1].config.latency_ms == 0, 10, "cleared faults")

        # The job page: the loss curve grows while the job trains.
        page.goto(f"{mesh['url']}/jobs/{job_id}")
        assert page.inner_text("#job-state") == "running"
        loss = page.locator("#chart-loss")
        first = _wait(lambda: int(loss.get_attribute("data-points") or 0), 30, "a first loss point")
        grown = _wait(
            lambda: (
                int(loss.get_attribute("data-points") or 0) > first
                and client.get(job_id).state == JobState.RUNNING.to_proto()
            ),
            120,
            "the loss curve to grow while the job runs",
        )
        assert grown
        assert page.locator("#chart-loss canvas").count() >= 1
        assert int(page.locator("#chart-r2").get_attribute("data-points") or 0) >= first
        _wait(
            lambda: int(page.locator("#chart-predictions").get_attribute("data-points") or 0) > 0,
            60,
            "predictions",
        )
        assert page.locator("#events li").count() >= 1
        page.screenshot(path=str(ARTIFACTS / "dashboard-job.png"), full_page=True)
        assert errors == []
        client.cancel(job_id)


def test_with_tls_and_tokens_the_browser_logs_in_once_and_sees_only_its_jobs(
    browser: Any, coordinator_server: Any, mesh_certs: Any, tmp_path: Any
) -> None:
    from qpumesh.coordinator.auth import TokenTable
    from qpumesh.wire.tls import load_tls

    alice, bob = "alice-browser-token-1a2b3c", "bob-browser-token-4d5e6f70"
    (tmp_path / "tokens").write_text(f"{alice} alice\n{bob} bob\n")
    tls = load_tls(mesh_certs.server_cert, mesh_certs.server_key, mesh_certs.ca)
    address, server = coordinator_server(
        in_process=True, http_port=0, tls=tls, auth=TokenTable.load(tmp_path / "tokens")
    )
    client_tls = load_tls(mesh_certs.client_cert, mesh_certs.client_key, mesh_certs.ca)
    spec = {"model": "classical", "epochs": 1, "series_length": 40}
    with CoordinatorClient(address, timeout=30, tls=client_tls, token=alice) as client:
        mine = client.submit({**spec, "name": "alices-job"})
    with CoordinatorClient(address, timeout=30, tls=client_tls, token=bob) as client:
        client.submit({**spec, "name": "bobs-job"})
    url = f"https://127.0.0.1:{server.http.port}"
    context = browser.new_context(ignore_https_errors=True)  # the mesh's CA is not the browser's
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "/")
        assert page.url == url + "/login"  # no token yet: the login form
        page.fill('input[name="token"]', "not-the-token-000000")
        page.click('button[type="submit"]')
        assert "invalid token" in page.inner_text("main")
        page.fill('input[name="token"]', alice)
        page.click('button[type="submit"]')
        page.wait_for_url(url + "/")
        page.locator(f'#jobs tr[data-job="{mine}"]').wait_for(timeout=10_000)
        page.wait_for_timeout(1500)  # a refresh through /api/ with the cookie alone
        assert page.inner_text("#live") == "live"
        assert "alices-job" in page.inner_text("#jobs") and "bobs-job" not in page.inner_text("#jobs")
        assert page.locator("#faults").count() == 0  # a user gets no fault controls
        cookies = context.cookies()
        assert [(c["name"], c["httpOnly"], c["secure"], c["sameSite"]) for c in cookies] == [
            ("qpumesh_token", True, True, "Strict")
        ]
        assert page.evaluate("document.cookie") == ""  # scripts cannot read it
        assert errors == []
    finally:
        context.close()
