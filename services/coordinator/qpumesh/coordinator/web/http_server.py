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
=====================================  ===================================================

**Access control is decided in one place**, ``AccessPolicy.check``, called for every
request with its headers and whether it reads (``"read"``) or changes something
(``"admin"``). The default ``OpenAccess`` lets everybody read; changing faults needs the
node admin token, which the node itself checks. A coordinator with token auth plugs a
policy that checks ``Authorization: Bearer`` here.
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

if TYPE_CHECKING:
    from qpumesh.coordinator.jobs import JobManager

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Qpumesh-Admin-Token"
"""Header carrying the node admin token of a fault request."""
MAX_BODY_BYTES = 64 * 1024
_JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"


class AccessPolicy(Protocol):
    """Decides whether a request may go on; the one place auth plugs into the HTTP side."""

    def check(self, headers: Mapping[str, str], action: str) -> tuple[int, str] | None:
        """Return None to allow, or (HTTP status, message) to refuse. ``action``: "read" or "admin"."""
        ...


class OpenAccess:
    """Everybody may read; fault changes are guarded by the node admin token (the node checks it)."""

    def check(self, headers: Mapping[str, str], action: str) -> tuple[int, str] | None:
        """Allow every request."""
        return None


class _Answer:
    """Ends a request with a status and a JSON or text body."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status, self.body, self.content_type = status, body, content_type


class DashboardServer:
    """The coordinator's HTTP server, started in a daemon thread.

    Args:
        manager: the job runner whose jobs and mesh are shown.
        registry: the metrics served at ``/metrics``.
        host: interface to bind (``[::]`` for all).
        port: TCP port; 0 picks a free one (see ``port``).
        policy: who may do what (default ``OpenAccess``).

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        manager: JobManager,
        registry: CollectorRegistry,
        host: str,
        port: int,
        policy: AccessPolicy | None = None,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.policy: AccessPolicy = policy or OpenAccess()
        handler = _handler_class(self)
        address = host.strip("[]") or "::"
        server_class = type("_Server", (ThreadingHTTPServer,), {"address_family": _family(address)})
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
        action = "admin" if method == "POST" else "read"
        refused = self.policy.check(dict(request.headers.items()), action)
        if refused is not None:
            return _Answer(refused[0], {"error": refused[1]})
        path = url.path.rstrip("/") or "/"
        manager = self.manager
        try:
            if method == "GET":
                if path == "/":
                    return _html(pages.overview(views.mesh_view(manager), views.jobs_view(manager)))
                if match := re.fullmatch(f"/jobs/{_JOB_ID}", path):
                    return _html(pages.job_page(views.job_view(manager, match["job_id"])))
                if path == "/api/mesh":
                    return _Answer(200, views.mesh_view(manager))
                if path == "/api/jobs":
                    return _Answer(200, views.jobs_view(manager))
                if match := re.fullmatch(f"/api/jobs/{_JOB_ID}", path):
                    return _Answer(200, views.job_view(manager, match["job_id"]))
                if match := re.fullmatch(f"/api/jobs/{_JOB_ID}/predictions", path):
                    return _Answer(200, views.predictions_view(manager, match["job_id"]))
                if path == "/api/faults":
                    token = request.headers.get(TOKEN_HEADER, "")
                    return _Answer(200, node_faults.get_faults(_node(query), self._known_nodes(), token))
                if path == "/metrics":
                    return _Answer(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
                if path == "/healthz":
                    return _Answer(200, "ok\n", "text/plain; charset=utf-8")
                if path.startswith("/static/"):
                    return _static(path.removeprefix("/static/"))
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


def _node(query: Mapping[str, str]) -> str:
    node = query.get("node", "").strip()
    if not node:
        raise node_faults.FaultControlError(
            400, "node: missing; add ?node=HOST:PORT (an address of the pool)"
        )
    return node


def _json_body(request: BaseHTTPRequestHandler) -> dict[str, Any]:
    length = int(request.headers.get("Content-Length") or 0)
    if length > MAX_BODY_BYTES:
        raise node_faults.FaultControlError(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(request.rfile.read(length) or b"{}")
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
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http %s: " + format, self.address_string(), *args)

    return Handler


__all__ = ["AccessPolicy", "DashboardServer", "OpenAccess"]
