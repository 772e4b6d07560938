"""``MeshExecutor``: the ``Executor`` that runs a round's circuits on the QPU node mesh.

One time step of the distributed QLSTM is a *round*: 4 gates x M sub-circuits, each
evaluated (with its parameter-shift Jacobian during training) for the whole
mini-batch. ``run_round`` sends every task of the round concurrently and blocks until
all replies are in, so a time step costs one network round trip whatever M is.

The gRPC side lives in one background thread running an asyncio event loop with one
``grpc.aio`` channel per node; callers in any thread submit rounds to it. Per call:

- a deadline (``PoolOptions.timeout_seconds``);
- the circuit's Cirq JSON only the first time a node sees it (later calls carry the
  hash; a node that has lost it answers NOT_FOUND and the call is resent with JSON);
- UNAVAILABLE, DEADLINE_EXCEEDED and server-side CANCELLED are *transient*: the task
  is retried on another node that can host the circuit (``max_attempts`` in total,
  with a short jittered backoff). Any other status (INVALID_ARGUMENT, NOT_FOUND after
  a resend, RESOURCE_EXHAUSTED, INTERNAL, ...) would fail again unchanged, so it is
  raised at once as a ``MeshError`` naming the node, code and message;
- optional *hedging*: when a call has not answered after ``hedge_after_seconds``,
  the same request goes to a second capable node, the first good reply wins and the
  other call is cancelled.

Evaluate and ShiftGradient are pure functions of the request, so a retried or hedged
task returns exactly the numbers the first node would have, and a mesh run matches
``InProcessExecutor`` bit for bit.

Nodes that fail ``_UNHEALTHY_AFTER`` times in a row are marked unhealthy and skipped
until the background health check (GetInfo, which goes through the same fault path
as real work) gets an answer again. Nodes named by ``dns:SERVICE:PORT`` are
re-resolved every ``resolve_interval_seconds`` so ``docker compose --scale`` changes
are picked up. Everything that goes wrong is recorded as a ``FaultRecord`` for the
job's event stream, and per-node counters and latency percentiles are kept for
``node_stats``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import grpc.aio
import numpy as np

from qpumesh.client.errors import QpuMeshError
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, ExecutorStats, FloatArray
from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.circuits import observables_to_proto
from qpumesh.wire.tensors import from_tensor, to_tensor

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_SERVICE = "/qpumesh.v1.QPUNode/"
_TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
# Consecutive transient failures (calls or health probes) after which a node is skipped.
_UNHEALTHY_AFTER = 2
# Latencies kept per node for the percentiles.
_LATENCY_WINDOW = 512
# Calls whose mean latency ranks hedge partners.
_RECENT_CALLS = 16
# Fault records kept until drained (oldest dropped first).
_FAULT_BACKLOG = 10_000
# After the first node answers, how long node_max_qubits still waits for the others.
_READY_GRACE_SECONDS = 2.0
_MAX_MESSAGE_BYTES = 2**31 - 1
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # Reconnect quickly to a node that comes back (the default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class MeshError(QpuMeshError):
    """A task failed for good: a non-transient status, or every attempt failed.

    Attributes:
        node: the address of the node that answered last ("" when no node was tried).
        code: the gRPC status code.
        details: what went wrong.
    """

    def __init__(self, node: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, f"node {node or '-'}: {details}")
        self.node = node


@dataclass(frozen=True)
class PoolOptions:
    """How the pool talks to the nodes.

    Attributes:
        timeout_seconds: deadline of every Evaluate/ShiftGradient call.
        max_attempts: attempts per task, the first included, before giving up.
        hedge_after_seconds: when set, a call still unanswered after this long is
            duplicated on a second capable node and the first reply wins.
        health_interval_seconds: how often every node is probed with GetInfo.
        resolve_interval_seconds: how often ``dns:`` targets are resolved again.
        connect_timeout_seconds: how long to wait for a first healthy node.
    """

    timeout_seconds: float = 30.0
    max_attempts: int = 4
    hedge_after_seconds: float | None = None
    health_interval_seconds: float = 2.0
    resolve_interval_seconds: float = 5.0
    connect_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("timeout_seconds", "health_interval_seconds", "resolve_interval_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.connect_timeout_seconds < 0:
            raise ValueError(f"connect_timeout_seconds must be >= 0, got {self.connect_timeout_seconds}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.hedge_after_seconds is not None and not self.hedge_after_seconds >= 0:
            raise ValueError(f"hedge_after_seconds must be >= 0 or None, got {self.hedge_after_seconds}")


@dataclass
class NodeStatus:
    """The pool's view of one node (the fields of ``qpumesh.v1.NodeStats``).

    ``calls`` counts RPCs sent to the node, ``failures`` those that failed,
    ``retries`` the calls that were retries of a task that failed elsewhere (or
    here), ``hedges`` the hedge calls sent to it. Latencies cover successful calls,
    over the last ``_LATENCY_WINDOW`` of them.
    """

    address: str
    node_id: str
    healthy: bool
    max_qubits: int
    backend: str
    in_flight: int
    calls: int
    failures: int
    retries: int
    hedges: int
    mean_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float

    def to_proto(self) -> cpb.NodeStats:
        """Return the ``NodeStats`` message."""
        return cpb.NodeStats(
            address=self.address,
            node_id=self.node_id,
            healthy=self.healthy,
            max_qubits=self.max_qubits,
            backend=self.backend,
            in_flight=self.in_flight,
            calls=self.calls,
            failures=self.failures,
            retries=self.retries,
            hedges=self.hedges,
            mean_latency_ms=self.mean_latency_ms,
            p50_latency_ms=self.p50_latency_ms,
            p95_latency_ms=self.p95_latency_ms,
        )


@dataclass(frozen=True)
class FaultRecord:
    """Something that went wrong (or was worked around) with a node.

    Attributes:
        time: Unix time of the event.
        node: the node's address.
        kind: "error" (transient failure), "timeout" (deadline exceeded), "failover"
            (a task retried on another node), "hedge" (a hedge call was resolved; the
            detail says which node won), "unhealthy", "recovered", "replaced" (another
            node id now answers at the address; counters restart), "joined" or
            "removed" (a ``dns:`` target's address set changed).
        detail: a human-readable explanation.
    """

    time: float
    node: str
    kind: str
    detail: str

    def to_proto(self) -> cpb.FaultEvent:
        """Return the ``FaultEvent`` message."""
        return cpb.FaultEvent(time=self.time, node=self.node, kind=self.kind, detail=self.detail)


@dataclass
class MeshStats(ExecutorStats):
    """``ExecutorStats`` plus the pool's own counters.

    Attributes:
        rpcs: Evaluate/ShiftGradient calls sent (hedges and NOT_FOUND resends included).
        failures: calls that failed with any status.
        retries: task attempts after the first.
        hedges: hedge calls sent.
        hedge_wins: hedges whose reply arrived first.
    """

    rpcs: int = 0
    failures: int = 0
    retries: int = 0
    hedges: int = 0
    hedge_wins: int = 0

    def add(self, **counts: int) -> None:
        """Increase the named counters."""
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, int]:
        """Return every counter as a plain dict."""
        counts = super().snapshot()
        with self.lock:
            counts.update(
                rpcs=self.rpcs,
                failures=self.failures,
                retries=self.retries,
                hedges=self.hedges,
                hedge_wins=self.hedge_wins,
            )
        return counts


@dataclass(eq=False)
class _Node:
    """One node's channel, stubs and bookkeeping; touched only on the loop thread."""

    address: str
    channel: grpc.aio.Channel
    get_info: grpc.aio.UnaryUnaryMultiCallable[pb.GetInfoRequest, pb.GetInfoResponse]
    evaluate: grpc.aio.UnaryUnaryMultiCallable[pb.EvaluateRequest, pb.EvaluateResponse]
    shift_gradient: grpc.aio.UnaryUnaryMultiCallable[pb.ShiftGradientRequest, pb.ShiftGradientResponse]
    info: pb.GetInfoResponse | None = None
    healthy: bool = False
    removed: bool = False
    probing: bool = False
    ever_healthy: bool = False
    consecutive_failures: int = 0
    known_hashes: set[str] = field(default_factory=set)
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    retries: int = 0
    hedges: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))

    @classmethod
    def connect(cls, address: str) -> _Node:
        """Open a channel to ``address`` (must run on the event loop)."""
        channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        return cls(
            address=address,
            channel=channel,
            get_info=channel.unary_unary(
                _SERVICE + "GetInfo",
                request_serializer=pb.GetInfoRequest.SerializeToString,
                response_deserializer=pb.GetInfoResponse.FromString,
            ),
            evaluate=channel.unary_unary(
                _SERVICE + "Evaluate",
                request_serializer=pb.EvaluateRequest.SerializeToString,
                response_deserializer=pb.EvaluateResponse.FromString,
            ),
            shift_gradient=channel.unary_unary(
                _SERVICE + "ShiftGradient",
                request_serializer=pb.ShiftGradientRequest.SerializeToString,
                response_deserializer=pb.ShiftGradientResponse.FromString,
            ),
        )

    @property
    def max_qubits(self) -> int:
        return int(self.info.max_qubits) if self.info is not None else 0

    def reset_counters(self) -> None:
        """Forget the circuits, counters and latencies of the node that answered here before."""
        self.known_hashes.clear()
        self.calls = self.failures = self.retries = self.hedges = 0
        self.latencies_ms.clear()

    def recent_latency_ms(self) -> float:
        """Mean latency of the last few successful calls (0 when none yet)."""
        recent = list(self.latencies_ms)[-_RECENT_CALLS:]
        return sum(recent) / len(recent) if recent else 0.0

    def status(self) -> NodeStatus:
        latencies = np.fromiter(self.latencies_ms, dtype=np.float64)
        mean, p50, p95 = (
            (float(latencies.mean()), *(float(q) for q in np.percentile(latencies, [50, 95])))
            if latencies.size
            else (0.0, 0.0, 0.0)
        )
        return NodeStatus(
            address=self.address,
            node_id=self.info.node_id if self.info is not None else "",
            healthy=self.healthy,
            max_qubits=self.max_qubits,
            backend=self.info.backend if self.info is not None else "",
            in_flight=self.in_flight,
            calls=self.calls,
            failures=self.failures,
            retries=self.retries,
            hedges=self.hedges,
            mean_latency_ms=mean,
            p50_latency_ms=p50,
            p95_latency_ms=p95,
        )


