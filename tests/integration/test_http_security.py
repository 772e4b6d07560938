"""The HTTP sides with tokens and TLS: the coordinator's dashboard and ``/metrics``, a node's ``/metrics``.

A coordinator with ``--auth-tokens`` and ``--http-port`` admits the same tokens on HTTP as
on gRPC (Bearer header or the login form's cookie): no token is 401, a user sees only its
own jobs, the fault controls and ``/metrics`` need an admin (or, for ``/metrics``, a
``metrics`` token, which gRPC refuses). With TLS the HTTP side is HTTPS with the gRPC
certificate; a mutual-TLS node's ``/metrics`` admits only holders of a CA certificate.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from qpumesh.client.coordinator_client import CoordinatorClient
from qpumesh.coordinator.auth import TokenTable
from qpumesh.wire.errors import QpuMeshError
from qpumesh.wire.tls import load_tls

TOKENS = {
    "alice": "alice-http-token-7d1e4a9b",
    "bob": "bob-http-token-5c8f0e3a6d",
    "ops": "ops-http-token-2b9d7c4e1f",
    "prometheus": "scrape-http-token-0a1b2c3d",
}
QUICK = {"model": "classical", "epochs": 1, "series_length": 40}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(
    url: str,
    token: str | None = None,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send one request (no redirects followed); return status, headers and body."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=10) as reply:
            return reply.status, dict(reply.headers.items()), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


@pytest.fixture
def dashboard(coordinator_server: Any, tmp_path: Path) -> Iterator[Callable[..., tuple[str, str]]]:
    """Start an in-process coordinator with tokens and an HTTP side; return (gRPC address, base URL)."""

    def start(**fields: Any) -> tuple[str, str]:
        path = tmp_path / "tokens"
        path.write_text(
            f"{TOKENS['alice']} alice\n{TOKENS['bob']} bob user\n{TOKENS['ops']} ops admin\n"
            f"{TOKENS['prometheus']} prometheus metrics\n"
        )
        address, server = coordinator_server(
            in_process=True, auth=TokenTable.load(path), http_port=0, **fields
        )
        scheme = "https" if fields.get("tls") is not None else "http"
        return address, f"{scheme}://127.0.0.1:{server.http.port}"

    yield start


def _submit(address: str, who: str, name: str) -> str:
    with CoordinatorClient(address, timeout=10, token=TOKENS[who]) as client:
        return client.submit({**QUICK, "name": name})


def test_without_a_valid_token_the_http_side_answers_401_and_pages_go_to_the_login(
    dashboard: Callable[..., tuple[str, str]],
) -> None:
    _, base = dashboard()
    for path in ("/api/jobs", "/api/mesh", "/api/jobs/abc", "/metrics"):
        status, headers, body = _get(base + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer"), path
        assert "requires a token" in json.loads(body)["error"]
        status, _, body = _get(base + path, "not-a-token-at-all-1234")
        assert (status, json.loads(body)["error"]) == (401, "invalid token"), path
    for page in ("/", "/jobs/abc"):
        status, headers, _ = _get(base + page)
        assert (status, headers["Location"]) == (303, "/login"), page
    assert _get(base + "/healthz")[:1] == (200,)  # probes need no token
    assert _get(base + "/static/dashboard.css")[0] == 200
    assert b'name="token"' in _get(base + "/login")[2]


def test_a_user_sees_only_its_own_jobs_an_admin_sees_every_job(
    dashboard: Callable[..., tuple[str, str]],
) -> None:
    address, base = dashboard()
    alices = _submit(address, "alice", "alice-job")
    bobs = _submit(address, "bob", "bob-job")

    def listed(who: str) -> set[str]:
        status, _, body = _get(base + "/api/jobs", TOKENS[who])
        assert status == 200
        return {job["id"] for job in json.loads(body)["jobs"]}

    assert listed("alice") == {alices}
    assert listed("bob") == {bobs}
    assert listed("ops") == {alices, bobs}
    for path in (f"/api/jobs/{bobs}", f"/api/jobs/{bobs}/predictions", f"/jobs/{bobs}"):
        assert _get(base + path, TOKENS["alice"])[0] == 404, path  # another's job does not exist
        assert _get(base + path, TOKENS["ops"])[0] == 200, path
    status, _, page = _get(base + "/", TOKENS["alice"])
    assert status == 200 and b"alice-job" in page and b"bob-job" not in page
    assert b'id="faults"' not in page  # no fault controls for a user
    assert b'id="faults"' in _get(base + "/", TOKENS["ops"])[2]
    assert _get(base + "/api/mesh", TOKENS["bob"])[0] == 200


def test_fault_controls_need_an_admin_token(dashboard: Callable[..., tuple[str, str]]) -> None:
    _, base = dashboard()
    faults = json.dumps({"faults": {"latency_ms": "5ms"}}).encode()
    json_type = {"Content-Type": "application/json"}
    for method, body in (("GET", None), ("POST", faults)):
        status, _, reply = _get(base + "/api/faults?node=127.0.0.1:1", TOKENS["alice"], method=method,
                                body=body, headers=json_type)  # fmt: skip
        assert (status, json.loads(reply)["error"]) == (403, "the fault controls need an admin token")
    # An admin passes the coordinator's check; the request is then judged on its merits
    # (this in-process coordinator has no node of that address).
    status, _, reply = _get(base + "/api/faults?node=127.0.0.1:1", TOKENS["ops"], method="POST",
                            body=faults, headers=json_type)  # fmt: skip
    assert status == 404 and "not in the coordinator's pool" in json.loads(reply)["error"]


def test_metrics_need_an_admin_or_a_metrics_token_and_a_metrics_token_gets_nothing_else(
    dashboard: Callable[..., tuple[str, str]],
) -> None:
    address, base = dashboard()
    status, _, reply = _get(base + "/metrics", TOKENS["alice"])
    assert status == 403 and "admin or a metrics token" in json.loads(reply)["error"]
    for who in ("ops", "prometheus"):
        status, headers, scrape = _get(base + "/metrics", TOKENS[who])
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert b"qpumesh_jobs" in scrape
    for path in ("/api/jobs", "/api/mesh"):
        assert _get(base + path, TOKENS["prometheus"])[0] == 403
    with (
        CoordinatorClient(address, timeout=10, token=TOKENS["prometheus"]) as client,
        pytest.raises(QpuMeshError) as refused,
    ):
        client.list()
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "metrics token" in refused.value.details


def test_the_login_form_sets_an_httponly_strict_cookie_that_stands_for_the_token(
    dashboard: Callable[..., tuple[str, str]],
) -> None:
    address, base = dashboard()
    alices = _submit(address, "alice", "mine")
    _submit(address, "bob", "theirs")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, page = _get(base + "/login", method="POST", body=b"token=wrong-token-0000000000", headers=form)
    assert status == 401 and b"invalid token" in page
    login = urllib.parse.urlencode({"token": TOKENS["alice"]}).encode()
    status, headers, _ = _get(base + "/login", method="POST", body=login, headers=form)
    assert (status, headers["Location"]) == (303, "/")
    cookie = headers["Set-Cookie"]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert TOKENS["alice"] not in cookie  # encoded, not the token's text
    session = {"Cookie": cookie.split(";", 1)[0]}
    status, _, body = _get(base + "/api/jobs", headers=session)
    assert status == 200 and [job["id"] for job in json.loads(body)["jobs"]] == [alices]
    status, headers, _ = _get(base + "/logout", method="POST", headers=session)
    assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]
    assert _get(base + "/api/jobs", headers={"Cookie": "qpumesh_token=bm90LWEtdG9rZW4"})[0] == 401


def test_guessing_tokens_over_http_is_throttled(dashboard: Callable[..., tuple[str, str]]) -> None:
    _, base = dashboard()
    codes = [_get(base + "/api/jobs", f"guess-{i:020d}")[0] for i in range(8)]
    assert codes[:5] == [401] * 5 and 429 in codes[5:]  # FailureThrottle: 5 free failures
    status, _, reply = _get(base + "/api/jobs", TOKENS["ops"])  # the address is blocked for everyone
    assert status == 429 and "retry" in json.loads(reply)["error"].lower()


def test_with_tls_the_dashboard_is_https_with_the_grpc_certificate(
    dashboard: Callable[..., tuple[str, str]], mesh_certs: Any, other_certs: Any
) -> None:
    tls = load_tls(mesh_certs.server_cert, mesh_certs.server_key, mesh_certs.ca)
    address, base = dashboard(tls=tls)
    assert base.startswith("https://")
    trusting = ssl.create_default_context(cafile=str(mesh_certs.ca))
    # No client certificate needed (browsers hold none): the token decides.
    status, _, body = _get(base + "/api/jobs", TOKENS["ops"], context=trusting)
    assert (status, json.loads(body)) == (200, {"jobs": []})
    assert _get(base + "/api/jobs", context=trusting)[0] == 401
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(base + "/healthz", context=ssl.create_default_context(cafile=str(other_certs.ca)))
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP gets no answer
        _get(base.replace("https://", "http://") + "/healthz")
    # The gRPC port is unchanged: mutual TLS and the same tokens.
    client_tls = load_tls(mesh_certs.client_cert, mesh_certs.client_key, mesh_certs.ca)
    with CoordinatorClient(address, timeout=10, tls=client_tls, token=TOKENS["ops"]) as client:
        assert client.list() == []


def test_a_mutual_tls_nodes_metrics_are_https_for_holders_of_a_ca_certificate_only(
    mesh_certs: Any, other_certs: Any
) -> None:
    from qpumesh.node.config import ServerConfig
    from qpumesh.node.core import NodeConfig
    from qpumesh.node.server import start_node

    tls = load_tls(mesh_certs.server_cert, mesh_certs.server_key, mesh_certs.ca)
    config = ServerConfig(node=NodeConfig(node_id="m"), host="127.0.0.1", port=0, tls=tls, metrics_port=0)
    node = start_node(config)
    try:
        assert node.metrics is not None
        url = f"https://127.0.0.1:{node.metrics.port}/metrics"
        holder = ssl.create_default_context(cafile=str(mesh_certs.ca))
        holder.load_cert_chain(str(mesh_certs.client_cert), str(mesh_certs.client_key))
        status, _, scrape = _get(url, context=holder)
        assert status == 200 and b"qpumesh_node" in scrape
        stranger = ssl.create_default_context(cafile=str(mesh_certs.ca))
        stranger.load_cert_chain(str(other_certs.client_cert), str(other_certs.client_key))
        for context in (ssl.create_default_context(cafile=str(mesh_certs.ca)), stranger):
            with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
                _get(url, context=context)
        # The server still answers after refused handshakes.
        assert _get(url, context=holder)[0] == 200
    finally:
        node.stop(None)
