"""The QPU node's gRPC edge: servicer, health, reflection, start-up and shutdown.

Everything quantum happens in ``NodeCore``; this module only decodes messages with
``qpumesh.wire``, runs the core inside a bounded number of execution slots, encodes the
replies and translates domain exceptions into status codes. Requests are decoded inside
the handlers (``qpumesh.wire.handlers``): bytes that are no message are INVALID_ARGUMENT,
and a message with more fields than ``limits.MAX_REQUEST_FIELDS`` is refused before it is
parsed. At most ``workers + max_queued_requests`` simulation requests are admitted at once
(``Admission``); more are refused at once with RESOURCE_EXHAUSTED, so health checks and
GetInfo always find a thread. A request whose caller cancels or whose deadline passes
stops at the engines' next chunk of rows (``qpumesh.node.cancellation``). ``create_server`` builds
and starts a server (tests bind port 0 and read the real port from its result);
``serve`` runs one until SIGTERM/SIGINT and shuts it down gracefully.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.registry import Collector

from qpumesh.node.admission import Admission, decode_request
from qpumesh.node.cancellation import WorkAbandoned, forget_caller, watch_caller
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeCore
from qpumesh.node.errors import InvalidRequest, LimitExceeded, NodeError, PreconditionFailed, UnknownCircuit
from qpumesh.node.metrics import NodeMetrics
from qpumesh.node.request_fields import check_evaluate, check_shift_gradient
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire import node_calls
from qpumesh.wire.channels import bind, server_options
from qpumesh.wire.circuits import PauliTerms, observables_from_proto
from qpumesh.wire.handlers import add_servicer
from qpumesh.wire.node_calls import FloatArray
from qpumesh.wire.port_file import write_port_file
from qpumesh.wire.reflection import enable_reflection
from qpumesh.wire.server_telemetry import MetricsServer, ServerTelemetry, start_metrics_server
from qpumesh.wire.status import StatusMap, abort, status_of
from qpumesh.wire.tensors import fill_tensor, from_tensor

logger = logging.getLogger(__name__)

_Reply = TypeVar("_Reply")

SERVICE = pb.DESCRIPTOR.services_by_name["QPUNode"]
SERVICE_NAME: str = SERVICE.full_name
"""Fully qualified name of the node service, ``qpumesh.v1.QPUNode``."""

# gRPC threads beyond the admitted requests (executing or queued for a slot): they keep
# GetInfo and health checks answering, and refuse requests beyond the queue, while every
# admitted request holds a thread.
_SPARE_THREADS = 8

ServiceAdder = Callable[[grpc.Server], None]
"""Registers one more service on a server (e.g. an admin service), before it starts."""


_Request = TypeVar("_Request", pb.EvaluateRequest, pb.ShiftGradientRequest)
_Body = Callable[[Any, _Request, grpc.ServicerContext, FloatArray, list[PauliTerms]], _Reply]
_Handler = Callable[[Any, _Request, grpc.ServicerContext], _Reply]


def _simulation(
    method: str, check: Callable[[_Request], None]
) -> Callable[[_Body[_Request, _Reply]], _Handler[_Request, _Reply]]:
    """Wrap a simulation RPC's body in the edge they share.

    The request is admitted (or refused at once: node busy), its work stops when the caller
    goes away, its required fields are checked (``check`` names a missing one), its rows and
    observables are decoded for the body, and any exception becomes its ``STATUSES`` code
    (as ``qpumesh.wire.status.answer`` does; written out here, with no closure or context
    manager per call, because it runs on every call).
    """

    def decorate(body: _Body[_Request, _Reply]) -> _Handler[_Request, _Reply]:
        @functools.wraps(body)
        def handler(self: QPUNodeServicer, request: _Request, context: grpc.ServicerContext) -> _Reply:
            admission = self._admission
            try:
                admission.enter()
                try:
                    watching = watch_caller(context.is_active)
                    try:
                        check(request)
                        values = from_tensor(request.params.values, "params.values")
                        observables = observables_from_proto(request.observables)
                        return body(self, request, context, values, observables)
                    finally:
                        forget_caller(watching)
                finally:
                    admission.leave()
            except Exception as error:  # the servicer edge: nothing may escape unmapped
                abort(context, *status_of(method, error, STATUSES))

        return handler

    return decorate


def _sampling(request: pb.EvaluateRequest | pb.ShiftGradientRequest) -> dict[str, int | None]:
    """Return the request's ``shots`` and ``seed`` (None when unset: the node's defaults)."""
    return {
        "shots": request.shots if request.HasField("shots") else None,
        "seed": request.seed if request.HasField("seed") else None,
    }


_METHOD_NAMES = {value: node_calls.method_name(value) for value in pb.GradientMethod.values()}
_METHOD_VALUES = {name: node_calls.gradient_method(name) for name in _METHOD_NAMES.values()}


class QPUNodeServicer(pb_grpc.QPUNodeServicer):  # type: ignore[misc]
    """Implements ``qpumesh.v1.QPUNode`` on top of a ``NodeCore``.

    Args:
        core: the node's domain core (thread-safe).
        workers: execution slots, i.e. how many requests may simulate concurrently.
        max_queued: requests that may wait for a slot; more are refused (RESOURCE_EXHAUSTED).
        metrics: where answered requests are counted (None: nowhere).
    """

    def __init__(
        self, core: NodeCore, workers: int, max_queued: int = 64, metrics: NodeMetrics | None = None
    ) -> None:
        self._core = core
        self._slots = threading.BoundedSemaphore(workers)
        self._admission = Admission(workers, max_queued)
        self._metrics = metrics

    def GetInfo(  # noqa: N802 (name fixed by the proto)
        self, request: pb.GetInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetInfoResponse:
        """Describe the node: engine, limits, noise, supported gates."""
        info = self._core.info()
        noise = info.noise
        return pb.GetInfoResponse(
            node_id=info.node_id,
            backend=info.backend,
            max_qubits=info.max_qubits,
            supported_gates=list(info.supported_gates),
            noise=pb.NoiseProfile(
                depolarizing_1q=noise.depolarizing_1q,
                depolarizing_2q=noise.depolarizing_2q,
                readout_error=noise.readout_error,
                method=noise.method if noise.has_gate_noise else "none",
                mitigation=info.mitigation,
            ),
            default_shots=info.default_shots,
            version=info.version,
            max_batch_rows=info.max_batch_rows,
            max_message_bytes=info.max_message_bytes,
            hardware=info.hardware,
        )

    @_simulation("Evaluate", check_evaluate)
    def Evaluate(  # noqa: N802 (name fixed by the proto)
        self,
        request: pb.EvaluateRequest,
        context: grpc.ServicerContext,
        values: FloatArray,
        observables: list[PauliTerms],
    ) -> pb.EvaluateResponse:
        """Return the expectation values of every observable for every parameter row."""
        waited_from = time.perf_counter()
        started = self._take_slot(context, waited_from)
        try:
            result = self._core.evaluate(
                request.circuit.hash,
                request.circuit.cirq_json or None,
                observables,
                list(request.params.symbols),
                values,
                **_sampling(request),
            )
        finally:
            timings = self._give_slot(waited_from, started)
        response = pb.EvaluateResponse(
            timings=timings,
            backend=result.backend,
            hardware_seconds=result.hardware_seconds,
            executions=result.executions,
            shots=result.shots,
        )
        fill_tensor(response.expectations, result.expectations)
        if result.standard_errors is not None:
            fill_tensor(response.standard_errors, result.standard_errors)
        self._observe("Evaluate", timings, len(values), result.executions, result.shots)
        return response

    @_simulation("ShiftGradient", check_shift_gradient)
    def ShiftGradient(  # noqa: N802 (name fixed by the proto)
        self,
        request: pb.ShiftGradientRequest,
        context: grpc.ServicerContext,
        values: FloatArray,
        observables: list[PauliTerms],
    ) -> pb.ShiftGradientResponse:
        """Return Jacobians (or vector-Jacobian products) for every row, by shift rule or adjoint."""
        cotangents = from_tensor(request.cotangents, "cotangents") if request.HasField("cotangents") else None
        method = _METHOD_NAMES.get(request.method) or node_calls.method_name(request.method)
        waited_from = time.perf_counter()
        started = self._take_slot(context, waited_from)
        try:
            result = self._core.shift_gradient(
                request.circuit.hash,
                request.circuit.cirq_json or None,
                observables,
                list(request.params.symbols),
                values,
                wrt=tuple(request.wrt),
                cotangents=cotangents,
                include_values=request.include_values,
                method=method,
                **_sampling(request),
            )
        finally:
            timings = self._give_slot(waited_from, started)
        response = pb.ShiftGradientResponse(
            timings=timings,
            backend=result.backend,
            wrt=result.wrt,
            method=_METHOD_VALUES[result.method],
            shift_rule_executions=result.shift_rule_executions,
            shift_rule_shots=result.shift_rule_shots,
            hardware_seconds=result.hardware_seconds,
        )
        fill_tensor(response.jacobian, result.jacobian)
        if result.expectations is not None:
            fill_tensor(response.expectations, result.expectations)
        self._observe(
            "ShiftGradient", timings, len(values), result.shift_rule_executions, result.shift_rule_shots
        )
        return response

    def _observe(self, method: str, timings: pb.Timings, rows: int, executions: int, shots: int) -> None:
        if self._metrics is not None:
            self._metrics.observe(
                method,
                queue=timings.queue_seconds,
                execute=timings.execute_seconds,
                rows=rows,
                executions=executions,
                shots=shots,
            )

    def _take_slot(self, context: grpc.ServicerContext, waited_from: float) -> float:
        """Take one execution slot (waiting for one if none is free); return when it was taken.

        Give it back with ``_give_slot``.

        Raises:
            CallerGoneError: the caller cancelled or its deadline passed while it waited, so
                the slot goes to the next request instead of to work nobody will read.
        """
        slots, metrics = self._slots, self._metrics
        if not slots.acquire(blocking=False):  # none free: the request waits, and is counted as waiting
            if metrics is not None:
                metrics.waiting.inc()
            try:
                slots.acquire()
            finally:
                if metrics is not None:
                    metrics.waiting.dec()
        if not context.is_active():
            slots.release()
            waited = time.perf_counter() - waited_from
            raise CallerGoneError(f"the caller gave up after {waited:.3f} s in the queue")
        started = time.perf_counter()
        if metrics is not None:
            metrics.executing.inc()
        return started

    def _give_slot(self, waited_from: float, started: float) -> pb.Timings:
        """Give back the slot ``_take_slot`` took at ``started``; return the request's timings."""
        execute = time.perf_counter() - started
        timings = pb.Timings(queue_seconds=started - waited_from, execute_seconds=execute)
        if self._metrics is not None:
            self._metrics.executing.dec()
        self._slots.release()
        return timings


