"""Fault injection on a QPU node: slow, flaky, hung or crashing nodes on demand.

The hosts the mesh is tested on have no ``tc netem``, so network faults are emulated
in the application, at the node's gRPC edge: ``FaultInterceptor`` (a
``grpc.ServerInterceptor``) delays, fails or swallows ``qpumesh.v1.QPUNode`` calls
according to the node's current ``FaultConfig`` (``qpumesh.wire.fault_config``).
Health checks, server reflection and the admin service are never faulted, so a node
under test can always be inspected and repaired.

Per QPUNode call, in this order:

1. crash: the Evaluate/ShiftGradient call after the first ``crash_after_calls``
   ones ends the process (``os._exit``), as a node that dies mid-job;
2. hang: no reply until the caller's deadline passes or it cancels (or until the
   fault is cleared at runtime, after which the call proceeds normally);
3. error: with probability ``error_rate`` the call fails with UNAVAILABLE;
4. delay: ``latency_ms`` + a jitter draw (``|N(0, jitter_ms)|`` or
   ``Exp(mean=jitter_ms)``) + request bytes / bandwidth, before the call runs, and
   reply bytes / bandwidth after it. A caller that gives up during a delay (a lost
   hedge, an expired deadline) frees the server thread at once.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from opentelemetry import trace
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.fault_config import FaultConfig

logger = logging.getLogger(__name__)

_Reply = TypeVar("_Reply")

QPU_NODE_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['QPUNode'].full_name}/"
"""Method-name prefix of the RPCs that faults apply to."""
WORK_METHODS = frozenset({QPU_NODE_PREFIX + "Evaluate", QPU_NODE_PREFIX + "ShiftGradient"})
"""The RPCs that ``crash_after_calls`` counts."""
CRASH_EXIT_STATUS = 3
"""Exit status of a node killed by ``crash_after_calls``."""


@dataclass
class _Counters:
    calls: int = 0
    work_calls: int = 0
    delayed: int = 0
    injected_errors: int = 0
    hung: int = 0


@dataclass(frozen=True)
class _Plan:
    """What to do to one call, drawn under the injector's lock."""

    crash: bool
    hang: bool
    error: bool
    delay_seconds: float
    seconds_per_byte: float


def _exit_process() -> None:
    logger.critical("fault injection: crash_after_calls reached, exiting with status %d", CRASH_EXIT_STATUS)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(CRASH_EXIT_STATUS)


class FaultInjector:
    """A node's current fault config, its random draws and counters (thread-safe).

    Args:
        config: the initial faults.
        node_id: the node's name, for log lines and GetFaults.
        on_crash: called when ``crash_after_calls`` is reached; defaults to ending the
            process with ``os._exit(3)``. Tests pass a callable that stops an
            in-process server instead.
    """

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        node_id: str = "",
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self._on_crash = on_crash or _exit_process
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._config = config or FaultConfig()
        # Whether the faults in force do nothing to a call (checked per call: cheaper than
        # ``FaultConfig.active``, which formats the description).
        self._inert = not self._config.active
        self._random = random.Random(self._config.seed)
        self._counters = _Counters()
        if self._config.active:
            logger.warning("fault injection on node %s: %s", node_id or "?", self._config.describe())

    @property
    def config(self) -> FaultConfig:
        """The faults in force."""
        with self._lock:
            return self._config

    def set_config(self, config: FaultConfig, *, source: str = "") -> None:
        """Replace the faults; applies to calls that arrive from now on and releases hung calls.

        Args:
            config: the new faults.
            source: who asked (e.g. the admin caller's address), for the log line.
        """
        with self._changed:
            previous, self._config = self._config, config
            self._inert = not config.active
            self._random = random.Random(config.seed)
            self._changed.notify_all()
        logger.warning(
            "fault injection on node %s changed%s: %s -> %s",
            self.node_id or "?",
            f" by {source}" if source else "",
            previous.describe(),
            config.describe(),
        )

    def counters(self) -> apb.FaultCounters:
        """Return what the injector has done so far."""
        with self._lock:
            c = self._counters
            return apb.FaultCounters(
                calls=c.calls, work_calls=c.work_calls, delayed=c.delayed,
                injected_errors=c.injected_errors, hung=c.hung,
            )  # fmt: skip

    def _plan(self, method: str) -> _Plan:
        with self._lock:
            config, counters = self._config, self._counters
            counters.calls += 1
            crash = False
            if method in WORK_METHODS:
                counters.work_calls += 1
                crash = 0 < config.crash_after_calls < counters.work_calls
            error = config.error_rate > 0 and self._random.random() < config.error_rate
            jitter = 0.0
            if config.jitter_ms > 0:
                if config.jitter_dist == "exponential":
                    jitter = self._random.expovariate(1.0 / config.jitter_ms)
                else:
                    jitter = abs(self._random.gauss(0.0, config.jitter_ms))
            delay = (config.latency_ms + jitter) / 1000.0
            per_byte = 1.0 / config.bandwidth_bytes_per_second if config.bandwidth_bytes_per_second else 0.0
            if config.hang:
                counters.hung += 1
            elif error:
                counters.injected_errors += 1
            elif delay > 0 or per_byte > 0:
                counters.delayed += 1
            return _Plan(
                crash=crash, hang=config.hang, error=error, delay_seconds=delay, seconds_per_byte=per_byte
            )

    def _hang(self, context: grpc.ServicerContext) -> None:
        """Block while ``hang`` is set and the caller still waits."""
        with self._changed:
            while self._config.hang and context.is_active():
                self._changed.wait(timeout=0.05)

    def apply(
        self,
        method: str,
        request: Any,
        context: grpc.ServicerContext,
        call: Callable[[Any, grpc.ServicerContext], _Reply],
    ) -> _Reply:
        """Run ``call(request, context)`` with the faults in force for ``method``.

        Without any fault in force the call is counted and run at once (what the full
        plan would do: no draws, no delay, nothing traced); faults set later through the
        admin API apply from the next call, which counts the calls before it.
        """
        with self._lock:
            inert = self._inert
            if inert:
                counters = self._counters
                counters.calls += 1
                if method in WORK_METHODS:
                    counters.work_calls += 1
        if inert:
            return call(request, context)
        plan = self._plan(method)
        _trace_plan(plan)
        if plan.crash:
            self._on_crash()
            context.abort(grpc.StatusCode.UNAVAILABLE, f"injected fault: node {self.node_id} crashed")
        if plan.hang:
            self._hang(context)
            if not context.is_active():
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "injected fault: hang")
        if plan.error:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"injected fault on node {self.node_id}: random error (error_rate)",
            )
        size = getattr(request, "ByteSize", None)
        request_bytes = int(size()) if plan.seconds_per_byte and callable(size) else 0
        _wait(context, plan.delay_seconds + request_bytes * plan.seconds_per_byte)
        reply = call(request, context)
        size = getattr(reply, "ByteSize", None)
        if plan.seconds_per_byte and callable(size):
            _wait(context, int(size()) * plan.seconds_per_byte)
        return reply


