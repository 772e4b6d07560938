"""The floor under a gRPC mesh round on this machine, against the in-process round.

Issue 8 asks a mesh of the default model to cost at most 1.2x its in-process epoch. This
script measures how close *any* mesh built on gRPC Python can come on the machine it runs
on, by training the same spec with executors that keep the model and the engine's work but
strip everything else away:

- ``model only``: every task answered with zeros at once (the coordinator's own work);
- ``in process``: the circuits on an ``InProcessExecutor``; in process minus model only is
  the engine's share per task, which the floors below spend as a busy loop on their servers;
- ``unary floor``: each round's tasks sent concurrently as bare unary calls, one per task, to
  ``--servers`` server processes (each task to its own server, as the planner spreads the
  parts), from an event-loop thread the training thread hands the round to, as the mesh
  does. The servers are plain ``grpc.server``s with a thread pool (as a node is) and a
  generic bytes handler: no protobuf codec, no interceptors, no TLS, no validation, no
  engine. Each call carries as many bytes as the real request and gets as many bytes as
  the real reply; the server spins for the engine's share and answers;
- ``unary, no hop``: the same calls on an event loop the training thread runs itself, as a
  check of what the hand-off to the mesh's event-loop thread costs at the floor;
- ``stream floor``: the same messages over one persistent bidirectional stream per server,
  driven from the training thread with blocking iterators (the cheapest gRPC Python path
  measured here: no event loop, no per-call set-up);
- ``mesh`` (``--mesh``): the real ``MeshExecutor`` over a local mesh of ``--nodes`` node
  processes with mutual TLS, for comparison.

Epochs alternate between the executors so that load changes hit all alike. Prints the median
seconds per epoch (epochs 2..), milliseconds per round, and each one's ratio to in process.
A floor's ratio is a lower bound for a mesh over that transport: a real mesh adds the codec,
validation, deadlines, retries, auth, telemetry and fault injection on top.

Usage:
    python benchmarks/transport_floor.py [--epochs 6] [--mesh] [--model distributed --qubits 4 --partitions 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import queue
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import numpy as np
import torch
from model_args import add_model_arguments, model_spec
from profile_epoch import ZeroExecutor

from qpumesh.coordinator.executor import CircuitResult, CircuitTask
from qpumesh.coordinator.mesh.deadlines import call_kind
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire import node_calls
from qpumesh.wire.channels import bind, open_aio_channel, open_channel
from qpumesh.wire.tensors import fill_tensor

_HEADER = struct.Struct("<II")
"""A floor request's header: nanoseconds to spin, bytes to answer."""

_TIMINGS = pb.Timings(queue_seconds=1e-5, execute_seconds=1e-4)
"""A reply's timings, for its size (every field set, as a node's are)."""

_UNARY = "/floor.Floor/Call"
_STREAM = "/floor.Floor/Stream"


def _spin(nanoseconds: int) -> None:
    """Use ``nanoseconds`` of this thread's CPU (holding the GIL), as the engine's share of a call would."""
    end = time.thread_time_ns() + nanoseconds
    while time.thread_time_ns() < end:
        pass


def _answer(request: bytes, replies: dict[int, bytes]) -> bytes:
    spin, size = _HEADER.unpack_from(request)
    _spin(spin)
    reply = replies.get(size)
    if reply is None:
        reply = replies[size] = bytes(size)
    return reply


def start_server() -> tuple[grpc.Server, int]:
    """Start a floor server in this process: a thread-pool ``grpc.server`` with bare bytes handlers.

    Returns:
        The started server and its port (on 127.0.0.1, plaintext).
    """
    replies: dict[int, bytes] = {}

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return _answer(request, replies)

    def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            yield _answer(request, replies)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {
        "Call": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("floor.Floor", handlers),))
    port = bind(server, "127.0.0.1:0")
    server.start()
    return server, port


def _serve(port_queue: Any) -> None:
    """A floor server process: serves until terminated; puts its port on ``port_queue``."""
    server, port = start_server()
    port_queue.put(port)
    server.wait_for_termination()


