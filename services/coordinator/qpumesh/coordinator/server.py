"""The coordinator's gRPC server: start-up, health, reflection, authentication, shutdown.

``create_server(config)`` builds a started server (tests bind port 0) and
``serve(config)`` runs one until SIGTERM/SIGINT. Next to ``qpumesh.v1.Coordinator``
(``servicer``) the server registers the standard health service (SERVING for "" and
"qpumesh.v1.Coordinator") and server reflection.

The server is an asyncio gRPC server on an event-loop thread of its own; unary
handlers run their blocking bodies on ``config.workers`` handler threads, and WatchJob
streams hold no thread, so any number of open streams (up to ``config.max_streams``)
leaves the unary calls answering. With ``config.auth`` an ``AuthInterceptor`` checks
the bearer token of every call but health and reflection; with ``config.tls`` the port
serves TLS only (mutual TLS with a CA).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from qpumesh.coordinator.auth import AuthInterceptor
from qpumesh.coordinator.config import MAX_MESSAGE_BYTES, CoordinatorConfig
from qpumesh.coordinator.executor import Executor
from qpumesh.coordinator.jobs import JobManager
from qpumesh.coordinator.monitoring import CoordinatorMetrics, MeshCollector
from qpumesh.coordinator.servicer import CoordinatorServicer
from qpumesh.coordinator.watch import JobChanges
from qpumesh.coordinator.web.access import TokenAccess
from qpumesh.coordinator.web.http_server import AccessPolicy, DashboardServer
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.channels import bind, listen_address, server_options
from qpumesh.wire.handlers import add_servicer
from qpumesh.wire.port_file import write_port_file
from qpumesh.wire.reflection import enable_reflection
from qpumesh.wire.server_telemetry import AioServerTelemetry

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Coordinator"].full_name

_HANDLER_EXIT_SECONDS = 5.0
"""After the grace period, how long ``stop`` waits for handler threads before closing the store."""


# --------------------------------------------------------------------------- server


class CoordinatorServer:
    """A started coordinator: the asyncio gRPC server on its loop thread, and the job manager.

    ``stop`` stops both: health turns NOT_SERVING, WatchJob streams end, and the job
    manager stops (a running job goes back to QUEUED and resumes on the next start).

    Attributes:
        server: the started gRPC server (lives on ``loop``).
        manager: the job runner.
        health: the health servicer.
        registry: the coordinator's Prometheus metrics.
        http: the dashboard and ``/metrics`` server (None without ``http_port``).
        stopping: set once ``stop`` was called (handlers answer UNAVAILABLE from then on).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        manager: JobManager,
        handlers: ThreadPoolExecutor,
        changes: JobChanges,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.loop = loop
        self.manager = manager
        self.handlers = handlers
        self.changes = changes
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.registry = registry or CollectorRegistry()
        self.http: DashboardServer | None = None
        self.stopping = threading.Event()
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._done = threading.Event()

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stopped (or ``timeout`` passes); True if it stopped."""
        return self._done.wait(timeout)

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop serving and stop the job manager; returns once both are down.

        Order matters: health turns NOT_SERVING and open WatchJob streams are woken
        so they end with UNAVAILABLE; the gRPC server stops (in-flight calls get
        ``grace`` seconds); the running job is interrupted and re-queued; only when
        no handler thread can use it any more is the job store closed.
        """
        with self._stop_lock:
            first = not self._stopped
            self._stopped = True
        if not first:
            self._done.wait()
            return self._done
        self.stopping.set()
        if self.loop.is_running():
            try:
                self._run(self.health.enter_graceful_shutdown(), timeout=5)
            except Exception:  # shutting down anyway
                logger.debug("health shutdown failed", exc_info=True)
            self.changes.notify_all()
        stopped = (
            asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop)
            if self.server is not None and self.loop.is_running()
            else None
        )
        if self.http is not None:
            self.http.stop()
        self.manager.stop()
        if stopped is not None:
            try:
                stopped.result((grace or 0.0) + _HANDLER_EXIT_SECONDS)
            except Exception:
                logger.warning("the gRPC server did not stop within the grace period")
        closer = threading.Thread(target=self.handlers.shutdown, kwargs={"cancel_futures": True}, daemon=True)
        closer.start()
        closer.join(_HANDLER_EXIT_SECONDS)
        if closer.is_alive():
            logger.warning("gRPC handlers still running after the grace period")
        self.manager.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._done.set()
        return self._done


