"""``AioServerTelemetry`` on a ``grpc.aio`` server: the same metrics and spans as on a thread-pool server.

(The coordinator may move to ``grpc.aio``; its telemetry must not change when it does.)
A real aio server with the health service and a ``qpumesh.v1.Coordinator`` servicer that
answers ``ListNodes``; the calls' counts, codes and durations must be in the registry, and
the qpumesh call must be a SERVER span under the caller's trace.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_aio_channel
from qpumesh.wire.server_telemetry import AioServerTelemetry
from qpumesh.wire.tracing import outgoing_metadata, tracer


class _Coordinator(pb_grpc.CoordinatorServicer):  # type: ignore[misc]
    async def ListNodes(self, request: Any, context: Any) -> pb.ListNodesResponse:
        return pb.ListNodesResponse()

    async def GetJob(self, request: Any, context: Any) -> pb.Job:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such job")
        raise AssertionError


def test_aio_telemetry_counts_codes_and_traces() -> None:
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    registry = CollectorRegistry()

    async def scenario() -> str:
        server = grpc.aio.server(interceptors=[AioServerTelemetry(registry)])
        health = health_aio.HealthServicer()
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        pb_grpc.add_CoordinatorServicer_to_server(_Coordinator(), server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with open_aio_channel(f"127.0.0.1:{port}") as channel:
                checks = health_pb2_grpc.HealthStub(channel)
                await checks.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                try:
                    await checks.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
                with tracer().start_as_current_span("caller") as caller:
                    await stub.ListNodes(pb.ListNodesRequest(), timeout=5, metadata=outgoing_metadata())
                    try:
                        await stub.GetJob(pb.GetJobRequest(job_id="x"), timeout=5)
                    except grpc.aio.AioRpcError as error:
                        assert error.code() == grpc.StatusCode.NOT_FOUND
                return trace.format_trace_id(caller.get_span_context().trace_id)
        finally:
            await server.stop(None)

    trace_id = asyncio.run(scenario())

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    health = {"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
    assert value("grpc_server_started_total", **health) == 2
    assert value("grpc_server_handled_total", grpc_code="OK", **health) == 1
    assert value("grpc_server_handled_total", grpc_code="NOT_FOUND", **health) == 1
    assert value("grpc_server_handling_seconds_count", **health) == 2
    job = {"grpc_type": "unary", "grpc_service": "qpumesh.v1.Coordinator", "grpc_method": "GetJob"}
    assert value("grpc_server_handled_total", grpc_code="NOT_FOUND", **job) == 1
    spans = [s for s in memory.get_finished_spans() if s.kind == SpanKind.SERVER]
    names = sorted(s.name for s in spans)
    assert names == ["qpumesh.v1.Coordinator/GetJob", "qpumesh.v1.Coordinator/ListNodes"]  # no health spans
    listed = next(s for s in spans if s.name.endswith("ListNodes"))
    assert listed.context is not None and trace.format_trace_id(listed.context.trace_id) == trace_id