class CallerGoneError(Exception):
    """The RPC was cancelled or timed out before it got an execution slot."""


STATUSES = StatusMap(
    ((CallerGoneError, WorkAbandoned), grpc.StatusCode.CANCELLED),
    # Every bound is checked before the work; a MemoryError is the machine, not the request
    # format: it will not fail the same way on a node with more memory or a smaller batch.
    (MemoryError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UnknownCircuit, grpc.StatusCode.NOT_FOUND),
    (LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PreconditionFailed, grpc.StatusCode.FAILED_PRECONDITION),
    # InvalidRequest and the wire decoders' ValueError: the request is wrong and will fail
    # again unchanged, so it must never be retried.
    ((InvalidRequest, NodeError, ValueError), grpc.StatusCode.INVALID_ARGUMENT),
)
"""The node's domain errors and their status codes; anything else is INTERNAL (a node bug)."""


@dataclass(frozen=True)
class RunningNode:
    """A started node server and the pieces ``serve`` needs to shut it down.

    Attributes:
        server: the started gRPC server.
        port: the port actually bound (the chosen one when the config asked for 0).
        health: the health servicer, flipped to NOT_SERVING on shutdown.
        core: the node's domain core.
        registry: the node's Prometheus metrics.
        metrics: the ``/metrics`` HTTP server (None without ``metrics_port``).
    """

    server: grpc.Server
    port: int
    health: health.HealthServicer
    core: NodeCore
    registry: CollectorRegistry
    metrics: MetricsServer | None = None

    def stop(self, grace: float | None) -> None:
        """Stop the gRPC server (in-flight calls get ``grace`` seconds) and the metrics server."""
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.stop()