def wire_sizes(task: CircuitTask) -> tuple[int, int]:
    """Bytes of the real request (circuit sent by hash) and of the real reply for ``task``."""
    templates = node_calls.RequestTemplates()
    rows, n_obs, n_sym = task.values.shape[0], len(task.observables), len(task.symbols)
    if task.jacobian or task.cotangents is not None:
        request: Any = templates.shift_gradient(
            task.observables, task.symbols, task.values, wrt=task.symbols, cotangents=task.cotangents,
            include_values=task.jacobian, shots=task.shots, seed=task.seed,
        )  # fmt: skip
        reply: Any = pb.ShiftGradientResponse(
            wrt=list(task.symbols), timings=_TIMINGS, backend="batched", method=pb.GRADIENT_METHOD_ADJOINT,
            shift_rule_executions=rows * (2 * n_sym + 1), hardware_seconds=1e-3,
        )  # fmt: skip
        if task.jacobian:
            fill_tensor(reply.jacobian, np.zeros((rows, n_obs, n_sym)))
            fill_tensor(reply.expectations, np.zeros((rows, n_obs)))
        else:
            fill_tensor(reply.jacobian, np.zeros((rows, n_sym)))
    else:
        request = templates.evaluate(
            task.observables, task.symbols, task.values, shots=task.shots, seed=task.seed
        )
        reply = pb.EvaluateResponse(
            timings=_TIMINGS, backend="batched", executions=rows, hardware_seconds=1e-3
        )
        fill_tensor(reply.expectations, np.zeros((rows, n_obs)))
    request.circuit.CopyFrom(task.circuit.to_proto(include_json=False))
    return request.ByteSize(), reply.ByteSize()


class TimedInProcess(InProcessExecutor):
    """An in-process executor that keeps each round's engine seconds per task, by task kind."""

    def __init__(self) -> None:
        super().__init__()
        self.per_task: dict[str, list[float]] = {}

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        start = time.perf_counter()
        results = super().run_round(tasks)
        if tasks:
            seconds = (time.perf_counter() - start) / len(tasks)
            self.per_task.setdefault(call_kind(tasks[0]), []).append(seconds)
        return results


class _FloorBase(ZeroExecutor):
    """Shared part of the floors: the servers, the spin per task, the messages' sizes."""

    def __init__(self, ports: Sequence[int]) -> None:
        super().__init__()
        self.ports = list(ports)
        self.spin_ns: dict[str, int] = {}
        """Nanoseconds the server spins per task, by kind (``deadlines.call_kind``)."""
        self._payloads: dict[tuple[int, str], bytes] = {}

    def payload(self, task: CircuitTask) -> bytes:
        """The bytes sent for ``task``: as many as its real request, headed by spin and reply size."""
        key = (id(task.circuit), call_kind(task))
        payload = self._payloads.get(key)
        if payload is None:
            request_size, reply_size = wire_sizes(task)
            payload = _HEADER.pack(self.spin_ns.get(key[1], 0), reply_size) + bytes(
                max(0, request_size - _HEADER.size)
            )
            self._payloads[key] = payload
        return payload


class UnaryFloor(_FloorBase):
    """Bare unary calls, one per task, gathered on an event-loop thread (the mesh's shape)."""

    def __init__(self, ports: Sequence[int]) -> None:
        super().__init__(ports)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._calls = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result()

    async def _open(self) -> list[Any]:
        self._channels = [open_aio_channel(f"127.0.0.1:{port}") for port in self.ports]
        return [channel.unary_unary(_UNARY, None, None) for channel in self._channels]

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        payloads = [self.payload(task) for task in tasks]
        done = threading.Lock()
        done.acquire()

        async def send() -> None:
            try:
                await asyncio.gather(*(self._calls[i % len(self._calls)](p) for i, p in enumerate(payloads)))
            finally:
                done.release()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(send()))
        done.acquire()
        return super().run_round(tasks)  # zeros of the model's shapes, the round counted

    def close(self) -> None:
        async def shut() -> None:
            for channel in self._channels:
                await channel.close(None)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


class InlineUnaryFloor(_FloorBase):
    """Bare unary calls on an event loop that the training thread runs itself: no thread hop."""

    def __init__(self, ports: Sequence[int]) -> None:
        super().__init__(ports)
        self._loop = asyncio.new_event_loop()
        self._channels = [self._loop.run_until_complete(self._open(port)) for port in self.ports]
        self._calls = [channel.unary_unary(_UNARY, None, None) for channel in self._channels]

    @staticmethod
    async def _open(port: int) -> grpc.aio.Channel:
        return open_aio_channel(f"127.0.0.1:{port}")

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        payloads = [self.payload(task) for task in tasks]

        async def send() -> None:
            await asyncio.gather(*(self._calls[i % len(self._calls)](p) for i, p in enumerate(payloads)))

        self._loop.run_until_complete(send())
        return super().run_round(tasks)

    def close(self) -> None:
        for channel in self._channels:
            self._loop.run_until_complete(channel.close(None))
        self._loop.close()


