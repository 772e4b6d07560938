"""``MeshExecutor``: the ``Executor`` that runs a round's circuits on the QPU node mesh.

One time step of the distributed QLSTM is a *round*: 4 gates x M sub-circuits, each
evaluated (with its parameter-shift Jacobian during training) for the whole
mini-batch; in gradient mode "vjp" the backward pass sends a second round per time
step, of vector-Jacobian products. ``run_round`` sends every task of the round concurrently and blocks until
all replies are in, so a time step costs one network round trip whatever M is, and a
mesh run matches ``InProcessExecutor`` bit for bit.

The executor is a thin composition: one background thread runs an asyncio event loop
on which ``Membership`` (nodes, DNS discovery, health) and ``Dispatcher`` (choice,
retry, failover, hedging) live; callers in any thread submit work to it. ``MeshStats``
and the ``FaultLog`` hold what the job runner reports.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any, TypeVar

import grpc
from opentelemetry import context

from qpumesh.coordinator.executor import CircuitResult, CircuitTask
from qpumesh.coordinator.mesh.dispatch import Dispatcher
from qpumesh.coordinator.mesh.membership import Membership
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.stats import FaultLog, MeshStats
from qpumesh.coordinator.mesh.targets import parse_targets
from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.wire.errors import MeshError
from qpumesh.wire.tls import TlsConfig

_T = TypeVar("_T")


class MeshExecutor:
    """Runs each round's circuits concurrently on a pool of QPU nodes over gRPC.

    Args:
        nodes: "host:port,host:port", a list of such targets, or "dns:SERVICE:PORT"
            (every address the name resolves to; resolved again periodically).
        options: deadlines, retries, hedging and probing intervals.
        tls: TLS towards the nodes (mutual with a certificate); None: plaintext.

    Raises:
        ValueError: when ``nodes`` is empty or malformed.
    """

    def __init__(
        self, nodes: str | Sequence[str], options: PoolOptions | None = None, *, tls: TlsConfig | None = None
    ) -> None:
        self.options = options or PoolOptions()
        self.stats = MeshStats()
        self.faults = FaultLog()
        self.membership = Membership(parse_targets(nodes), self.options, self.faults, tls)
        self.dispatcher = Dispatcher(self.membership, self.options, self.stats, self.faults)
        self._plan_order: list[str] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._rounds: set[asyncio.Task[Any]] = set()
        self._final_stats: list[cpb.NodeStats] = []
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qpumesh-mesh", daemon=True)
        self._thread.start()
        self._background = self._submit(self.membership.start()).result()

    # ------------------------------------------------------------------ the Executor protocol

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Run every task concurrently on the mesh and return the results in order.

        Raises:
            MeshError: a task failed with a non-transient status, ran out of attempts,
                or no node can host its circuit.
        """
        try:
            # The caller's trace context (its round span) goes along to the loop thread.
            results = self._submit(self._round(list(tasks), context.get_current())).result()
        except CancelledError:
            raise MeshError(
                "", grpc.StatusCode.CANCELLED, "the MeshExecutor was closed during the round"
            ) from None
        self.stats.record_round(results)
        self.stats.record_hardware(results)
        return results

    def node_max_qubits(self) -> list[int]:
        """Ask every node for its info and return the healthy nodes' max qubits.

        Waits up to ``connect_timeout_seconds`` for a first node to answer (then, on the
        first call, up to 2 s more for the rest). The order of the list is the one
        ``set_assignment``'s indices refer to; nodes that are down are left out.

        Raises:
            MeshError: no node answered in time (UNAVAILABLE).
        """
        return self._submit(self._plan_nodes()).result()

    def set_assignment(self, assignment: Mapping[str, int]) -> None:
        """Route each task key to a node: an index into ``node_max_qubits()``'s order.

        Called before ``node_max_qubits``, it first establishes that order the same way.

        Raises:
            ValueError: an index is outside that order.
            MeshError: no node answered (see ``node_max_qubits``).
        """

        async def apply() -> None:
            if self._plan_order is None:
                await self._plan_nodes()
            order = self._plan_order or []
            routes: dict[str, str] = {}
            for key, index in assignment.items():
                if not 0 <= index < len(order):
                    raise ValueError(
                        f"assignment of {key!r} to node {index}: the pool has {len(order)} node(s)"
                    )
                routes[key] = order[index]
            self.dispatcher.assignment = routes

        self._submit(apply()).result()

    def node_stats(self) -> list[cpb.NodeStats]:
        """Return a snapshot of every known node's status (the last one, once closed)."""
        if self._closed:
            return list(self._final_stats)
        return self._call_soon(lambda: [node.status() for node in self.membership.current()])

    def drain_fault_events(self) -> list[cpb.FaultEvent]:
        """Return the fault events recorded since the last call, oldest first."""
        return self.faults.drain()

    def fault_counts(self) -> dict[tuple[str, str], int]:
        """Return how many fault events of each (node, kind) were recorded since the start."""
        return self.faults.counts()

    def close(self) -> None:
        """Cancel background work, close the channels and stop the loop thread."""
        if self._closed:
            return
        self._final_stats = self.node_stats()
        self._closed = True
        try:
            self._submit(self._shutdown()).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> MeshExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ on the loop

    async def _round(self, tasks: list[CircuitTask], trace_context: context.Context) -> list[CircuitResult]:
        context.attach(trace_context)  # this task's own context; the dispatch tasks inherit it
        current = asyncio.current_task()
        if current is not None:  # cancelled by close(), so no caller waits forever
            self._rounds.add(current)
            current.add_done_callback(self._rounds.discard)
        if not tasks:
            return []
        if not self.membership.usable():
            await self.membership.wait_ready(all_nodes=False)
        jobs = [asyncio.create_task(self.dispatcher.run(task)) for task in tasks]
        try:
            return list(await asyncio.gather(*jobs))
        finally:
            for job in jobs:
                job.cancel()

    async def _plan_nodes(self) -> list[int]:
        # Only the first plan gives slow starters a grace period; later a node that is
        # down is known to be down, and a job should not wait for it.
        await self.membership.wait_ready(all_nodes=self._plan_order is None)
        usable = self.membership.usable()
        self._plan_order = [node.address for node in usable]
        return [node.max_qubits for node in usable]

    async def _shutdown(self) -> None:
        work = [*self._background, *self._rounds]
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        await self.membership.close()

    # ------------------------------------------------------------------ loop plumbing

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> Future[_T]:
        if self._closed and self._loop.is_closed():
            coro.close()
            raise RuntimeError("the MeshExecutor is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("MeshExecutor methods must not be called from its own event loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call_soon(self, function: Callable[[], _T]) -> _T:
        """Run ``function`` on the loop thread (where node state lives) and return its result."""

        async def run() -> _T:
            return function()

        return self._submit(run()).result()
