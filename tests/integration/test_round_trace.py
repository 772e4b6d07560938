"""One training round is one trace, across the coordinator's mesh and real node servers.

Three real nodes: A answers, B fails every call (injected UNAVAILABLE), C answers after
600 ms. A round of three tasks routed to B, C and A runs through the job runner's
executor wrapper and the ``MeshExecutor`` with hedging after 150 ms. An in-memory
exporter collects every span of the process (coordinator side and node servers) and the
test checks the tree a tracing backend would show:

    round (job id, round number, tasks)
    ├── task g/0   event failover
    │   ├── qpumesh.v1.QPUNode/ShiftGradient  CLIENT  node B, attempt 1, ERROR UNAVAILABLE
    │   │   └── qpumesh.v1.QPUNode/ShiftGradient  SERVER (node B; event "injected fault": error)
    │   └── qpumesh.v1.QPUNode/ShiftGradient  CLIENT  node A, attempt 2
    │       └── ... SERVER (node A)
    ├── task g/1   event hedge
    │   ├── .../Evaluate  CLIENT  node C           └── SERVER (event "injected fault": delay)
    │   └── .../Evaluate  CLIENT  qpumesh.hedge    └── SERVER
    └── task g/2
        └── .../ShiftGradient  CLIENT  node A      └── SERVER
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from faulty_mesh import make_tasks, start_faulty_node, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from qpumesh.coordinator.jobs import _JobExecutor
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.wire.fault_config import FaultConfig
from qpumesh.wire.tracing import TraceIdFilter, tracer


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _one(spans: list[ReadableSpan], **attributes: Any) -> ReadableSpan:
    found = [s for s in spans if all((s.attributes or {}).get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, (attributes, [s.name for s in spans])
    return found[0]


def test_a_round_is_one_trace_with_retries_and_hedges(
    node_server: Any, exporter: InMemorySpanExporter
) -> None:
    node_a = start_faulty_node(node_server, node_id="node-a")
    node_b = start_faulty_node(node_server, node_id="node-b")
    node_c = start_faulty_node(node_server, node_id="node-c")
    options = PoolOptions(timeout_seconds=10, hedge_after_seconds=0.15, health_interval_seconds=60)
    tasks = make_tasks(3, jacobian_every=2)  # g/0 and g/2 ask for Jacobians (ShiftGradient)
    with MeshExecutor([node_a.address, node_b.address, node_c.address], options) as mesh:
        assert mesh.node_max_qubits() == [20, 20, 20]
        mesh.set_assignment({"g/0": 1, "g/1": 2, "g/2": 0})
        node_b.injector.set_config(FaultConfig(error_rate=1.0))  # after GetInfo: B is in the plan
        node_c.injector.set_config(FaultConfig(latency_ms=600))
        exporter.clear()
        results = _JobExecutor(mesh, lambda: False, job_id="job-1").run_round(tasks)
    assert [r.node for r in results][::2] == [node_a.address, node_a.address]
    wait_until(lambda: len([s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]) >= 5, 5)
    spans = list(exporter.get_finished_spans())

    rounds = [s for s in spans if s.name == "round"]
    assert len(rounds) == 1
    root = rounds[0]
    assert root.parent is None and root.context is not None
    assert dict(root.attributes or {}) == {"qpumesh.job_id": "job-1", "qpumesh.round": 1, "qpumesh.tasks": 3}
    traced = [s for s in spans if s.context is not None and s.context.trace_id == root.context.trace_id]
    assert traced == [s for s in spans if s.name != "GetInfo"]  # every span of the round is in its trace
    task_spans = {s.name: s for s in _children(traced, root)}
    assert set(task_spans) == {"task g/0", "task g/1", "task g/2"}

    # g/0: B refuses (injected UNAVAILABLE), the task fails over to A.
    retried = task_spans["task g/0"]
    assert [e.name for e in retried.events] == ["failover"]
    calls = _children(traced, retried)
    assert all(c.kind == SpanKind.CLIENT and c.name == "qpumesh.v1.QPUNode/ShiftGradient" for c in calls)
    failed = _one(calls, **{"qpumesh.node": node_b.address, "qpumesh.attempt": 1})
    assert failed.status.status_code == StatusCode.ERROR and failed.status.description == "UNAVAILABLE"
    served = _children(traced, failed)
    assert [s.kind for s in served] == [SpanKind.SERVER]
    assert served[0].attributes is not None and served[0].attributes["rpc.grpc.status_code"] == 14
    assert [e.name for e in served[0].events] == ["injected fault"]
    retry = _one(calls, **{"qpumesh.node": node_a.address, "qpumesh.attempt": 2})
    assert retry.status.status_code != StatusCode.ERROR
    assert [s.name for s in _children(traced, retry)] == ["qpumesh.v1.QPUNode/ShiftGradient"]

    # g/1: C is silent for 600 ms, a hedge goes to another node.
    hedged = task_spans["task g/1"]
    assert "hedge" in [e.name for e in hedged.events]
    calls = _children(traced, hedged)
    primary = _one(calls, **{"qpumesh.node": node_c.address, "qpumesh.hedge": False})
    hedge = _one(calls, **{"qpumesh.hedge": True})
    assert hedge.attributes is not None and hedge.attributes["qpumesh.node"] != node_c.address
    assert primary.end_time is not None and hedge.start_time is not None and primary.start_time is not None
    assert hedge.start_time - primary.start_time >= 140_000_000  # ns: hedged after ~150 ms
    slow = [s for s in _children(traced, primary) if s.kind == SpanKind.SERVER]
    assert slow and [e.name for e in slow[0].events] == ["injected fault"]

    # g/2: one call to A, served by A.
    plain = _children(traced, task_spans["task g/2"])
    assert [(c.attributes or {}).get("qpumesh.node") for c in plain] == [node_a.address]
    assert [s.kind for s in _children(traced, plain[0])] == [SpanKind.SERVER]


def test_log_lines_carry_the_trace_id(exporter: InMemorySpanExporter) -> None:
    record = logging.LogRecord("qpumesh.test", logging.INFO, __file__, 1, "inside", None, None)
    outside = logging.LogRecord("qpumesh.test", logging.INFO, __file__, 1, "outside", None, None)
    with tracer().start_as_current_span("work") as span:
        TraceIdFilter().filter(record)
    TraceIdFilter().filter(outside)
    assert record.trace_id == trace.format_trace_id(span.get_span_context().trace_id)
    assert outside.trace_id == "-"