class StreamFloor(_FloorBase):
    """One persistent bidirectional stream per server, driven from the training thread."""

    def __init__(self, ports: Sequence[int]) -> None:
        super().__init__(ports)
        self._channels = [open_channel(f"127.0.0.1:{port}") for port in self.ports]
        self._outboxes: list[queue.SimpleQueue[bytes | None]] = [queue.SimpleQueue() for _ in self.ports]
        self._replies: list[Iterator[bytes]] = [
            iter(channel.stream_stream(_STREAM, None, None)(self._drain(outbox)))
            for channel, outbox in zip(self._channels, self._outboxes, strict=True)
        ]

    @staticmethod
    def _drain(outbox: queue.SimpleQueue[bytes | None]) -> Iterator[bytes]:
        while (message := outbox.get()) is not None:
            yield message

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        lanes = [i % len(self._outboxes) for i in range(len(tasks))]
        for lane, task in zip(lanes, tasks, strict=True):
            self._outboxes[lane].put(self.payload(task))
        for lane in lanes:
            next(self._replies[lane])
        return super().run_round(tasks)  # zeros of the model's shapes, the round counted

    def close(self) -> None:
        for outbox in self._outboxes:
            outbox.put(None)
        for channel in self._channels:
            channel.close()


def _median_after_first(values: Sequence[float]) -> float:
    return statistics.median(values[1:] or values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--epochs", type=int, default=6, help="epochs per executor (the first is not counted)"
    )
    add_model_arguments(parser)
    parser.add_argument("--servers", type=int, default=2, help="floor server processes (one per part)")
    parser.add_argument("--mesh", action="store_true", help="also train on a real local mesh (mutual TLS)")
    parser.add_argument("--nodes", type=int, default=4, help="node processes of the --mesh run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = model_spec(args, args.epochs)
    print(
        f"# {spec.model}, {spec.qubits} qubits, M = {spec.partitions}, gradient mode {spec.gradient_mode}; "
        f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs"
    )

    # The engine's share per task and kind, timed around the in-process executor's rounds
    # (median over epochs 2-3; the first compiles and fills caches): the floors' servers spin it.
    timed = TimedInProcess()
    model_only, in_process = Trainer(spec, ZeroExecutor(), ()), Trainer(spec, timed, ())
    for epoch in range(3):
        if epoch == 1:
            timed.per_task.clear()
        model_only.train_epoch()
        in_process.train_epoch()
    rounds = in_process.history[-1].rounds
    spin = {kind: int(1e9 * statistics.median(seconds)) for kind, seconds in timed.per_task.items()}
    print(
        "# engine's share per task, timed in process: "
        + ", ".join(f"{kind} {ns / 1000:.0f} µs" for kind, ns in spin.items())
        + f"; {rounds} rounds per epoch"
    )

    context = multiprocessing.get_context("spawn")
    ports_queue = context.Queue()
    servers = [context.Process(target=_serve, args=(ports_queue,), daemon=True) for _ in range(args.servers)]
    for server in servers:
        server.start()
    ports = [ports_queue.get(timeout=60) for _ in servers]
    floors: list[UnaryFloor | InlineUnaryFloor | StreamFloor] = [
        UnaryFloor(ports),
        InlineUnaryFloor(ports),
        StreamFloor(ports),
    ]
    for floor in floors:
        floor.spin_ns = spin
    trainers: dict[str, Trainer] = {
        "model only": model_only,
        "in process": in_process,
        "unary floor": Trainer(spec, floors[0], ()),
        "unary, no hop": Trainer(spec, floors[1], ()),
        "stream floor": Trainer(spec, floors[2], ()),
    }
    with contextlib.ExitStack() as cleanup:
        for floor in floors:
            cleanup.callback(floor.close)
        for server in servers:
            cleanup.callback(server.terminate)
        if args.mesh:
            from qpumesh.client.local_mesh import LocalMesh
            from qpumesh.coordinator.mesh.executor import MeshExecutor

            local_mesh = cleanup.enter_context(
                LocalMesh(nodes=args.nodes, node_args=("--torch-threads", "1"), coordinator=False, tls=True)
            )
            mesh = MeshExecutor(local_mesh.node_addresses, tls=local_mesh.coordinator_tls)
            cleanup.callback(mesh.close)
            trainers["mesh"] = Trainer(spec, mesh, mesh.node_max_qubits())
            plan = trainers["mesh"].plan
            assert plan is not None
            mesh.set_assignment(plan.assignment)
        wall: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(args.epochs):
            for name, trainer in trainers.items():
                wall[name].append(trainer.train_epoch().wall_seconds)
        base = _median_after_first(wall["in process"])
        print(f"{'':<13} {'s/epoch':>8} {'ms/round':>9} {'x in process':>13}")
        for name in trainers:
            seconds = _median_after_first(wall[name])
            print(f"{name:<13} {seconds:>8.3f} {1000 * seconds / rounds:>9.2f} {seconds / base:>13.2f}")
        model = _median_after_first(wall["model only"])
        print(
            f"# 1.2x in process leaves {1e6 * 0.2 * base / rounds:.0f} µs per round beyond the in-process "
            f"round; the engine's share, spent in series in process and in parallel by the floors' "
            f"servers: {1e6 * (base - model) / rounds:.0f} µs per round"
        )
    print(f"# load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
