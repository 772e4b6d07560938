"""Dispatch: which node runs each task, and what happens when a call fails or is slow.

Per task of a round:

- choose: the node the planner assigned, if it is healthy and untried, else the
  least-loaded healthy untried capable node, else any healthy capable node, else (last
  resort) an unhealthy capable one;
- call: Evaluate, or ShiftGradient for a Jacobian or a VJP (``CircuitTask.method``),
  through the shared node-call codec (``qpumesh.wire.node_calls``), with a
  deadline that follows the call's work and the node's pace (``deadlines``: slow is
  not failed, hung is); the circuit travels by hash once a node holds it;
- retry and failover: UNAVAILABLE, DEADLINE_EXCEEDED and server-side CANCELLED are
  *transient*: the task is tried again on another capable node (``max_attempts`` in
  all, with a short jittered backoff). Any other status would fail again unchanged, so
  it is raised at once as a ``MeshError`` naming the node, code and message;
- hedge (optional): a call unanswered after ``hedge_after_seconds`` is sent to a
  second capable node, the first good reply wins and the other call is cancelled.

Evaluate and ShiftGradient are pure functions of the request, so a retried or hedged
task returns exactly the numbers the first node would have.

Tracing (``qpumesh.wire.tracing``): each task is a span ``task <key>`` under the caller's
round span, with a ``failover`` event per retry and a ``hedge`` event when a hedge is sent;
each call is a CLIENT span ``qpumesh.v1.QPUNode/<Method>`` (attributes: node, attempt,
whether it is the hedge) whose context travels to the node in the call's metadata.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from qpumesh.coordinator.executor import CircuitResult, CircuitTask
from qpumesh.coordinator.mesh import deadlines
from qpumesh.coordinator.mesh.membership import Membership
from qpumesh.coordinator.mesh.nodes import MeshNode
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.stats import FaultLog, MeshStats
from qpumesh.wire import node_calls, tracing
from qpumesh.wire.errors import TRANSIENT_CODES, MeshError


class TransientCallError(Exception):
    """A transient failure of one call (the task may be retried elsewhere)."""

    def __init__(self, node: MeshNode, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{node.address}: {code.name}: {details}")
        self.node = node
        self.code = code
        self.details = details


class Dispatcher:
    """Runs tasks on the members of a ``Membership`` (on the mesh's event loop).

    Args:
        membership: the nodes and their health.
        options: deadlines, attempts, hedging.
        stats: the mesh's counters.
        faults: where failovers, failures and hedges are recorded.
    """

    def __init__(
        self, membership: Membership, options: PoolOptions, stats: MeshStats, faults: FaultLog
    ) -> None:
        self.membership = membership
        self.options = options
        self.stats = stats
        self.faults = faults
        self.assignment: Mapping[str, str] = {}
        """Task key -> address of the node the planner put it on."""
        self._random = random.Random()
        self._templates = node_calls.RequestTemplates()

    def choose(self, task: CircuitTask, exclude: Sequence[MeshNode]) -> MeshNode:
        """Pick the node for the next attempt of ``task`` (see the module docstring).

        Raises:
            MeshError: FAILED_PRECONDITION when no known node is large enough.
        """
        width = len(task.circuit.qubits)
        assigned = self.assignment.get(task.key)
        if assigned is not None:
            # The common case, decided without building the tiers: the planner's node is
            # healthy, untried and large enough, so it heads the first tier below.
            node = self.membership.nodes.get(assigned)
            if node is not None and node.healthy and node.can_host(width) and node not in exclude:
                return node
        current = self.membership.current()
        capable = [node for node in current if node.can_host(width)]
        if not capable:
            largest = max((node.max_qubits for node in current), default=0)
            raise MeshError(
                "",
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no known node can host the {width}-qubit circuit of task {task.key or '?'} "
                f"(largest node: {largest} qubits)",
            )
        tiers = (
            [n for n in capable if n.healthy and n not in exclude],
            [n for n in capable if n.healthy],
            [n for n in capable if n not in exclude],
            capable,
        )
        tier = next(t for t in tiers if t)  # the last tier is `capable`, not empty
        for node in tier:
            if node.address == assigned:
                return node
        return min(tier, key=lambda n: (n.in_flight, n.consecutive_failures, n.calls))

    async def run(self, task: CircuitTask) -> CircuitResult:
        """Run ``task`` with retries and failover.

        Raises:
            MeshError: a non-transient status, every attempt failed, or no node can host it.
        """
        if not tracing.enabled():  # asked once per task: no spans, no trace metadata
            return await self._timed(task, False)
        with tracing.span(
            f"task {task.key or '?'}",
            attributes={"qpumesh.task": task.key, "qpumesh.rows": int(task.values.shape[0])},
        ):
            return await self._timed(task, True)

    async def _timed(self, task: CircuitTask, traced: bool) -> CircuitResult:
        start = time.perf_counter()
        result = await self._run(task, traced)
        # The hardware model's view (wire.hardware): the task's time outside the node's QPU.
        outside = max(0.0, time.perf_counter() - start - result.node_seconds)
        return CircuitResult(
            result.expectations, result.jacobian, result.node, result.hardware_seconds, result.node_seconds,
            outside, result.executions, result.shots, result.vjp,
        )  # fmt: skip

    async def _run(self, task: CircuitTask, traced: bool) -> CircuitResult:
        tried: list[MeshNode] = []
        last: TransientCallError | None = None
        attempts = self.options.max_attempts
        for attempt in range(1, attempts + 1):
            node = self.choose(task, tried)
            if last is not None:
                node.retries += 1
                self.stats.add(retries=1)
                detail = (
                    f"task {task.key or '?'} attempt {attempt}/{attempts} on {node.address} "
                    f"after {last.node.address} answered {last.code.name}"
                )
                self.faults.record(node.address, "failover", detail)
                current = trace.get_current_span()
                current.add_event("failover", {"qpumesh.node": node.address, "detail": detail})
            try:
                return await self._attempt(task, node, tried, attempt, traced)
            except TransientCallError as failure:
                last = failure
                tried.append(failure.node)
                if attempt < attempts:
                    await asyncio.sleep(min(1.0, 0.05 * 2 ** (attempt - 1)) * self._random.uniform(0.5, 1.0))
        assert last is not None
        raise MeshError(
            last.node.address,
            last.code,
            f"task {task.key or '?'} failed {attempts} time(s); last error: {last.details}",
        )

    async def _attempt(
        self,
        task: CircuitTask,
        node: MeshNode,
        tried: Sequence[MeshNode],
        attempt: int = 1,
        traced: bool = True,
    ) -> CircuitResult:
        """One attempt: the call to ``node``, plus a hedge call if it is slow."""
        hedge_after = self.options.hedge_after_seconds
        if hedge_after is None:  # no second call to race: no task of its own either
            node.in_flight += 1
            try:
                if traced:
                    return await self._traced_call(node, task, attempt, False)
                return await self._call(node, task)
            finally:
                node.in_flight -= 1
        primary = self._launch(node, task, attempt)
        done, _ = await asyncio.wait({primary}, timeout=hedge_after)
        if done:
            return primary.result()
        partner = self._hedge_partner(task, node, tried)
        if partner is None:
            return await primary
        partner.hedges += 1
        self.stats.add(hedges=1)
        trace.get_current_span().add_event(
            "hedge", {"qpumesh.node": partner.address, "qpumesh.silent_node": node.address}
        )
        hedge = self._launch(partner, task, attempt, hedge=True)
        pending: set[asyncio.Task[CircuitResult]] = {primary, hedge}
        failure: TransientCallError | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for job in sorted(done, key=lambda j: j.exception() is not None):
                    error = job.exception()
                    if error is None:
                        winner, loser = (partner, node) if job is hedge else (node, partner)
                        if job is hedge:
                            self.stats.add(hedge_wins=1)
                        self.faults.record(
                            winner.address,
                            "hedge",
                            f"task {task.key or '?'}: {node.address} silent after {hedge_after:g} s, "
                            f"hedged on {partner.address}; {winner.address} won over {loser.address}",
                        )
                        return job.result()
                    if isinstance(error, TransientCallError):
                        failure = error
                        continue
                    raise error
            assert failure is not None
            raise failure
        finally:
            for job in pending:
                job.cancel()

    def _hedge_partner(self, task: CircuitTask, node: MeshNode, tried: Sequence[MeshNode]) -> MeshNode | None:
        width = len(task.circuit.qubits)
        options = [n for n in self.membership.current() if n is not node and n.healthy and n.can_host(width)]
        fresh = [n for n in options if n not in tried] or options
        # Idle first, then the fastest lately: a hedge on another slow node buys nothing.
        return min(fresh, key=lambda n: (n.in_flight, n.recent_latency_ms(), n.calls)) if fresh else None

    def _launch(
        self, node: MeshNode, task: CircuitTask, attempt: int = 1, *, hedge: bool = False
    ) -> asyncio.Task[CircuitResult]:
        """Start ``_call`` as a task, counting it in flight from now on.

        The count goes up before the task first runs, so the other tasks of the same
        round, chosen right after, already see this node as busier; it goes down in a
        done callback, which also runs for a task cancelled before it started.
        """
        node.in_flight += 1
        job = asyncio.create_task(self._traced_call(node, task, attempt, hedge))

        def release(_: asyncio.Task[CircuitResult]) -> None:
            node.in_flight -= 1

        job.add_done_callback(release)
        return job

    async def _traced_call(
        self, node: MeshNode, task: CircuitTask, attempt: int, hedge: bool
    ) -> CircuitResult:
        """``_call`` in a CLIENT span; its status is the call's."""
        method = task.method
        attributes: dict[str, str | int | bool] = {
            "rpc.system": "grpc",
            "rpc.method": method,
            "qpumesh.node": node.address,
            "qpumesh.attempt": attempt,
            "qpumesh.hedge": hedge,
        }
        with tracing.span(
            f"qpumesh.v1.QPUNode/{method}", kind=SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as call:  # fmt: skip
            try:
                return await self._call(node, task, tracing.outgoing_metadata() or None)
            except asyncio.CancelledError:
                call.set_attribute("qpumesh.cancelled", True)  # a hedge lost, or the round ended
                raise
            except (TransientCallError, MeshError) as error:
                code = error.code
                call.set_attribute("rpc.grpc.status_code", code.value[0])
                call.set_status(Status(StatusCode.ERROR, code.name))
                raise

    async def _call(
        self, node: MeshNode, task: CircuitTask, metadata: Sequence[tuple[str, str]] | None = None
    ) -> CircuitResult:
        """Run ``task`` on ``node``: one RPC, or two when the node lost the circuit.

        Raises:
            TransientCallError: a transient status (the task may be retried elsewhere).
            MeshError: any other status, or a reply that does not decode.
        """
        if task.jacobian or task.cotangents is not None:  # values with the Jacobian, or a VJP
            request = self._templates.shift_gradient(
                task.observables, task.symbols, task.values, wrt=task.symbols, cotangents=task.cotangents,
                include_values=task.jacobian, shots=task.shots, seed=task.seed,
            )  # fmt: skip
            reply = await self._send(node, task, node.stub.ShiftGradient, request, metadata)
            try:
                gradient = node_calls.decode_gradient(reply, request)
                if task.jacobian and gradient.expectations is None:
                    raise ValueError("no expectations, although include_values was set")
            except ValueError as error:
                raise self._malformed(node, error) from None
            vjp = task.cotangents is not None
            return CircuitResult(
                None if vjp else gradient.expectations,
                None if vjp else gradient.jacobian,
                node.address,
                gradient.hardware_seconds,
                gradient.queue_seconds + gradient.execute_seconds,
                executions=gradient.shift_rule_executions,
                shots=gradient.shift_rule_shots,
                vjp=gradient.jacobian if vjp else None,
            )
        evaluate = self._templates.evaluate(
            task.observables, task.symbols, task.values, shots=task.shots, seed=task.seed
        )
        reply = await self._send(node, task, node.stub.Evaluate, evaluate, metadata)
        try:
            answer = node_calls.decode_evaluation(reply, evaluate)
        except ValueError as error:
            raise self._malformed(node, error) from None
        # The node's counts: with zero-noise extrapolation they include the folded circuits.
        return CircuitResult(
            answer.expectations,
            None,
            node.address,
            answer.hardware_seconds,
            answer.queue_seconds + answer.execute_seconds,
            executions=answer.executions,
            shots=answer.shots,
        )

    def deadline(self, node: MeshNode, kind: str, work: float) -> float:
        """Seconds a call of ``kind`` may take on ``node`` with ``work`` of it in flight there.

        See ``deadlines.deadline``: the node's other kinds in flight (``Paces.besides``) and
        timed-out probes (``Paces.latency``) count too.
        """
        paces = node.paces
        pace, besides, latency = paces[kind], paces.besides(kind), paces.latency()
        if pace:  # the other nodes' paces are only read while this one has none
            return deadlines.deadline(self.options.timeout_seconds, pace, [], work, besides, latency)
        others = [n.paces[kind] for n in self.membership.current() if n is not node]
        return deadlines.deadline(self.options.timeout_seconds, pace, others, work, besides, latency)

    async def _send(
        self,
        node: MeshNode,
        task: CircuitTask,
        method: Any,
        request: node_calls.NodeRequest,
        metadata: Sequence[tuple[str, str]] | None,
    ) -> Any:
        """Send ``request`` with the task's circuit, counting every send; a success ends a failure streak."""

        def sending() -> None:
            node.calls += 1
            self.stats.add(rpcs=1)

        work, kind = deadlines.call_work(task), deadlines.call_kind(task)
        pace = node.paces[kind]
        pace.in_flight_work += work
        in_flight = pace.in_flight_work
        timeout = self.deadline(node, kind, in_flight)
        start = time.perf_counter()
        try:
            reply = await node_calls.call_async(
                method,
                request,
                task.circuit,
                node.held,
                timeout=timeout,
                on_send=sending,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                pace.record(timeout, in_flight)  # at least this slow: a retry here waits longer
            raise self._failed(node, task, error, timeout) from None
        finally:
            pace.in_flight_work -= work
        seconds = time.perf_counter() - start
        pace.record(seconds, in_flight)
        node.latencies_ms.append(seconds * 1000.0)
        if node.consecutive_failures or not node.healthy:  # else answering changes nothing
            self.membership.answered(node, f"answered task {task.key or '?'}")
        return reply

    def _malformed(self, node: MeshNode, error: ValueError) -> MeshError:
        """Count a reply that does not decode as a failed call; return its error.

        The error is INTERNAL, not transient: the node would send the same reply again.
        """
        node.failures += 1
        self.stats.add(failures=1)
        return MeshError(node.address, grpc.StatusCode.INTERNAL, f"malformed reply: {error}")

    def _failed(
        self, node: MeshNode, task: CircuitTask, error: grpc.aio.AioRpcError, timeout: float
    ) -> Exception:
        """Account for a failed call; return the exception to raise."""
        code, details = error.code(), error.details() or ""
        node.failures += 1
        self.stats.add(failures=1)
        if code not in TRANSIENT_CODES:
            return MeshError(node.address, code, f"task {task.key or '?'}: {details}")
        kind = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "error"
        if kind == "timeout":
            details = f"{details} ({deadlines.describe(self.options.timeout_seconds, timeout)})"
        self.faults.record(node.address, kind, f"task {task.key or '?'}: {code.name}: {details}")
        self.membership.failed(
            node, f"{node.consecutive_failures + 1} consecutive failures, last {code.name}"
        )
        return TransientCallError(node, code, details)