class _TransientCallError(Exception):
    """A transient failure of one call (the task may be retried elsewhere)."""

    def __init__(self, node: _Node, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{node.address}: {code.name}: {details}")
        self.node = node
        self.code = code
        self.details = details


def parse_targets(nodes: str | Sequence[str]) -> list[str]:
    """Split a node list into targets: ``host:port`` or ``dns:SERVICE:PORT`` entries.

    Args:
        nodes: a comma-separated string or a sequence of targets.

    Raises:
        ValueError: when the list is empty or an entry has no port.
    """
    items = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    targets = [item.strip() for item in items if item.strip()]
    if not targets:
        raise ValueError("no QPU nodes given: expected 'host:port,...' or 'dns:SERVICE:PORT'")
    for target in targets:
        _, _, port = target.removeprefix("dns:").removeprefix("///").rpartition(":")
        if not port.isdigit():
            raise ValueError(f"node target {target!r} has no port: expected host:port or dns:SERVICE:PORT")
    return targets


def resolve_targets(targets: Sequence[str]) -> list[str]:
    """Expand ``dns:SERVICE:PORT`` targets into one ``ip:port`` per A/AAAA record.

    Plain ``host:port`` targets are kept as they are (gRPC resolves them). A DNS name
    that does not resolve (yet) contributes no address.
    """
    addresses: list[str] = []
    for target in targets:
        if not target.startswith("dns:"):
            addresses.append(target)
            continue
        host, _, port = target.removeprefix("dns:").removeprefix("///").rpartition(":")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            logger.debug("cannot resolve %s: %s", host, error)
            continue
        ips = sorted({str(info[4][0]) for info in infos})
        addresses.extend(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip in ips)
    return list(dict.fromkeys(addresses))


class MeshExecutor:
    """Runs each round's circuits concurrently on a pool of QPU nodes over gRPC.

    Args:
        nodes: "host:port,host:port", a list of such targets, or "dns:SERVICE:PORT"
            (every address the name resolves to; resolved again periodically).
        options: deadlines, retries, hedging and probing intervals.

    Raises:
        ValueError: when ``nodes`` is empty or malformed.
    """

    def __init__(self, nodes: str | Sequence[str], options: PoolOptions | None = None) -> None:
        self.options = options or PoolOptions()
        self._targets = parse_targets(nodes)
        self.mesh_stats = MeshStats()
        # Typed as the protocol's ExecutorStats so a MeshExecutor *is* an Executor for mypy;
        # ``mesh_stats`` is the same object with the pool's own counters.
        self.stats: ExecutorStats = self.mesh_stats
        self._nodes: dict[str, _Node] = {}
        self._plan_order: list[str] | None = None
        self._assignment: dict[str, str] = {}
        self._faults: deque[FaultRecord] = deque(maxlen=_FAULT_BACKLOG)
        self._faults_lock = threading.Lock()
        self._random = random.Random()
        self._background: list[asyncio.Task[None]] = []
        self._probes: set[asyncio.Task[bool]] = set()
        self._rounds: set[asyncio.Task[Any]] = set()
        self._final_stats: list[NodeStatus] = []
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qpumesh-pool", daemon=True)
        self._thread.start()
        self._submit(self._start()).result()

    # ------------------------------------------------------------------ public API

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Run every task concurrently on the mesh and return the results in order.

        Raises:
            MeshError: a task failed with a non-transient status, ran out of attempts,
                or no node can host its circuit.
        """
        self.stats.record_round(tasks)
        try:
            return self._submit(self._round(list(tasks))).result()
        except CancelledError:
            raise MeshError(
                "", grpc.StatusCode.CANCELLED, "the MeshExecutor was closed during the round"
            ) from None

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
            self._assignment = routes

        self._submit(apply()).result()

    def node_stats(self) -> list[NodeStatus]:
        """Return a snapshot of every known node's status (the last one, once closed)."""
        if self._closed:
            return list(self._final_stats)
        return self._call_soon(lambda: [node.status() for node in self._nodes.values() if not node.removed])

    def drain_fault_events(self) -> list[FaultRecord]:
        """Return the fault records gathered since the last call, oldest first."""
        with self._faults_lock:
            records = list(self._faults)
            self._faults.clear()
        return records

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

    async def _start(self) -> None:
        self._sync_nodes(await asyncio.to_thread(resolve_targets, self._targets), announce=False)
        self._background.append(asyncio.create_task(self._health_loop()))
        if any(target.startswith("dns:") for target in self._targets):
            self._background.append(asyncio.create_task(self._resolve_loop()))

    async def _shutdown(self) -> None:
        work = [*self._background, *self._probes, *self._rounds]
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        closing = [node.channel.close(None) for node in self._nodes.values()]
        await asyncio.gather(*closing, return_exceptions=True)

    # ------------------------------------------------------------------ membership and health

    def _sync_nodes(self, addresses: Sequence[str], *, announce: bool) -> None:
        """Add channels for new addresses; mark vanished ones removed."""
        current = set(addresses)
        for address in addresses:
            node = self._nodes.get(address)
            if node is None:
                self._nodes[address] = _Node.connect(address)
                if announce:
                    self._record(address, "joined", "address appeared in DNS")
            elif node.removed:
                node.removed = False
                if announce:
                    self._record(address, "joined", "address reappeared in DNS")
        for address, node in list(self._nodes.items()):
            if address not in current and not node.removed:
                node.removed = True
                node.healthy = False
                self._record(address, "removed", "address no longer in DNS")

    async def _resolve_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.resolve_interval_seconds)
            try:
                addresses = await asyncio.to_thread(resolve_targets, self._targets)
            except OSError as error:
                logger.warning("resolving %s failed: %s", ",".join(self._targets), error)
                continue
            if addresses:  # a DNS hiccup must not empty the pool
                self._sync_nodes(addresses, announce=True)
            for node in list(self._nodes.values()):
                if node.removed and node.in_flight == 0:
                    del self._nodes[node.address]
                    await node.channel.close(None)

    async def _health_loop(self) -> None:
        while True:
            for node in list(self._nodes.values()):
                if not node.removed and not node.probing:
                    probe = asyncio.create_task(self._probe(node))
                    self._probes.add(probe)
                    probe.add_done_callback(self._probes.discard)
            await asyncio.sleep(self.options.health_interval_seconds)

    async def _probe(self, node: _Node, timeout: float | None = None) -> bool:
        """GetInfo on ``node``; update its health. Returns whether it answered."""
        if node.probing:
            return node.healthy
        node.probing = True
        try:
            info = await node.get_info(
                pb.GetInfoRequest(), timeout=timeout or min(self.options.timeout_seconds, 5.0)
            )
        except grpc.aio.AioRpcError as error:
            if node.healthy:
                node.consecutive_failures += 1
                if node.consecutive_failures >= _UNHEALTHY_AFTER:
                    self._mark_unhealthy(node, f"health check: {error.code().name}: {error.details()}")
            return False
        finally:
            node.probing = False
        if node.info is not None and node.info.node_id != info.node_id:
            # Another QPU now answers at this address (e.g. a new container that got a
            # removed one's IP): its cache is empty and the old node's counters are not its.
            self._record(
                node.address, "replaced", f"node {node.info.node_id!r} replaced by {info.node_id!r}"
            )
            node.reset_counters()
        node.info = info
        node.consecutive_failures = 0
        if not node.healthy:
            self._mark_healthy(node, "health check answered")
        return True

    def _mark_unhealthy(self, node: _Node, reason: str) -> None:
        if not node.healthy:
            return
        node.healthy = False
        logger.warning("node %s marked unhealthy: %s", node.address, reason)
        self._record(node.address, "unhealthy", reason)

    def _mark_healthy(self, node: _Node, reason: str) -> None:
        node.healthy = True
        # A node that was down may have restarted with an empty circuit cache.
        node.known_hashes.clear()
        if node.ever_healthy:
            logger.info("node %s recovered: %s", node.address, reason)
            self._record(node.address, "recovered", reason)
        else:
            node.ever_healthy = True
            logger.info(
                "node %s (%s) is up: %d qubits, backend %s",
                node.address,
                node.info.node_id if node.info else "?",
                node.max_qubits,
                node.info.backend if node.info else "?",
            )

    def _healthy_order(self) -> list[str]:
        return [a for a, n in self._nodes.items() if n.healthy and not n.removed and n.info is not None]

    async def _wait_ready(self, *, all_nodes: bool) -> None:
        """Wait until a node is healthy (and, with ``all_nodes``, briefly for the rest)."""
        deadline = time.monotonic() + self.options.connect_timeout_seconds
        grace_end: float | None = None
        while True:
            pending = [n for n in self._nodes.values() if not n.removed and not n.healthy]
            healthy = self._healthy_order()
            now = time.monotonic()
            if healthy and grace_end is None:
                grace_end = min(deadline, now + _READY_GRACE_SECONDS)
            if healthy and (not all_nodes or not pending or now >= (grace_end or now)):
                return
            if now >= deadline:
                raise MeshError(
                    ",".join(self._targets),
                    grpc.StatusCode.UNAVAILABLE,
                    f"no QPU node answered GetInfo within {self.options.connect_timeout_seconds:g} s "
                    f"(targets: {', '.join(self._targets)}; resolved: {', '.join(self._nodes) or 'nothing'})",
                )
            if not self._nodes and any(t.startswith("dns:") for t in self._targets):
                self._sync_nodes(await asyncio.to_thread(resolve_targets, self._targets), announce=False)
            probe_timeout = max(0.05, min(1.0, deadline - now))
            await asyncio.gather(*(self._probe(n, probe_timeout) for n in pending))
            await asyncio.sleep(0.1)

    async def _plan_nodes(self) -> list[int]:
        # Only the first plan gives slow starters a grace period; later a node that is
        # down is known to be down, and a job should not wait for it.
        await self._wait_ready(all_nodes=self._plan_order is None)
        order = self._healthy_order()
        self._plan_order = order
        return [self._nodes[a].max_qubits for a in order]

    # ------------------------------------------------------------------ rounds

    async def _round(self, tasks: list[CircuitTask]) -> list[CircuitResult]:
        current = asyncio.current_task()
        if current is not None:  # cancelled by close(), so no caller waits forever
            self._rounds.add(current)
            current.add_done_callback(self._rounds.discard)
        if not tasks:
            return []
        if not self._healthy_order():
            await self._wait_ready(all_nodes=False)
        jobs = [asyncio.create_task(self._run_task(task)) for task in tasks]
        try:
            return list(await asyncio.gather(*jobs))
        finally:
            for job in jobs:
                job.cancel()

    def _choose(self, task: CircuitTask, exclude: Sequence[_Node]) -> _Node:
        """Pick the node for the next attempt of ``task``.

        Preference: the assigned node if healthy and untried, else the least-loaded
        healthy untried capable node, else any healthy capable node, else (last resort)
        an unhealthy capable one.
        """
        width = len(task.circuit.qubits)
        capable = [n for n in self._nodes.values() if not n.removed and n.max_qubits >= width]
        if not capable:
            largest = max((n.max_qubits for n in self._nodes.values() if not n.removed), default=0)
            raise MeshError(
                "",
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no known node can host the {width}-qubit circuit of task {task.key or '?'} "
                f"(largest node: {largest} qubits)",
            )
        assigned = self._assignment.get(task.key)
        tiers = (
            [n for n in capable if n.healthy and n not in exclude],
            [n for n in capable if n.healthy],
            [n for n in capable if n not in exclude],
            capable,
        )
        for tier in tiers:
            if tier:
                for node in tier:
                    if node.address == assigned:
                        return node
                return min(tier, key=lambda n: (n.in_flight, n.consecutive_failures, n.calls))
        raise AssertionError("unreachable: capable is not empty")

    async def _run_task(self, task: CircuitTask) -> CircuitResult:
        tried: list[_Node] = []
        last: _TransientCallError | None = None
        for attempt in range(1, self.options.max_attempts + 1):
            node = self._choose(task, tried)
            if last is not None:
                node.retries += 1
                self.mesh_stats.add(retries=1)
                self._record(
                    node.address,
                    "failover",
                    f"task {task.key or '?'} attempt {attempt}/{self.options.max_attempts} on {node.address} "
                    f"after {last.node.address} answered {last.code.name}",
                )
            try:
                return await self._attempt(task, node, tried)
            except _TransientCallError as failure:
                last = failure
                tried.append(failure.node)
                if attempt < self.options.max_attempts:
                    await asyncio.sleep(min(1.0, 0.05 * 2 ** (attempt - 1)) * self._random.uniform(0.5, 1.0))
        assert last is not None
        raise MeshError(
            last.node.address,
            last.code,
            f"task {task.key or '?'} failed {self.options.max_attempts} time(s); last error: {last.details}",
        )

    async def _attempt(self, task: CircuitTask, node: _Node, tried: Sequence[_Node]) -> CircuitResult:
        """One attempt: the call to ``node``, plus a hedge call if it is slow."""
        primary = self._launch(node, task)
        hedge_after = self.options.hedge_after_seconds
        if hedge_after is None:
            return await primary
        done, _ = await asyncio.wait({primary}, timeout=hedge_after)
        if done:
            return primary.result()
        partner = self._hedge_partner(task, node, tried)
        if partner is None:
            return await primary
        partner.hedges += 1
        self.mesh_stats.add(hedges=1)
        hedge = self._launch(partner, task)
        pending: set[asyncio.Task[CircuitResult]] = {primary, hedge}
        failure: _TransientCallError | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for job in sorted(done, key=lambda j: j.exception() is not None):
                    error = job.exception()
                    if error is None:
                        winner, loser = (partner, node) if job is hedge else (node, partner)
                        if job is hedge:
                            self.mesh_stats.add(hedge_wins=1)
                        self._record(
                            winner.address,
                            "hedge",
                            f"task {task.key or '?'}: {node.address} silent after {hedge_after:g} s, "
                            f"hedged on {partner.address}; {winner.address} won over {loser.address}",
                        )
                        return job.result()
                    if isinstance(error, _TransientCallError):
                        failure = error
                        continue
                    raise error
            assert failure is not None
            raise failure
        finally:
            for job in pending:
                job.cancel()

    def _hedge_partner(self, task: CircuitTask, node: _Node, tried: Sequence[_Node]) -> _Node | None:
        width = len(task.circuit.qubits)
        options = [
            n
            for n in self._nodes.values()
            if n is not node and n.healthy and not n.removed and n.max_qubits >= width
        ]
        fresh = [n for n in options if n not in tried] or options
        # Idle first, then the fastest lately: a hedge on another slow node buys nothing.
        return min(fresh, key=lambda n: (n.in_flight, n.recent_latency_ms(), n.calls)) if fresh else None

    def _launch(self, node: _Node, task: CircuitTask) -> asyncio.Task[CircuitResult]:
        """Start ``_call`` as a task, counting it in flight from now on.

        The count goes up before the task first runs, so the other tasks of the same
        round, chosen right after, already see this node as busier; it goes down in a
        done callback, which also runs for a task cancelled before it started.
        """
        node.in_flight += 1
        job = asyncio.create_task(self._call(node, task))

        def release(_: asyncio.Task[CircuitResult]) -> None:
            node.in_flight -= 1

        job.add_done_callback(release)
        return job

    async def _call(self, node: _Node, task: CircuitTask) -> CircuitResult:
        """Run ``task`` on ``node``: one RPC, or two when the node lost the circuit.

        Raises:
            _TransientCallError: a transient status (the task may be retried elsewhere).
            MeshError: any other status, or a reply that does not decode.
        """
        digest = task.circuit.hash
        include_json = digest not in node.known_hashes
        start = time.perf_counter()
        try:
            try:
                reply = await self._send(node, task, include_json)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND or include_json:
                    raise
                node.known_hashes.discard(digest)
                reply = await self._send(node, task, True)
        except grpc.aio.AioRpcError as error:
            raise self._failed(node, task, error) from None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        node.known_hashes.add(digest)
        node.latencies_ms.append(elapsed_ms)
        node.consecutive_failures = 0
        if not node.healthy and node.info is not None:
            self._mark_healthy(node, f"answered task {task.key or '?'}")
        try:
            return self._decode(node, task, reply)
        except ValueError as error:
            node.failures += 1
            self.mesh_stats.add(failures=1)
            raise MeshError(node.address, grpc.StatusCode.INTERNAL, f"malformed reply: {error}") from None

    async def _send(
        self, node: _Node, task: CircuitTask, include_json: bool
    ) -> pb.EvaluateResponse | pb.ShiftGradientResponse:
        node.calls += 1
        self.mesh_stats.add(rpcs=1)
        circuit = task.circuit.to_proto(include_json=include_json)
        observables = observables_to_proto(task.observables)
        params = pb.ParameterBatch(symbols=list(task.symbols), values=to_tensor(task.values))
        timeout = self.options.timeout_seconds
        if task.jacobian:
            gradient_request = pb.ShiftGradientRequest(
                circuit=circuit,
                observables=observables,
                params=params,
                wrt=list(task.symbols),
                include_values=True,
                shots=task.shots,
            )
            if task.seed is not None:
                gradient_request.seed = task.seed
            return await node.shift_gradient(gradient_request, timeout=timeout)
        request = pb.EvaluateRequest(
            circuit=circuit, observables=observables, params=params, shots=task.shots
        )
        if task.seed is not None:
            request.seed = task.seed
        return await node.evaluate(request, timeout=timeout)

    def _decode(
        self, node: _Node, task: CircuitTask, reply: pb.EvaluateResponse | pb.ShiftGradientResponse
    ) -> CircuitResult:
        rows, n_obs = int(task.values.shape[0]), len(task.observables)
        expectations = from_tensor(reply.expectations, "expectations")
        if expectations.shape != (rows, n_obs):
            raise ValueError(f"expectations have shape {expectations.shape}, expected {(rows, n_obs)}")
        jacobian: FloatArray | None = None
        if isinstance(reply, pb.ShiftGradientResponse):
            jacobian = from_tensor(reply.jacobian, "jacobian")
            wrt = tuple(reply.wrt) or task.symbols
            if jacobian.shape != (rows, n_obs, len(wrt)) or sorted(wrt) != sorted(task.symbols):
                raise ValueError(
                    f"jacobian has shape {jacobian.shape} over {list(wrt)}, "
                    f"expected {(rows, n_obs, len(task.symbols))} over {list(task.symbols)}"
                )
            if wrt != task.symbols:
                column = {symbol: i for i, symbol in enumerate(wrt)}
                jacobian = np.ascontiguousarray(jacobian[:, :, [column[s] for s in task.symbols]])
        return CircuitResult(expectations, jacobian, node.address)

    def _failed(self, node: _Node, task: CircuitTask, error: grpc.aio.AioRpcError) -> Exception:
        """Account for a failed call; return the exception to raise."""
        code, details = error.code(), error.details() or ""
        node.failures += 1
        self.mesh_stats.add(failures=1)
        if code not in _TRANSIENT:
            return MeshError(node.address, code, f"task {task.key or '?'}: {details}")
        node.consecutive_failures += 1
        kind = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "error"
        self._record(node.address, kind, f"task {task.key or '?'}: {code.name}: {details}")
        if node.consecutive_failures >= _UNHEALTHY_AFTER:
            self._mark_unhealthy(node, f"{node.consecutive_failures} consecutive failures, last {code.name}")
        return _TransientCallError(node, code, details)

    def _record(self, node: str, kind: str, detail: str) -> None:
        with self._faults_lock:
            self._faults.append(FaultRecord(time=time.time(), node=node, kind=kind, detail=detail))