def start_node(
    config: ServerConfig,
    *,
    interceptors: Sequence[grpc.ServerInterceptor[Any, Any]] = (),
    extra_services: Sequence[ServiceAdder] = (),
    extra_service_names: Sequence[str] = (),
    collectors: Sequence[Collector] = (),
) -> RunningNode:
    """Build, bind and start a node server (and its ``/metrics`` with ``config.metrics_port``).

    See ``create_server``; ``collectors`` are registered in the node's metrics registry.
    """
    core = NodeCore(config.node)
    core.warm_up()  # compile the engine's kernels before serving, not on the first request
    registry = CollectorRegistry()
    for collector in (ProcessCollector(registry=None), PlatformCollector(registry=None), *collectors):
        registry.register(collector)
    metrics = NodeMetrics(registry, core, config.workers)
    threads = config.workers + config.max_queued_requests + _SPARE_THREADS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"qpu-node-{config.node.node_id}"),
        # Telemetry outermost: it sees every call's final status, injected faults included.
        interceptors=[ServerTelemetry(registry), *interceptors],
        options=server_options(config.node.max_message_bytes),
    )
    servicer = QPUNodeServicer(core, config.workers, config.max_queued_requests, metrics)
    add_servicer(server, servicer, SERVICE, decode_request)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for add_service in extra_services:
        add_service(server)
    enable_reflection((SERVICE_NAME, health.SERVICE_NAME, *extra_service_names), server)

    port = bind(server, config.bind_address, config.tls)
    metrics_server = None
    try:
        if config.metrics_port is not None:
            metrics_server = start_metrics_server(registry, config.host, config.metrics_port, config.tls)
    except OSError:
        server.stop(None)
        raise
    server.start()
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningNode(
        server=server, port=port, health=health_servicer, core=core, registry=registry, metrics=metrics_server
    )


