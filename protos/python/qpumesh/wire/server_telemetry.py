"""What every qpumesh gRPC server reports about its calls: Prometheus metrics and server spans.

``ServerTelemetry`` is a ``grpc.ServerInterceptor`` installed outermost on the node and the
coordinator, so it sees every call with its final status, injected faults included. Per
call it

- counts it and its status code, and observes its duration, under the metric names of
  go-grpc-prometheus (``grpc_server_started_total``, ``grpc_server_handled_total``,
  ``grpc_server_handling_seconds``; labels ``grpc_type``, ``grpc_service``,
  ``grpc_method``, ``grpc_code``), which existing Grafana boards understand;
- for the unary RPCs of ``qpumesh.v1`` services, opens a SERVER span named
  ``<service>/<method>`` under the trace context the caller sent (``traceparent``
  metadata, see ``qpumesh.wire.tracing``), with the status code as ``rpc.grpc.status_code``.
  Health checks and reflection get metrics but no spans.

The method names come from the call (``/package.Service/Method``), never from strings
written here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.tracing import incoming_context, tracer

TRACED_PREFIX = f"/{pb.DESCRIPTOR.package}."
"""Calls of services in the ``qpumesh.v1`` package get a server span."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; node calls of a small QLSTM take ~1-20 ms, injected latencies up to seconds."""

_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def split_method(full_method: str) -> tuple[str, str]:
    """Split ``/package.Service/Method`` into ``("package.Service", "Method")``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class RpcMetrics:
    """The per-RPC metrics of one server, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server.", _LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code (injected faults included).",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the call's arrival to its reply (queue wait and injected delays included).",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class ServerTelemetry(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Metrics for every call, a span for every unary ``qpumesh.v1`` call.

    Args:
        registry: where the metrics are registered (one registry per server, so several
            servers in one process, as in the tests, keep their counts apart).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.metrics = RpcMetrics(registry)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        """Wrap the handler of the call; unknown methods pass through (gRPC answers UNIMPLEMENTED)."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        full_method = handler_call_details.method
        service, method = split_method(full_method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, full_method, service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, "server_stream", service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, "bidi_stream", service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client streaming: qpumesh has none

    def _unary(
        self, inner: Callable[[Any, grpc.ServicerContext], Any], full_method: str, service: str, method: str
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        labels = ("unary", service, method)
        started = self.metrics.started.labels(*labels)
        seconds = self.metrics.seconds.labels(*labels)
        handled = self.metrics.handled
        traced = full_method.startswith(TRACED_PREFIX)
        span_name = f"{service}/{method}"

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            started.inc()
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            span = (
                tracer().start_span(
                    span_name,
                    context=incoming_context(context.invocation_metadata()),
                    kind=SpanKind.SERVER,
                    attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
                )
                if traced
                else None
            )
            try:
                if span is None:
                    reply = inner(request, context)
                else:
                    with trace.use_span(span, end_on_exit=False, record_exception=False):
                        reply = inner(request, context)
                code = _code(context, grpc.StatusCode.OK)
                return reply
            except BaseException:
                code = _code(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                seconds.observe(time.perf_counter() - start)
                handled.labels(*labels, code.name).inc()
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code != grpc.StatusCode.OK:
                        span.set_status(Status(StatusCode.ERROR, code.name))
                    span.end()

        return observed

    def _streaming(
        self,
        inner: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
        kind: str,
        service: str,
        method: str,
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        labels = (kind, service, method)
        started = self.metrics.started.labels(*labels)
        seconds = self.metrics.seconds.labels(*labels)
        handled = self.metrics.handled

        def observed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started.inc()
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                yield from inner(request, context)
                code = _code(context, grpc.StatusCode.OK)
            except GeneratorExit:
                code = grpc.StatusCode.CANCELLED  # the client went away mid-stream
                raise
            except BaseException:
                code = _code(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                seconds.observe(time.perf_counter() - start)
                handled.labels(*labels, code.name).inc()

        return observed


def _code(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """Return the status the handler set (``abort``/``set_code``), else ``default``."""
    code_of = getattr(context, "code", None)
    code = code_of() if callable(code_of) else None
    return code if isinstance(code, grpc.StatusCode) else default


@dataclass(frozen=True)
class MetricsServer:
    """A running ``/metrics`` HTTP endpoint (prometheus-client's server, in a daemon thread).

    Attributes:
        port: the bound port (the chosen one when 0 was asked for).
    """

    port: int
    _httpd: Any
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` (port 0: any free port).

    Raises:
        OSError: the address cannot be bound.
    """
    httpd, thread = start_http_server(port, addr=host.strip("[]") or "::", registry=registry)
    return MetricsServer(port=int(httpd.server_port), _httpd=httpd, _thread=thread)
