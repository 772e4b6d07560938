"""What a QPU node tells Prometheus (``--metrics-port``), next to the per-RPC ``grpc_server_*``.

``NodeMetrics`` holds the node's own series in the server's registry:

- ``qpumesh_node_queue_seconds{method}``, ``qpumesh_node_execute_seconds{method}``:
  histograms of the time a request waited for an execution slot and then ran;
- ``qpumesh_node_executing`` / ``qpumesh_node_waiting``: requests holding / waiting for a
  slot now; ``qpumesh_node_execution_slots``: the slots;
- ``qpumesh_node_circuit_executions_total{method}``, ``qpumesh_node_shots_total{method}``:
  what the answered requests would cost a hardware QPU -- Evaluate one execution per
  parameter row, ShiftGradient the parameter-shift rule's executions
  (``shift_rule_executions``) whichever method ran; shots = executions x shots x measured
  terms (0 for exact requests);
- ``qpumesh_node_parameter_rows_total{method}``;
- ``qpumesh_node_circuit_cache_lookups_total{result="hit|miss|not_found"}`` and
  ``qpumesh_node_circuit_cache_size``, read from the core at scrape time;
- ``qpumesh_node_info{node_id,backend,version}`` (always 1) and ``qpumesh_node_max_qubits``.

The injected faults come from ``fault_injection.FaultCollector``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from qpumesh.node.core import NodeCore
from qpumesh.wire.server_telemetry import LATENCY_BUCKETS


class NodeMetrics:
    """The node's series, registered in ``registry``.

    Args:
        registry: the node server's registry.
        core: the node's core (identity, circuit cache).
        workers: execution slots.
    """

    def __init__(self, registry: CollectorRegistry, core: NodeCore, workers: int) -> None:
        method = ("method",)
        self.queue_seconds = Histogram(
            "qpumesh_node_queue_seconds", "Time a request waited for an execution slot.", method,
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.execute_seconds = Histogram(
            "qpumesh_node_execute_seconds", "Time a request held its execution slot (simulation).", method,
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.executing = Gauge(
            "qpumesh_node_executing", "Requests holding an execution slot.", registry=registry
        )
        self.waiting = Gauge(
            "qpumesh_node_waiting", "Requests waiting for an execution slot.", registry=registry
        )
        Gauge("qpumesh_node_execution_slots", "Concurrent execution slots.", registry=registry).set(workers)
        self.executions = Counter(
            "qpumesh_node_circuit_executions",
            "Circuit executions the answered requests take on hardware (Evaluate: one per row; "
            "ShiftGradient: the parameter-shift rule's count, whichever method ran).",
            method, registry=registry,
        )  # fmt: skip
        self.shots = Counter(
            "qpumesh_node_shots",
            "Shots of those executions (0 for exact requests).",
            method,
            registry=registry,
        )
        self.rows = Counter(
            "qpumesh_node_parameter_rows",
            "Parameter rows of the answered requests.",
            method,
            registry=registry,
        )
        registry.register(_CoreCollector(core))
        self._children: dict[str, tuple[Any, ...]] = {}

    def observe(
        self, method: str, *, queue: float, execute: float, rows: int, executions: int, shots: int
    ) -> None:
        """Record one answered request."""
        children = self._children.get(method)
        if children is None:  # looked up once per method: labels() takes a lock and a dict lookup
            families = (self.queue_seconds, self.execute_seconds, self.rows, self.executions, self.shots)
            children = self._children[method] = tuple(family.labels(method) for family in families)
        queue_seconds, execute_seconds, row_count, execution_count, shot_count = children
        queue_seconds.observe(queue)
        execute_seconds.observe(execute)
        row_count.inc(rows)
        execution_count.inc(executions)
        shot_count.inc(shots)


class _CoreCollector(Collector):
    """The core's identity and circuit cache, read when Prometheus scrapes."""

    def __init__(self, core: NodeCore) -> None:
        self._core = core

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        info = self._core.info()
        identity = GaugeMetricFamily(
            "qpumesh_node_info", "The node's identity (always 1).", labels=("node_id", "backend", "version")
        )
        identity.add_metric((info.node_id, info.backend, info.version), 1)
        yield identity
        yield GaugeMetricFamily("qpumesh_node_max_qubits", "Largest circuit accepted.", value=info.max_qubits)
        lookups = CounterMetricFamily(
            "qpumesh_node_circuit_cache_lookups",
            "Circuit lookups: hit (cached), miss (compiled from the JSON sent), not_found (hash only, "
            "answered NOT_FOUND).",
            labels=("result",),
        )
        for result, count in dict(self._core.cache_lookups).items():
            lookups.add_metric((result,), count)
        yield lookups
        yield GaugeMetricFamily(
            "qpumesh_node_circuit_cache_size", "Compiled circuits cached.", value=self._core.cached_circuits()
        )