_NUMERIC_SETTINGS = (
    "latency_ms", "jitter_ms", "bandwidth_bytes_per_second", "error_rate", "hang", "crash_after_calls"
)


def _trace_plan(plan: _Plan) -> None:
    """Mark what is done to this call on its server span (a no-op without tracing)."""
    faults = [name for name in ("crash", "hang", "error") if getattr(plan, name)]
    if plan.delay_seconds > 0:
        faults.append("delay")
    if plan.seconds_per_byte > 0:
        faults.append("bandwidth")
    if faults:
        trace.get_current_span().add_event(
            "injected fault",
            {"qpumesh.faults": faults, "qpumesh.delay_seconds": plan.delay_seconds},
        )


class FaultCollector(Collector):
    """The injector's counters and current settings, for the node's ``/metrics``.

    - ``qpumesh_node_injected_faults_total{kind="delay|error|hang"}``: calls delayed,
      failed or hung on purpose; ``qpumesh_node_fault_checked_calls_total``: every QPUNode
      call the injector saw;
    - ``qpumesh_node_fault_setting{setting}``: the faults in force (``latency_ms``,
      ``jitter_ms``, ``bandwidth_bytes_per_second``, ``error_rate``, ``hang`` as 0/1,
      ``crash_after_calls``).
    """

    def __init__(self, injector: FaultInjector) -> None:
        self._injector = injector

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the families (called by the registry on each scrape)."""
        counters = self._injector.counters()
        injected = CounterMetricFamily(
            "qpumesh_node_injected_faults",
            "QPUNode calls delayed, failed or hung on purpose.",
            labels=("kind",),
        )
        injected.add_metric(("delay",), counters.delayed)
        injected.add_metric(("error",), counters.injected_errors)
        injected.add_metric(("hang",), counters.hung)
        yield injected
        yield CounterMetricFamily(
            "qpumesh_node_fault_checked_calls", "QPUNode calls the fault injector saw.", value=counters.calls
        )
        config = self._injector.config
        setting = GaugeMetricFamily("qpumesh_node_fault_setting", "The faults in force.", labels=("setting",))
        for name in _NUMERIC_SETTINGS:
            setting.add_metric((name,), float(getattr(config, name)))
        yield setting


def _wait(context: grpc.ServicerContext, seconds: float) -> None:
    """Sleep ``seconds``, aborting early with CANCELLED when the caller goes away."""
    if seconds <= 0:
        return
    gone = threading.Event()
    context.add_callback(gone.set)
    deadline = time.monotonic() + seconds
    while not gone.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        gone.wait(min(remaining, 0.05))
        if not context.is_active():
            break
    context.abort(grpc.StatusCode.CANCELLED, "caller went away during an injected delay")


class FaultInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Applies a ``FaultInjector`` to the unary ``qpumesh.v1.QPUNode`` RPCs only."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector
        # Per method: the handler gRPC found and our wrapper of it, built on its first call
        # (gRPC looks a call's handler up through the interceptors on every call).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # type: ignore[type-arg]

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        """Wrap the QPUNode handlers; pass every other service through untouched."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(QPU_NODE_PREFIX) or handler.unary_unary is None:
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        inner = handler.unary_unary
        injector = self.injector

        def faulty(request: Any, context: grpc.ServicerContext) -> Any:
            return injector.apply(method, request, context, inner)

        wrapped = grpc.unary_unary_rpc_method_handler(
            faulty,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped
