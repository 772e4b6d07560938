"""What the observability hooks cost per call, without an exporter configured (the default).

Times, in one process and one run (medians of 7 repeats of N calls):
- a unary handler called directly, and through ``ServerTelemetry`` for a non-traced method
  (metrics only) and a ``qpumesh.v1`` method (metrics + a no-op server span + metadata
  extraction);
- a client-side call span plus ``outgoing_metadata()`` (what ``mesh.dispatch`` adds per
  node call, and ``jobs`` per round); without a tracer provider both are skipped.

    python benchmarks/bench_telemetry.py [--calls N]

Compare the per-call microseconds with a node call (~1-20 ms for a QLSTM sub-circuit,
docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from qpumesh.v1 import qpu_node_pb2
from qpumesh.wire.server_telemetry import ServerTelemetry
from qpumesh.wire.tracing import outgoing_metadata, span

NODE_SERVICE = qpu_node_pb2.DESCRIPTOR.services_by_name["QPUNode"].full_name


class _Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "bench"),)

    def code(self) -> None:
        return None


def _handler(request: Any, context: Any) -> Any:
    return request


def _wrapped(method: str) -> Any:
    telemetry = ServerTelemetry(CollectorRegistry())
    details: Any = types.SimpleNamespace(method=method, invocation_metadata=())
    handler = telemetry.intercept_service(lambda _: grpc.unary_unary_rpc_method_handler(_handler), details)
    assert handler is not None
    return handler.unary_unary


def _per_call_us(function: Any, calls: int) -> float:
    context = _Context()
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            function(b"", context)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def _client_span(request: Any, context: Any) -> Any:
    with span("qpumesh.v1.QPUNode/Evaluate"):
        return outgoing_metadata()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    rows = [
        ("handler alone", _handler),
        ("ServerTelemetry, metrics only (health)", _wrapped("/grpc.health.v1.Health/Check")),
        ("ServerTelemetry, metrics + span (QPUNode)", _wrapped(f"/{NODE_SERVICE}/Evaluate")),
        ("client span + traceparent metadata", _client_span),
    ]
    for name, function in rows:
        micros = _per_call_us(function, args.calls)
        print(f"{name:45s} {micros:7.2f} µs/call")


if __name__ == "__main__":
    main()
