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
import functools
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any, TypeVar

import grpc

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
        """The dispatch tasks of running rounds (cancelled by ``close``)."""
        self._live: set[_Round] = set()
        """Rounds whose tasks are running."""
        self._closing = False
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
        self._check_caller()
        # The callback runs in a copy of this thread's context, so the round's tasks
        # inherit the caller's trace context (its round span).
        round_ = _Round(list(tasks))
        self._loop.call_soon_threadsafe(self._start_round, round_)
        results = round_.wait(self._thread)
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

    def _start_round(self, round_: _Round) -> None:
        """Start one dispatch task per circuit task of ``round_`` (on the loop).

        The tasks report to ``round_`` as they finish: no task for the round itself, no
        gather and no done callbacks, so a round costs the loop one wake-up to start and
        one per reply.
        """
        if self._closing:
            round_.fail(CancelledError())
            return
        if not round_.tasks:
            round_.finish()
            return
        if not self.membership.usable():  # wait for a node first (rare: start-up, every node down)
            waiting = asyncio.create_task(self.membership.wait_ready(all_nodes=False))
            self._rounds.add(waiting)
            waiting.add_done_callback(functools.partial(self._ready, round_))
            return
        self._dispatch(round_)

    def _ready(self, round_: _Round, waiting: asyncio.Task[None]) -> None:
        self._rounds.discard(waiting)
        error = waiting.exception() if not waiting.cancelled() else CancelledError()
        if error is not None:
            round_.fail(error)
        else:
            self._dispatch(round_)

    def _dispatch(self, round_: _Round) -> None:
        self._live.add(round_)
        for index, task in enumerate(round_.tasks):
            job = asyncio.create_task(self._run_task(round_, index, task))
            round_.jobs.append(job)
            self._rounds.add(job)

    async def _run_task(self, round_: _Round, index: int, task: CircuitTask) -> None:
        """Run one task of ``round_`` and report to it; the first failure decides the round."""
        try:
            result = await self.dispatcher.run(task)
        except (Exception, asyncio.CancelledError) as error:  # the round's caller raises it
            if not round_.done:
                current = asyncio.current_task()
                for other in round_.jobs:  # like gather: the others are not waited for
                    if other is not current:
                        other.cancel()
                round_.fail(error)
                self._live.discard(round_)
            return
        finally:
            self._rounds.discard(round_.jobs[index])
        if round_.done:
            return
        round_.results[index] = result
        round_.pending -= 1
        if not round_.pending:
            round_.finish()
            self._live.discard(round_)

    async def _plan_nodes(self) -> list[int]:
        # Only the first plan gives slow starters a grace period; later a node that is
        # down is known to be down, and a job should not wait for it.
        await self.membership.wait_ready(all_nodes=self._plan_order is None)
        usable = self.membership.usable()
        self._plan_order = [node.address for node in usable]
        return [node.max_qubits for node in usable]

    async def _shutdown(self) -> None:
        self._closing = True  # rounds that arrive from now on fail at once
        work = [*self._background, *self._rounds]
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        for round_ in self._live:  # a task cancelled before it ran could not report
            if not round_.done:
                round_.fail(CancelledError())
        self._live.clear()
        await self.membership.close()

    # ------------------------------------------------------------------ loop plumbing

    def _check_caller(self) -> None:
        if self._closed and self._loop.is_closed():
            raise RuntimeError("the MeshExecutor is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("MeshExecutor methods must not be called from its own event loop")

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> Future[_T]:
        try:
            self._check_caller()
        except RuntimeError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call_soon(self, function: Callable[[], _T]) -> _T:
        """Run ``function`` on the loop thread (where node state lives) and return its result."""

        async def run() -> _T:
            return function()

        return self._submit(run()).result()


class _Round:
    """One ``run_round`` call: its tasks, their results, and the caller waiting for them.

    Filled in on the loop thread; the caller blocks on a lock that the loop releases
    once (a cheaper hand-back than a ``concurrent.futures.Future``'s condition).
    """

    __slots__ = ("_lock", "done", "error", "jobs", "pending", "results", "tasks")

    def __init__(self, tasks: list[CircuitTask]) -> None:
        self.tasks = tasks
        self.results: list[CircuitResult | None] = [None] * len(tasks)
        self.jobs: list[asyncio.Task[None]] = []
        self.pending = len(tasks)
        self.done = False
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._lock.acquire()

    def finish(self) -> None:
        """Every task has its result: wake the caller."""
        self.done = True
        self._lock.release()

    def fail(self, error: BaseException) -> None:
        """Record that the round failed with ``error`` and wake the caller, who raises it."""
        self.done = True
        self.error = error
        self._lock.release()

    def wait(self, loop_thread: threading.Thread) -> list[CircuitResult]:
        """Block until the round is done; return its results or raise its error.

        A round handed to a loop that stopped before it ran is CANCELLED once the loop's
        thread has ended (``close`` raced with the call), so no caller waits forever.

        Raises:
            MeshError: the round failed (CANCELLED when the executor was closed during it).
        """
        while not self._lock.acquire(timeout=1.0):
            if not loop_thread.is_alive():
                if not self._lock.acquire(blocking=False):  # else it finished just in time
                    self.error = CancelledError()
                break
        if isinstance(self.error, (CancelledError, asyncio.CancelledError)):
            raise MeshError("", grpc.StatusCode.CANCELLED, "the MeshExecutor was closed during the round")
        if self.error is not None:
            raise self.error
        return self.results  # type: ignore[return-value]  # every slot is filled once done without error
