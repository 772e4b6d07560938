"""What every qpumesh gRPC server reports about its calls: Prometheus metrics and server spans.

``ServerTelemetry`` is a ``grpc.ServerInterceptor`` (``AioServerTelemetry`` its twin for a
``grpc.aio`` server) installed outermost on the node and the coordinator, so it sees every
call with its final status, injected faults included. Per call it

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

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.https import tls_server_class
from qpumesh.wire.tls import TlsConfig
from qpumesh.wire.tracing import enabled, incoming_context, tracer

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
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._handled: dict[tuple[tuple[str, str, str], grpc.StatusCode], Any] = {}

    def series(self, labels: tuple[str, str, str]) -> tuple[Any, Any]:
        """Return the (started counter, duration histogram) of one method, looked up once."""
        found = self._series.get(labels)
        if found is None:
            found = self._series[labels] = (self.started.labels(*labels), self.seconds.labels(*labels))
        return found

    def count_handled(self, labels: tuple[str, str, str], code: grpc.StatusCode) -> None:
        """Count one call of ``labels`` ending with ``code``."""
        child = self._handled.get((labels, code))
        if child is None:
            child = self._handled[labels, code] = self.handled.labels(*labels, code.name)
        child.inc()


class _Call:
    """One call being observed, as a ``with`` block around its handler.

    Counted when created; on leaving the block its status is decided -- the one the
    handler set (``abort``/``set_code``) or OK, CANCELLED for an exception of
    ``cancelled`` (the client went away), else the one set or UNKNOWN -- and counted,
    its duration observed and its span (when traced) ended.
    """

    def __init__(
        self,
        metrics: RpcMetrics,
        labels: tuple[str, str, str],
        context: Any,
        *,
        metadata: Any = None,
        traced: bool = False,
        cancelled: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.metrics, self.labels, self.context, self.cancelled = metrics, labels, context, cancelled
        self.series = metrics.series(labels)
        self.series[0].inc()
        self.start = time.perf_counter()
        self.span: trace.Span | None = None
        self._scope: AbstractContextManager[Any] = nullcontext()
        if traced:
            _, service, method = labels
            self.span = tracer().start_span(
                f"{service}/{method}",
                context=incoming_context(metadata),
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            )
            self._scope = trace.use_span(self.span, end_on_exit=False, record_exception=False)

    def __enter__(self) -> _Call:
        self._scope.__enter__()  # the call's span is current in the handler
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self._scope.__exit__(kind, error, tb)
        if kind is None:
            code = _code(self.context, grpc.StatusCode.OK)
        elif issubclass(kind, self.cancelled):
            code = grpc.StatusCode.CANCELLED
        else:
            code = _code(self.context, grpc.StatusCode.UNKNOWN)
        self.series[1].observe(time.perf_counter() - self.start)
        self.metrics.count_handled(self.labels, code)
        if self.span is not None:
            self.span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code != grpc.StatusCode.OK:
                self.span.set_status(Status(StatusCode.ERROR, code.name))
            self.span.end()


def _rebuilt(handler: Any, unary: Any, server_stream: Any, bidi_stream: Any) -> Any:
    """Return the handler with its behaviour wrapped (client streaming, unused here, passes through)."""
    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(server_stream(handler.unary_stream), **codecs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(bidi_stream(handler.stream_stream), **codecs)
    return handler


class ServerTelemetry(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Metrics for every call, a span for every unary ``qpumesh.v1`` call (a ``grpc.server``).

    Args:
        registry: where the metrics are registered (one registry per server, so several
            servers in one process, as in the tests, keep their counts apart).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.metrics = RpcMetrics(registry)
        # Per method: the handler gRPC found and our wrapper of it, built on its first call
        # (gRPC looks a call's handler up through the interceptors on every call).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # type: ignore[type-arg]

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
        known = self._wrapped.get(full_method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(full_method, handler)
        self._wrapped[full_method] = (handler, wrapped)
        return wrapped

    def _wrap(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        """Return ``handler`` observed: its behaviour wrapped, its codecs kept."""
        service, method = split_method(full_method)
        metrics, traceable = self.metrics, full_method.startswith(TRACED_PREFIX)

        def unary(inner: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            labels = ("unary", service, method)
            started, seconds = metrics.series(labels)

            def observed(request: Any, context: grpc.ServicerContext) -> Any:
                if traceable and enabled():
                    with _Call(metrics, labels, context, metadata=context.invocation_metadata(), traced=True):
                        return inner(request, context)
                # _Call's bookkeeping without a span, written out: this runs on every call.
                started.inc()
                start = time.perf_counter()
                try:
                    reply = inner(request, context)
                except BaseException:
                    seconds.observe(time.perf_counter() - start)
                    metrics.count_handled(labels, _code(context, grpc.StatusCode.UNKNOWN))
                    raise
                seconds.observe(time.perf_counter() - start)
                metrics.count_handled(labels, _code(context, grpc.StatusCode.OK))
                return reply

            return observed

        def streaming(kind: str) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
            def wrap(
                inner: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
            ) -> Callable[..., Iterator[Any]]:
                def observed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    # GeneratorExit: the client went away mid-stream.
                    with _Call(metrics, (kind, service, method), context, cancelled=(GeneratorExit,)):
                        yield from inner(request, context)

                return observed

            return wrap

        return _rebuilt(handler, unary, streaming("server_stream"), streaming("bidi_stream"))  # type: ignore[no-any-return]


class AioServerTelemetry(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """``ServerTelemetry`` for a ``grpc.aio.server``: the same metrics and spans.

    Args:
        registry: where the metrics are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.metrics = RpcMetrics(registry)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        """Wrap the handler of the call; unknown methods pass through (gRPC answers UNIMPLEMENTED)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method
        service, method = split_method(full_method)
        metrics, traced = self.metrics, full_method.startswith(TRACED_PREFIX) and enabled()

        def unary(
            inner: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
        ) -> Callable[..., Any]:
            async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                labels = ("unary", service, method)
                with _Call(metrics, labels, context, metadata=context.invocation_metadata(), traced=traced):
                    return await inner(request, context)

            return observed

        def streaming(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            def wrap(inner: Callable[..., Any]) -> Callable[..., Any]:
                labels = (kind, service, method)
                if not inspect.isasyncgenfunction(inner):  # a coroutine that writes with context.write

                    async def written(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                        with _Call(metrics, labels, context, cancelled=(asyncio.CancelledError,)):
                            return await inner(request, context)

                    return written

                async def observed(
                    request: Any, context: grpc.aio.ServicerContext[Any, Any]
                ) -> AsyncIterator[Any]:
                    with _Call(metrics, labels, context, cancelled=(GeneratorExit, asyncio.CancelledError)):
                        async for reply in inner(request, context):
                            yield reply

                return observed

            return wrap

        return _rebuilt(handler, unary, streaming("server_stream"), streaming("bidi_stream"))  # type: ignore[no-any-return]


def _code(context: Any, default: grpc.StatusCode) -> grpc.StatusCode:
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


def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int, tls: TlsConfig | None = None
) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` (port 0: any free port).

    With ``tls`` it is HTTPS with that certificate, and client certificates are checked
    as on the gRPC port (``qpumesh.wire.https``): a mutual-TLS node's metrics are read
    only by holders of a certificate from its CA (Prometheus is given one).

    Raises:
        OSError: the address cannot be bound.
    """
    address = host.strip("[]") or "::"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server_class = type(
        "_MetricsServer", (tls_server_class(ThreadingWSGIServer, tls),), {"address_family": family}
    )
    httpd: Any = make_server(
        address, port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=httpd.serve_forever, name="qpumesh-metrics", daemon=True)
    thread.start()
    return MetricsServer(port=int(httpd.server_port), _httpd=httpd, _thread=thread)


class _QuietHandler(WSGIRequestHandler):
    """Scrapes are not logged (one every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
