"""The coordinator's HTTP side (``--http-port``): the live dashboard, its JSON API, ``/metrics``.

A standard-library ``ThreadingHTTPServer`` in a daemon thread: a handful of routes, no
framework. Everything it serves comes from the ``JobManager`` (the same answers the gRPC
service gives) and from the metrics registry.

=====================================  ===================================================
``GET /``                              the mesh and the jobs (refreshes itself every second)
``GET /jobs/<id>``                     one job: progress, loss and R² curves, predictions
``GET /api/mesh``, ``/api/jobs``       JSON of the above
``GET /api/jobs/<id>``                 JSON: one job with its curves and newest events
``GET /api/jobs/<id>/predictions``     JSON: the best checkpoint's predictions
``GET /api/faults?node=ADDR``          a node's faults (``X-Qpumesh-Admin-Token`` header)
``POST /api/faults?node=ADDR``         replace them (JSON body of ``qpumesh fault`` values)
``GET /metrics``                       Prometheus text format
``GET /static/<file>``                 the page's script, style and uPlot (vendored)
``GET /healthz``                       ``ok``
``GET /login``, ``POST /login``        the token form; sets the HttpOnly login cookie
``POST /logout``                       drops the cookie
=====================================  ===================================================

**Access control is decided in one place**, ``AccessPolicy.check``, called for every
request but ``/healthz``, ``/static/`` and the login form with its headers, the client's
address and what it does: ``"read"`` (pages, JSON), ``"metrics"`` (``/metrics``) or
``"admin"`` (the fault controls); ``AccessPolicy.owner`` then says whose jobs the
request sees. The default ``OpenAccess`` lets everybody do everything (changing faults
still needs the node admin token, which the node checks); a coordinator with
``--auth-tokens`` uses ``web.access.TokenAccess``. A refused page (401) redirects the
browser to ``/login``; a refused API call answers JSON with the status.

With a ``TlsConfig`` the server speaks HTTPS only, with the gRPC port's certificate; it
asks for no client certificate (browsers hold none): tokens decide who gets in. Without
``--auth-tokens`` the HTTP side is open to whoever reaches its port (``serve`` warns
unless it is bound to the loopback interface).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from qpumesh.coordinator.store import JobNotFoundError
from qpumesh.coordinator.web import node_faults, pages, views
from qpumesh.coordinator.web.access import COOKIE, cookie_value
from qpumesh.wire.https import tls_server_class
from qpumesh.wire.tls import TlsConfig

if TYPE_CHECKING:
    from qpumesh.coordinator.jobs import JobManager

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Qpumesh-Admin-Token"
"""Header carrying the node admin token of a fault request."""
MAX_BODY_BYTES = 64 * 1024
_JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"


class AccessPolicy(Protocol):
    """Decides whether a request may go on; the one place auth plugs into the HTTP side."""

    def check(self, headers: Mapping[str, str], action: str, peer: str = "") -> tuple[int, str] | None:
        """Return None to allow, or (HTTP status, message) to refuse.

        ``action``: "read", "metrics" or "admin"; ``peer``: the client's address.
        """
        ...

    def owner(self, headers: Mapping[str, str]) -> str | None:
        """Return whose jobs an allowed request sees (None: every job)."""
        ...


class OpenAccess:
    """Everybody may do everything; fault changes are guarded by the node admin token (the node checks it)."""

    def check(self, headers: Mapping[str, str], action: str, peer: str = "") -> tuple[int, str] | None:
        """Allow every request."""
        return None

    def owner(self, headers: Mapping[str, str]) -> str | None:
        """Every job is seen."""
        return None


class _Answer:
    """Ends a request with a status, a JSON or text body and extra headers."""

    def __init__(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers


class DashboardServer:
    """The coordinator's HTTP server, started in a daemon thread.

    Args:
        manager: the job runner whose jobs and mesh are shown.
        registry: the metrics served at ``/metrics``.
        host: interface to bind (``[::]`` for all).
        port: TCP port; 0 picks a free one (see ``port``).
        policy: who may do what (default ``OpenAccess``).
        tls: serve HTTPS with these files (None: plain HTTP).

    Raises:
        OSError: the address cannot be bound.
        TlsError: ``tls`` has no certificate.
    """

    def __init__(  # noqa: PLR0917 -- main's positional order, tls added last
        self,
        manager: JobManager,
        registry: CollectorRegistry,
        host: str,
        port: int,
        policy: AccessPolicy | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.policy: AccessPolicy = policy or OpenAccess()
        self.secure = tls is not None
        handler = _handler_class(self)
        address = host.strip("[]") or "::"
        server_class = type(
            "_Server",
            (tls_server_class(ThreadingHTTPServer, tls, client_certs=False),),
            {"address_family": _family(address)},
        )
        self.httpd = server_class((address, port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="qpumesh-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ routes

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> _Answer:
        """Answer one request (every route, every error)."""
        url = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        path = url.path.rstrip("/") or "/"
        peer = str(request.client_address[0])
        if path == "/healthz" and method == "GET":
            return _Answer(200, "ok\n", "text/plain; charset=utf-8")
        if path.startswith("/static/") and method == "GET":
            return _static(path.removeprefix("/static/"))
        if path == "/login":
            return self._login(request, method, peer)
        if path == "/logout" and method == "POST":
            return self._redirect("/login", self._cookie("", max_age=0))
        headers = dict(request.headers.items())
        if path == "/metrics":
            action = "metrics"
        elif path == "/api/faults" or method == "POST":
            action = "admin"
        else:
            action = "read"
        refused = self.policy.check(headers, action, peer)
        if refused is not None:
            status, message = refused
            if status == 401 and method == "GET" and (path == "/" or path.startswith("/jobs/")):
                return self._redirect("/login")
            extra = (("WWW-Authenticate", 'Bearer realm="qpumesh"'),) if status == 401 else ()
            return _Answer(status, {"error": message}, headers=extra)
        owner = self.policy.owner(headers)
        manager = self.manager
        try:
            if method == "GET":
                if path == "/":
                    admin = self.policy.check(headers, "admin", peer) is None
                    mesh, jobs = views.mesh_view(manager), views.jobs_view(manager, owner=owner)
                    return _html(pages.overview(mesh, jobs, faults=admin))
                if match := re.fullmatch(f"/jobs/{_JOB_ID}", path):
                    return _html(pages.job_page(views.job_view(manager, match["job_id"], owner)))
                if path == "/api/mesh":
                    return _Answer(200, views.mesh_view(manager))
                if path == "/api/jobs":
                    return _Answer(200, views.jobs_view(manager, owner=owner))
                if match := re.fullmatch(f"/api/jobs/{_JOB_ID}", path):
                    return _Answer(200, views.job_view(manager, match["job_id"], owner))
                if match := re.fullmatch(f"/api/jobs/{_JOB_ID}/predictions", path):
                    return _Answer(200, views.predictions_view(manager, match["job_id"], owner))
                if path == "/api/faults":
                    token = request.headers.get(TOKEN_HEADER, "")
                    return _Answer(200, node_faults.get_faults(_node(query), self._known_nodes(), token))
                if path == "/metrics":
                    return _Answer(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
            elif method == "POST" and path == "/api/faults":
                body = _json_body(request)
                token = request.headers.get(TOKEN_HEADER, "") or str(body.pop("token", ""))
                config = node_faults.parse_faults(body.get("faults", {}))
                return _Answer(200, node_faults.set_faults(_node(query), self._known_nodes(), token, config))
        except JobNotFoundError as error:
            return _Answer(404, {"error": str(error)})
        except node_faults.FaultControlError as error:
            return _Answer(error.status, {"error": str(error)})
        return _Answer(404, {"error": f"no such page: {method} {url.path}"})

    def _known_nodes(self) -> list[str]:
        return [node.address for node in self.manager.node_stats()]

    def _login(self, request: BaseHTTPRequestHandler, method: str, peer: str) -> _Answer:
        """Answer the login form (GET) and check it (POST): a valid token becomes the login cookie."""
        if method == "GET":
            return _html(pages.login_page())
        try:
            form = parse_qs(_read_body(request).decode("utf-8"))
        except (UnicodeDecodeError, node_faults.FaultControlError) as error:
            return _Answer(400, {"error": f"the login form could not be read: {error}"})
        token = (form.get("token") or [""])[-1].strip()
        refused = (
            self.policy.check({"Authorization": f"Bearer {token}"}, "read", peer)
            if token
            else (400, "enter a token")
        )
        if refused is not None:
            return _Answer(refused[0], pages.login_page(refused[1]), "text/html; charset=utf-8")
        return self._redirect("/", self._cookie(cookie_value(token)))

    def _cookie(self, value: str, max_age: int | None = None) -> tuple[str, str]:
        """Return the login cookie's ``Set-Cookie`` (HttpOnly, SameSite=Strict, Secure over HTTPS)."""
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return ("Set-Cookie", "; ".join(parts))

    @staticmethod
    def _redirect(location: str, *headers: tuple[str, str]) -> _Answer:
        return _Answer(303, {"location": location}, headers=(("Location", location), *headers))


