"""What the coordinator tells Prometheus at ``http://HOST:HTTP_PORT/metrics``.

Besides the per-RPC ``grpc_server_*`` series (``qpumesh.wire.server_telemetry``):

- ``CoordinatorMetrics``, observed as things happen: ``qpumesh_round_seconds`` (one
  executor round of a job: every sub-circuit of a time step, retries and hedges included),
  ``qpumesh_job_epochs_total``, ``qpumesh_job_epoch_seconds``;
- ``MeshCollector``, read from the executor and the job store when Prometheus scrapes, so
  the mesh keeps no Prometheus code: the executor's counters
  (``qpumesh_mesh_rounds_total``, ``_tasks_total``, ``_circuit_evaluations_total`` and, on
  a node mesh, ``_rpcs_total``, ``_failures_total``, ``_retries_total``, ``_hedges_total``,
  ``_hedge_wins_total``); per node (labels ``node``, ``node_id``)
  ``qpumesh_mesh_node_healthy``, ``_in_flight``, ``_max_qubits``, ``_calls_total``,
  ``_failures_total``, ``_retries_total``, ``_hedges_total`` and
  ``qpumesh_mesh_node_latency_seconds{quantile="0.5|0.95"}`` over the node's recent calls;
  ``qpumesh_mesh_fault_events_total{node,kind}``; ``qpumesh_jobs{state}``; and for the
  running job and the few newest (labels ``job_id``, ``name``) ``qpumesh_job_epochs_done``,
  ``qpumesh_job_train_loss``, ``qpumesh_job_test_loss``, ``qpumesh_job_test_r2``.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from qpumesh.wire.job_state import JobState

if TYPE_CHECKING:
    from qpumesh.coordinator.jobs import JobManager

RECENT_JOBS = 5
"""Finished jobs whose last epoch stays exported, next to the running one."""

_ROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_EPOCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_NODE_COUNTERS = ("calls", "failures", "retries", "hedges")
_NODE_GAUGES = ("in_flight", "max_qubits")


class CoordinatorMetrics:
    """The series the job runner observes, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.round_seconds = Histogram(
            "qpumesh_round_seconds",
            "One executor round of a job (every sub-circuit of a time step; retries and hedges included).",
            buckets=_ROUND_BUCKETS,
            registry=registry,
        )
        self.epochs = Counter("qpumesh_job_epochs", "Epochs completed, over all jobs.", registry=registry)
        self.epoch_seconds = Histogram(
            "qpumesh_job_epoch_seconds", "Wall time of one epoch.", buckets=_EPOCH_BUCKETS, registry=registry
        )


class MeshCollector(Collector):
    """The executor's and the jobs' state, read at scrape time (see the module docstring)."""

    def __init__(self, manager: JobManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield every family (called by the registry on each scrape)."""
        yield from self._executor()
        yield from self._nodes()
        yield from self._jobs()

    def _executor(self) -> Iterator[CounterMetricFamily]:
        for name, value in self._manager.executor.stats.snapshot().items():
            yield CounterMetricFamily(f"qpumesh_mesh_{name}", f"Executor counter {name}.", value=value)
        faults = CounterMetricFamily(
            "qpumesh_mesh_fault_events", "Node fault events seen by the mesh.", labels=("node", "kind")
        )
        for (node, kind), count in sorted(self._manager.executor.fault_counts().items()):
            faults.add_metric((node, kind), count)
        yield faults

    def _nodes(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ("node", "node_id")
        healthy = GaugeMetricFamily("qpumesh_mesh_node_healthy", "1 if the node takes work.", labels=labels)
        gauges = {
            name: GaugeMetricFamily(f"qpumesh_mesh_node_{name}", f"The node's {name}.", labels=labels)
            for name in _NODE_GAUGES
        }
        counters = {
            name: CounterMetricFamily(f"qpumesh_mesh_node_{name}", f"The node's {name}.", labels=labels)
            for name in _NODE_COUNTERS
        }
        latency = GaugeMetricFamily(
            "qpumesh_mesh_node_latency_seconds",
            "Latency of the node's recent successful calls, seen by the coordinator.",
            labels=(*labels, "quantile"),
        )
        for node in self._manager.node_stats():
            key = (node.address, node.node_id)
            healthy.add_metric(key, 1.0 if node.healthy else 0.0)
            for name, family in gauges.items():
                family.add_metric(key, float(getattr(node, name)))
            for name, counter in counters.items():
                counter.add_metric(key, float(getattr(node, name)))
            latency.add_metric((*key, "0.5"), node.p50_latency_ms / 1000.0)
            latency.add_metric((*key, "0.95"), node.p95_latency_ms / 1000.0)
        yield healthy
        yield from gauges.values()
        yield from counters.values()
        yield latency

    def _jobs(self) -> Iterator[GaugeMetricFamily]:
        manager = self._manager
        jobs = manager.jobs()
        states = Tally(job.state for job in jobs)
        by_state = GaugeMetricFamily("qpumesh_jobs", "Jobs in the store, by state.", labels=("state",))
        for state in JobState:
            by_state.add_metric((state.name,), states.get(state, 0))
        yield by_state
        shown = [job for job in jobs if job.state == JobState.RUNNING] + [
            job for job in jobs[:RECENT_JOBS] if job.state != JobState.RUNNING
        ]
        labels = ("job_id", "name")
        families = {
            key: GaugeMetricFamily(f"qpumesh_job_{key}", help_text, labels=labels)
            for key, help_text in (
                ("epochs_done", "Epochs the job completed."),
                ("train_loss", "Training loss (MSE) of the job's last epoch."),
                ("test_loss", "Test loss (MSE) of the job's last epoch."),
                ("test_r2", "Test R² of the job's last epoch."),
            )
        }
        for job in shown:
            history = manager.history(job.id)
            if not history:
                continue
            last = history[-1]
            key = (job.id, job.spec.name)
            families["epochs_done"].add_metric(key, job.epochs_done)
            for name in ("train_loss", "test_loss", "test_r2"):
                families[name].add_metric(key, float(last[name]))
        yield from families.values()