def create_server(
    config: CoordinatorConfig,
    port: int | None = None,
    *,
    executor: Executor | None = None,
    http_policy: AccessPolicy | None = None,
) -> tuple[CoordinatorServer, int]:
    """Build, bind and start a coordinator and its job manager (and HTTP side with ``http_port``).

    Args:
        config: data directory, nodes and server settings.
        port: overrides ``config.port`` when given (0 binds a free port).
        executor: run circuits on this executor instead of the configured one (tests).
        http_policy: who may use the HTTP side (default: everybody reads; see
            ``web.http_server.AccessPolicy``).

    Returns:
        The started server (stop it with ``server.stop(grace)``, which also stops
        the job manager) and the bound port.

    Raises:
        OSError: when the address cannot be bound.
    """
    address = listen_address(config.host, config.port if port is None else port)
    registry = CollectorRegistry()
    manager = JobManager(config, executor=executor, metrics=CoordinatorMetrics(registry))
    registry.register(MeshCollector(manager))
    registry.register(ProcessCollector(registry=None))
    registry.register(PlatformCollector(registry=None))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="qpumesh-coordinator-grpc", daemon=True).start()
    handlers = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="qpumesh-coordinator")
    changes = JobChanges(loop)
    manager.store.add_listener(changes.notify)
    wrapper = CoordinatorServer(loop, manager, handlers, changes, registry)
    servicer = CoordinatorServicer(manager, config, wrapper.stopping, handlers, changes)

    async def build() -> int:
        # Telemetry first: a call refused by authentication is counted with its status.
        interceptors: list[grpc.aio.ServerInterceptor] = [AioServerTelemetry(registry)]  # type: ignore[type-arg]
        if config.auth is not None:
            interceptors.append(AuthInterceptor(config.auth))
        server = grpc.aio.server(interceptors=interceptors, options=server_options(MAX_MESSAGE_BYTES))
        # Requests are decoded in the handlers: bytes that are no message get INVALID_ARGUMENT.
        add_servicer(server, servicer, pb.DESCRIPTOR.services_by_name["Coordinator"])
        health_pb2_grpc.add_HealthServicer_to_server(wrapper.health, server)
        enable_reflection((SERVICE_NAME, health.SERVICE_NAME), server)
        wrapper.server = server
        return bind(server, address, config.tls)

    try:
        bound = wrapper._run(build())
        if config.http_port is not None:
            if http_policy is None and config.auth is not None:
                http_policy = TokenAccess(config.auth)
            wrapper.http = DashboardServer(
                manager, registry, config.host, config.http_port, http_policy, tls=config.tls
            )
    except BaseException:
        if wrapper.server is not None:
            wrapper._run(wrapper.server.stop(None))
        manager.stop()
        loop.call_soon_threadsafe(loop.stop)
        handlers.shutdown(wait=False)
        raise
    manager.start()

    async def start() -> None:
        assert wrapper.server is not None
        await wrapper.server.start()
        for service in ("", SERVICE_NAME):
            await wrapper.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    wrapper._run(start())
    return wrapper, bound


def describe_security(config: CoordinatorConfig) -> str:
    """One line for the start-up log: transport and authentication."""
    tls = config.tls
    if tls is None:
        transport = "plaintext"
    else:
        transport = ("mutual TLS" if tls.mutual else "TLS") + f" ({tls.describe()})"
    auth = f"{len(config.auth)} token(s)" if config.auth is not None else "no authentication"
    root = f"data root {config.data_root}" if config.data_root is not None else "no data root"
    return f"{transport}; {auth}; {root}"


def serve(config: CoordinatorConfig) -> None:
    """Run the coordinator until SIGTERM or SIGINT, then shut it down gracefully.

    On a signal the health status turns NOT_SERVING, WatchJob streams end,
    in-flight calls get ``config.grace_seconds``, and the running job stops at its
    next round and is re-queued (it resumes from its last checkpoint on the next
    start). Must run in the main thread (signal handlers).

    Args:
        config: the coordinator's settings (``config.port_file``: where to write the bound port).
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server, port = create_server(config)
        placement = "in process" if config.in_process else f"on nodes {config.nodes}"
        logger.info(
            "coordinator serving on %s:%d (data dir %s, circuits %s; %s)",
            config.host, port, config.data_dir, placement, describe_security(config),
        )  # fmt: skip
        if config.tls is None and config.host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            logger.warning(
                "serving plaintext on %s: anyone who reaches the port can read the traffic", config.host
            )
        if server.http is not None:
            scheme = "https" if config.tls is not None else "http"
            logger.info(
                "dashboard on %s://%s:%d/ (metrics at /metrics)", scheme, config.host, server.http.port
            )
            if config.http_port_file is not None:
                write_port_file(config.http_port_file, server.http.port)
            if config.auth is None and config.host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
                logger.warning(
                    "the dashboard and /metrics on %s have no --auth-tokens: anyone who reaches the HTTP "
                    "port sees every job and the mesh",
                    config.host,
                )
        if config.port_file is not None:
            write_port_file(config.port_file, port)
        stop.wait()
        server.stop(config.grace_seconds).wait()
        logger.info("coordinator stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