def _node(query: Mapping[str, str]) -> str:
    node = query.get("node", "").strip()
    if not node:
        raise node_faults.FaultControlError(
            400, "node: missing; add ?node=HOST:PORT (an address of the pool)"
        )
    return node


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise node_faults.FaultControlError(400, "Content-Length must be a number") from None
    if length > MAX_BODY_BYTES or length < 0:
        raise node_faults.FaultControlError(413, f"request body over {MAX_BODY_BYTES} bytes")
    return request.rfile.read(length)


def _json_body(request: BaseHTTPRequestHandler) -> dict[str, Any]:
    data = _read_body(request)
    try:
        body = json.loads(data or b"{}")
    except (UnicodeDecodeError, ValueError) as error:
        raise node_faults.FaultControlError(400, f"the body must be a JSON object: {error}") from None
    if not isinstance(body, dict):
        raise node_faults.FaultControlError(400, 'the body must be a JSON object, e.g. {"faults": {...}}')
    return body


def _html(text: str) -> _Answer:
    return _Answer(200, text, "text/html; charset=utf-8")


def _static(name: str) -> _Answer:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        return _Answer(404, {"error": f"no such file: {name}"})
    resource = resources.files("qpumesh.coordinator.web").joinpath("static", name)
    if not resource.is_file():
        return _Answer(404, {"error": f"no such file: {name}"})
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    return _Answer(200, resource.read_bytes(), content_type)


def _family(address: str) -> int:
    import socket

    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _handler_class(server: DashboardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "qpumesh"
        timeout = 30  # seconds a client may take to send its request (slow clients hold a thread)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            try:
                reply = server.handle(self, method)
            except Exception as error:  # the HTTP edge: a bug answers 500 and is logged
                logger.exception("HTTP %s %s failed", method, self.path)
                reply = _Answer(500, {"error": f"internal error: {type(error).__name__}: {error}"})
            body = reply.body
            if isinstance(body, str):
                data = body.encode()
            elif isinstance(body, bytes):
                data = body
            else:
                data = json.dumps(body, allow_nan=False).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http %s: " + format, self.address_string(), *args)

    return Handler


__all__ = ["AccessPolicy", "DashboardServer", "OpenAccess"]
