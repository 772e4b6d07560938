"""OpenTelemetry tracing shared by the node and the coordinator: set-up, propagation, logs.

Every service calls ``configure_tracing(service_name)`` once at start-up. It reads the
standard ``OTEL_*`` variables: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, or ``OTEL_TRACES_EXPORTER=otlp``, spans are
batched to that OTLP/gRPC collector; ``OTEL_TRACES_EXPORTER=console`` prints them;
``none`` or nothing set leaves tracing off: qpumesh then skips its spans altogether
(``span`` and ``outgoing_metadata`` check ``enabled`` first). ``OTEL_SERVICE_NAME``
overrides the service name, ``OTEL_RESOURCE_ATTRIBUTES`` adds attributes, as everywhere else.

The trace context crosses processes as W3C ``traceparent`` gRPC metadata
(``outgoing_metadata`` on the caller, ``incoming_context`` on the server), so one
training round is one trace: the coordinator's round span, a span per task and per
node call, and each node's server span under the call that reached it.

``TraceIdFilter`` puts the current trace id into every log record (``%(trace_id)s``,
``-`` outside a span), so a log line can be looked up in the tracing backend.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context, propagate, trace

TRACER_NAME = "qpumesh"
"""Instrumentation scope of every qpumesh span."""

_OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace %(trace_id)s]: %(message)s"
"""The services' log format: the trace id of the span the line was logged in."""


@functools.cache
def tracer() -> trace.Tracer:
    """Return the qpumesh tracer (a no-op tracer until a provider is configured).

    Cached: the API's proxy tracer forwards to a provider installed later, so it is fetched once.
    """
    return trace.get_tracer(TRACER_NAME)


def enabled() -> bool:
    """Whether a tracer provider is installed (else spans are skipped: no cost per call)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def span(name: str, **options: Any) -> AbstractContextManager[trace.Span]:
    """``tracer().start_as_current_span(name, **options)``, or the invalid span when tracing is off.

    The invalid span takes events, attributes and statuses and drops them, so callers never
    check whether tracing is on.
    """
    if not enabled():
        return nullcontext(trace.INVALID_SPAN)
    return tracer().start_as_current_span(name, **options)


def exporter_choice(environ: Mapping[str, str]) -> str:
    """Return which exporter the ``OTEL_*`` variables ask for: "otlp", "console" or "none".

    Raises:
        ValueError: ``OTEL_TRACES_EXPORTER`` names an exporter qpumesh does not ship.
    """
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        return "otlp" if any(environ.get(name, "").strip() for name in _OTLP_ENDPOINT_VARIABLES) else "none"
    if chosen not in ("otlp", "console", "none"):
        raise ValueError(
            f"OTEL_TRACES_EXPORTER={chosen!r} is not available in qpumesh; use otlp, console or none"
        )
    return chosen


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider with the exporter the ``OTEL_*`` variables ask for.

    Args:
        service_name: ``service.name`` of the spans unless ``OTEL_SERVICE_NAME`` is set.
        environ: the environment (default ``os.environ``).

    Returns:
        Whether spans are now exported.

    Raises:
        ValueError: an unknown ``OTEL_TRACES_EXPORTER``.
    """
    environ = os.environ if environ is None else environ
    choice = exporter_choice(environ)
    if choice == "none":
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (which wins).
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter: SpanExporter
    if choice == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, TLS from the OTEL_EXPORTER_OTLP_* variables
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def shutdown_tracing() -> None:
    """Flush and stop the installed provider (spans still buffered are exported)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def outgoing_metadata(metadata: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Return ``metadata`` plus the current trace context (``traceparent``), for a gRPC call."""
    if not enabled():
        return list(metadata)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [*metadata, *carrier.items()]


def incoming_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> context.Context:
    """Return the trace context a caller sent in its gRPC metadata (empty when none)."""
    carrier = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    return propagate.extract(carrier)


def trace_id() -> str:
    """Return the current span's trace id as 32 hex digits, or "-" outside a recorded span."""
    span_context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(span_context.trace_id) if span_context.is_valid else "-"


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` (``trace_id()``) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record; never drops one."""
        record.trace_id = trace_id()
        return True


def configure_logging(level: int | str) -> None:
    """Set up the root logger with ``LOG_FORMAT``: every line carries its trace id."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TraceIdFilter) for f in handler.filters):
            handler.addFilter(TraceIdFilter())
