"""A whole qpumesh on one machine: N QPU node processes and a coordinator process.

``LocalMesh`` is what ``qpumesh train`` uses when no coordinator is given, what the
integration tests use, and what ``qpumesh mesh up`` runs in the foreground. The
children are real ``python -m qpumesh.node serve`` / ``python -m qpumesh.coordinator
serve`` processes (the same commands as ``qpumesh node serve`` / ``qpumesh coordinator
serve``) bound to free ports on 127.0.0.1 (``--port 0 --port-file F``), so a local run
exercises exactly the code a deployment runs.

By default the mesh runs with mutual TLS: ``start`` makes a CA and certificates in a
temporary directory (``qpumesh.client.certs``); nodes and coordinator serve TLS and
require a client certificate from that CA; clients use ``client_tls``. ``revive``
restarts children that died (same port, node id, data directory); ``qpumesh mesh up``
calls it twice a second, so a node killed with SIGKILL comes back and the job finishes.

Children never outlive the mesh:

- each runs in its own process group (so a terminal Ctrl-C reaches only the
  parent, which then shuts the mesh down in order: coordinator first, then nodes);
- ``stop`` sends SIGTERM to every group and SIGKILL to whatever is left after a
  grace period; ``start`` and ``__exit__`` call it on any exception, including
  ``KeyboardInterrupt``;
- on Linux each child started from the main thread also gets ``PR_SET_PDEATHSIG``
  = SIGTERM, so even a parent killed with SIGKILL takes its children with it.
  (The kernel ties this to the *thread* that forked the child, so children
  started from other threads rely on ``stop`` alone.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from qpumesh.client.certs import MeshCertificates, make_certificates
from qpumesh.client.children import DEATHSIG_LAUNCHER, Child, exit_message, how, terminate
from qpumesh.wire.channels import open_channel
from qpumesh.wire.port_file import read_port_file
from qpumesh.wire.tls import TlsConfig, load_tls

DEFAULT_STARTUP_TIMEOUT = 120.0
"""Seconds a child may take to serve; node start-up imports torch and cirq."""

DEFAULT_GRACE = 10.0
"""Seconds children get to exit after SIGTERM before SIGKILL."""

MAX_RESTARTS = 5
"""``revive`` gives up on a child that died this many times within ``RESTART_WINDOW`` seconds."""
RESTART_WINDOW = 60.0

class LocalMeshError(RuntimeError):
    """A process of the local mesh failed to start or died."""


class LocalMesh:
    """N ``qpumesh node serve`` processes plus a ``qpumesh coordinator serve`` process.

    Example::

        with LocalMesh(nodes=2) as mesh:
            with CoordinatorClient(mesh.coordinator_address) as client:
                ...

    Args:
        nodes: number of QPU node processes (0 runs the coordinator with
            ``--in-process``, i.e. without nodes).
        node_args: extra arguments for every ``qpumesh node serve`` (they come
            after the mesh's own, so they win).
        node_args_at: extra arguments for node i only (index -> arguments), after
            ``node_args``: a heterogeneous mesh, e.g. one noisy node among clean ones.
        coordinator_args: extra arguments for ``qpumesh coordinator serve``.
        data_dir: the coordinator's data directory (job store, checkpoints);
            default: a temporary directory removed on exit.
        coordinator_port: port of the coordinator; 0 picks a free one.
        startup_timeout: seconds each start-up phase (nodes, then coordinator)
            may take before ``LocalMeshError``.
        grace: seconds children get to exit after SIGTERM before SIGKILL.
        log_dir: where the children's stdout/stderr go; default: a temporary
            directory removed on exit.
        python: interpreter to run the children with (default: this one).
        coordinator: also start the coordinator (False: nodes only, e.g. to benchmark them).
        tls: run with mutual TLS and certificates made for the mesh (default); False:
            plaintext.
        dashboard: serve the coordinator's dashboard and ``/metrics`` on a free HTTP port
            (``dashboard_url``).
    """

    def __init__(
        self,
        nodes: int = 4,
        *,
        node_args: Sequence[str] = (),
        node_args_at: Mapping[int, Sequence[str]] | None = None,
        coordinator_args: Sequence[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
        coordinator_port: int = 0,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        grace: float = DEFAULT_GRACE,
        log_dir: str | os.PathLike[str] | None = None,
        python: str | None = None,
        coordinator: bool = True,
        tls: bool = True,
        dashboard: bool = True,
    ) -> None:
        if nodes < 0:
            raise ValueError(f"nodes must be >= 0, got {nodes}")
        self.nodes = nodes
        self.node_args = tuple(node_args)
        self.node_args_at = {i: tuple(a) for i, a in (node_args_at or {}).items()}
        outside = sorted(i for i in self.node_args_at if not 0 <= i < nodes)
        if outside:
            raise ValueError(f"node_args_at names node(s) {outside}; the mesh has nodes 0..{nodes - 1}")
        self.coordinator_args = tuple(coordinator_args)
        self.coordinator_port = coordinator_port
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.python = python or sys.executable
        self.with_coordinator = coordinator
        self.tls = tls
        self.certificates: MeshCertificates | None = None
        self._client_tls: TlsConfig | None = None
        self.with_dashboard = dashboard
        self._http_port = 0
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._temp_dirs: list[Path] = []
        self._children: list[Child] = []
        self._node_children: list[Child] = []
        self._coordinator: Child | None = None
        # start/stop/restart may come from different threads (a test restarting the
        # coordinator while the main thread leaves the with-block).
        self._lock = threading.RLock()
        self.data_dir: Path | None = None
        self.log_dir: Path | None = None

    # ------------------------------------------------------------------ properties

    @property
    def coordinator_address(self) -> str:
        """``host:port`` of the coordinator (after ``start``)."""
        if self._coordinator is None:
            raise LocalMeshError("the mesh is not running")
        return self._coordinator.address

    @property
    def dashboard_url(self) -> str:
        """``https://127.0.0.1:PORT/`` (``http://`` without TLS): the dashboard ("" without one)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._http_port}/" if self._http_port else ""

    @property
    def node_addresses(self) -> list[str]:
        """``host:port`` of every node, in start order (after ``start``)."""
        return [child.address for child in self._node_children]

    @property
    def client_tls(self) -> TlsConfig | None:
        """What a client of this mesh uses: the CA and the client certificate (None: plaintext)."""
        return self._client_tls

    @property
    def coordinator_tls(self) -> TlsConfig | None:
        """What a coordinator of this mesh uses towards its nodes (None: plaintext); for benchmarks."""
        certs = self.certificates
        return None if certs is None else load_tls(certs.server_cert, certs.server_key, certs.ca)

    def tls_arguments(self) -> list[str]:
        """Return the ``--tls-*`` flags of the mesh's servers (none in plaintext)."""
        certs = self.certificates
        if certs is None:
            return []
        return [
            *("--tls-cert", str(certs.server_cert)),
            *("--tls-key", str(certs.server_key)),
            *("--tls-ca", str(certs.ca)),
        ]

    @property
    def pids(self) -> list[int]:
        """Process ids of the children started so far."""
        return [child.process.pid for child in self._children]

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalMesh:
        """Start the nodes, wait until they serve, then start the coordinator and wait for it.

        Raises:
            LocalMeshError: a child exited or did not become healthy in time; the
                message includes the tail of its stderr. Every child started so
                far has been stopped.
        """
        with self._lock:
            return self._start()

    def node_command(self, index: int) -> list[str]:
        """Build node ``index``'s module and arguments: the mesh's own, then ``node_args``, then its own."""
        return [
            "qpumesh.node",
            "serve",
            "--host",
            "127.0.0.1",
            "--node-id",
            f"node-{index}",
            *self.tls_arguments(),
            *self.node_args,
            *self.node_args_at.get(index, ()),
        ]

    def _start(self) -> LocalMesh:
        if self._children:
            raise LocalMeshError("the mesh is already running")
        try:
            self.log_dir = self._directory(self._log_dir, "qpumesh-mesh-logs-")
            self.data_dir = self._directory(self._data_dir, "qpumesh-mesh-data-")
            if self.tls:
                certs = make_certificates(self._directory(None, "qpumesh-mesh-certs-"))
                self.certificates = certs
                self._client_tls = load_tls(certs.client_cert, certs.client_key, certs.ca)
            for i in range(self.nodes):
                node_id = f"node-{i}"
                self._node_children.append(
                    self._spawn(node_id, self.node_command(i), port=0)
                )
            for child in self._node_children:
                self._wait_ready(child, time.monotonic() + self.startup_timeout)
            if self.with_coordinator:
                self._start_coordinator(self.coordinator_port)
        except BaseException:
            self._stop()
            raise
        return self

    def restart_coordinator(self) -> None:
        """Stop the coordinator (SIGTERM, as in a rolling update) and start it again on the same port.

        Jobs that were running resume from their checkpoints; clients following
        them reconnect. Useful to demonstrate and test exactly that.

        Raises:
            LocalMeshError: the mesh is not running, or the new coordinator did not
                become healthy in time.
        """
        with self._lock:
            old = self._coordinator
            if old is None:
                raise LocalMeshError("the mesh is not running")
            self._restart_coordinator(old)

    def _restart_coordinator(self, old: Child) -> None:
        terminate([old], self.grace)
        self._children.remove(old)
        with contextlib.suppress(OSError):
            old.stderr_file.close()
        self._coordinator = None
        self._start_coordinator(old.port)

    def poll(self) -> None:
        """Raise ``LocalMeshError`` if a child has exited since the mesh started."""
        for child in self._children:
            code = child.process.poll()
            if code is not None:
                raise LocalMeshError(exit_message(child, code))

    def kill(self, name: str, sig: int = signal.SIGKILL, *, wait: float = 30.0) -> int:
        """Send ``sig`` to the child ``name`` ("coordinator", "node-0", ...), wait for it to exit.

        For tests and demonstrations of ``revive``. Returns the pid it had.
        """
        with self._lock:
            child = next((c for c in self._children if c.name == name), None)
            if child is None:
                raise LocalMeshError(f"no child named {name!r}; children: {[c.name for c in self._children]}")
            os.kill(child.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=wait)
            return child.process.pid

    def revive(self) -> list[str]:
        """Restart every child that exited, on its port, and wait until it serves again.

        A node comes back with the same node id (the coordinator's mesh sees the same
        node recover); the coordinator with the same data directory (its jobs resume
        from their checkpoints). Returns the names of the children restarted.

        Raises:
            LocalMeshError: a child died ``MAX_RESTARTS`` times within ``RESTART_WINDOW``
                seconds, or did not come back in time.
        """
        with self._lock:
            revived = []
            for child in list(self._children):
                code = child.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                deaths = [t for t in (child.deaths or []) if now - t < RESTART_WINDOW] + [now]
                if len(deaths) >= MAX_RESTARTS:
                    message = f"{exit_message(child, code)}\n(died {len(deaths)} times; given up)"
                    raise LocalMeshError(message)
                with contextlib.suppress(OSError):
                    child.stderr_file.close()
                new = self._spawn(child.name, child.arguments, port=child.port)
                new.deaths = deaths
                self._children.remove(child)
                if child is self._coordinator:
                    self._coordinator = new
                else:
                    self._node_children[self._node_children.index(child)] = new
                self._wait_ready(new, time.monotonic() + self.startup_timeout)
                revived.append(f"{child.name} ({how(code)})")
            return revived

    def stop(self) -> None:
        """Stop every child: coordinator first, then the nodes; SIGKILL after the grace period.

        Safe to call more than once and on a partially started mesh.
        """
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        try:
            if self._coordinator is not None:
                terminate([self._coordinator], self.grace)
            terminate([c for c in self._children if c is not self._coordinator], self.grace)
        finally:
            for child in self._children:
                with contextlib.suppress(OSError):
                    child.stderr_file.close()
            self._children = []
            self._node_children = []
            self._coordinator = None
            for path in self._temp_dirs:
                shutil.rmtree(path, ignore_errors=True)
            self._temp_dirs = []
            self.certificates = self._client_tls = None

    # ------------------------------------------------------------------ helpers

    def _start_coordinator(self, port: int) -> None:
        """Start the coordinator pointed at the nodes (or in-process) and wait until it serves."""
        nodes = ",".join(self.node_addresses)
        placement = ["--nodes", nodes] if nodes else ["--in-process"]
        assert self.log_dir is not None
        http_port_file = self.log_dir / "coordinator.http-port"
        http: list[str] = []
        if self.with_dashboard:
            http_port_file.unlink(missing_ok=True)
            http = ["--http-port", str(self._http_port), "--http-port-file", str(http_port_file)]
        self._coordinator = self._spawn(
            "coordinator",
            [
                "qpumesh.coordinator",
                "serve",
                "--host",
                "127.0.0.1",
                "--data-dir",
                str(self.data_dir),
                *placement,
                *self.tls_arguments(),
                *http,
                *self.coordinator_args,
            ],
            port=port,
        )
        self._wait_ready(self._coordinator, time.monotonic() + self.startup_timeout)
        if self.with_dashboard:  # written before the gRPC port file, so it is there now
            self._http_port = read_port_file(http_port_file)

    def _directory(self, given: Path | None, prefix: str) -> Path:
        """Return ``given`` (created if needed) or a new temporary directory removed on stop."""
        if given is not None:
            given.mkdir(parents=True, exist_ok=True)
            return given
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._temp_dirs.append(path)
        return path

    def _spawn(self, name: str, arguments: list[str], port: int) -> Child:
        """Start ``python -m <module> <command> --port P --port-file F <rest>`` in its own process group.

        ``arguments`` is ``[module, command, *rest]``; the child's output goes to
        ``<log_dir>/<name>.log``.
        """
        assert self.log_dir is not None
        port_file = self.log_dir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        stderr_path = self.log_dir / f"{name}.log"
        command = [
            self.python,
            "-c",
            DEATHSIG_LAUNCHER,
            # The kernel fires PR_SET_PDEATHSIG when the *thread* that forked the
            # child ends, so only children started by the main thread get it.
            str(os.getpid() if threading.current_thread() is threading.main_thread() else 0),
            "-m",
            *arguments[:2],
            "--port",
            str(port),
            "--port-file",
            str(port_file),
            *arguments[2:],
        ]
        stderr_file = stderr_path.open("ab")
        # The mesh's own flags decide TLS; TLS variables of the caller's shell (say, exported
        # for another mesh) must not reach the children.
        env = {k: v for k, v in os.environ.items() if not k.startswith("QPUMESH_TLS_")}
        env["PYTHONUNBUFFERED"] = "1"
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            stderr_file.close()
            raise
        child = Child(name, process, port_file, stderr_path, stderr_file, arguments, port=port)
        self._children.append(child)
        return child

    def _wait_ready(self, child: Child, deadline: float) -> None:
        """Wait for the child's port file, then for its gRPC health check to say SERVING."""
        while True:
            code = child.process.poll()
            if code is not None:
                raise LocalMeshError(exit_message(child, code))
            port = read_port_file(child.port_file)
            if port:
                child.port = port
            if port and _healthy(child.address, self._client_tls, timeout=1.0):
                return
            if time.monotonic() >= deadline:
                state = "not serving" if child.port else "never wrote its port file"
                raise LocalMeshError(
                    f"{child.name} {state} within {self.startup_timeout:g} s "
                    f"(pid {child.process.pid}); last output:\n{child.stderr_tail()}"
                )
            time.sleep(0.1)


def parse_node_args_at(items: Sequence[str]) -> dict[int, list[str]]:
    """``["0:--depolarizing-1q=0.01", "0:--readout-error=0.02"]`` -> {0: [both arguments]}.

    Raises:
        ValueError: an item that is not ``INDEX:ARG`` with a non-negative integer index.
    """
    out: dict[int, list[str]] = {}
    for item in items:
        index, sep, argument = item.partition(":")
        if not sep or not index.isdigit() or not argument:
            raise ValueError(f"--node-arg-at wants INDEX:ARG (e.g. 0:--readout-error=0.02), got {item!r}")
        out.setdefault(int(index), []).append(argument)
    return out


def _healthy(address: str, tls: TlsConfig | None, timeout: float) -> bool:
    """Whether the server at ``address`` answers the gRPC health check with SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with open_channel(address, tls=tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