def create_server(
    config: ServerConfig,
    *,
    interceptors: Sequence[grpc.ServerInterceptor[Any, Any]] = (),
    extra_services: Sequence[ServiceAdder] = (),
    extra_service_names: Sequence[str] = (),
    collectors: Sequence[Collector] = (),
) -> tuple[grpc.Server, int]:
    """Build, bind and start a node server.

    Registers the ``QPUNode`` service, the standard health service (SERVING for ""
    and ``qpumesh.v1.QPUNode``) and server reflection (v1 and v1alpha). Use
    ``start_node`` to also get the metrics registry and ``/metrics`` server.

    Args:
        config: server and node settings; ``config.port == 0`` binds a free port.
        interceptors: server interceptors, outermost first (e.g. fault injection).
        extra_services: callables that each add one more service to the server.
        extra_service_names: full names of those services, listed by reflection.
        collectors: extra Prometheus collectors (e.g. the fault injector's).

    Returns:
        The started server (stop it with ``server.stop(grace)``) and the bound port.

    Raises:
        OSError: when the address cannot be bound.
    """
    node = start_node(
        config,
        interceptors=interceptors,
        extra_services=extra_services,
        extra_service_names=extra_service_names,
        collectors=collectors,
    )
    return node.server, node.port


def serve(
    config: ServerConfig,
    *,
    interceptors: Sequence[grpc.ServerInterceptor[Any, Any]] = (),
    extra_services: Sequence[ServiceAdder] = (),
    extra_service_names: Sequence[str] = (),
    collectors: Sequence[Collector] = (),
) -> None:
    """Run a node until SIGTERM or SIGINT, then shut it down gracefully.

    On a signal the health status turns NOT_SERVING, new requests are refused and
    in-flight ones get ``config.grace_seconds`` to finish. Must run in the main thread
    (signal handlers).

    Args:
        config: server and node settings.
        interceptors: see ``create_server``.
        extra_services: see ``create_server``.
        extra_service_names: see ``create_server``.
        collectors: see ``create_server``.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    import torch

    # Process-wide, so set here rather than in create_server (which tests and benchmarks
    # run inside processes of their own).
    torch.set_num_threads(config.torch_threads)
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        node = start_node(
            config,
            interceptors=interceptors,
            extra_services=extra_services,
            extra_service_names=extra_service_names,
            collectors=collectors,
        )
        info = node.core.info()
        try:
            logger.info(
                "QPU node %s serving on %s:%d (backend %s, %d qubits max, %d worker(s), %d torch thread(s), "
                "noise: %s; %s)",
                info.node_id,
                config.host,
                node.port,
                info.backend,
                info.max_qubits,
                config.workers,
                config.torch_threads,
                info.noise.describe(),
                config.transport,
            )
            if node.metrics is not None:
                scheme = "https" if config.tls is not None else "http"
                logger.info("metrics on %s://%s:%d/metrics", scheme, config.host, node.metrics.port)
            if config.port_file is not None:
                # The local mesh launcher starts nodes on port 0 and reads the port from there.
                write_port_file(config.port_file, node.port)
            stop.wait()
        finally:
            node.health.enter_graceful_shutdown()
            node.stop(config.grace_seconds)
            logger.info("QPU node %s stopped", info.node_id)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
