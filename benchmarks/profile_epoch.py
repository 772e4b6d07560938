"""Where an epoch's time goes: the model, the engine, and the mesh, for one configuration.

Trains the same spec three ways, alternating epochs so that load changes hit all alike:

- ``model only``: an executor that answers every task with zeros at once, so the epoch
  is the coordinator's own work (torch autograd, the LSTM cell, encoding, the quantum
  layer's task building and Jacobian contraction, the optimizer);
- ``in process``: the circuits on an ``InProcessExecutor`` (the node's engine in this
  process); in process minus model only is the engine's share;
- ``mesh``: a ``MeshExecutor`` over N local node processes; mesh minus in process is
  what the network path costs (gRPC, the event-loop hop, the nodes' servers).

Then, for one round's requests sent alone, the median gRPC round trip against the node's
own execute time; and the mesh executor's own cost per round (dispatch, codec, the hop
into its event loop and back) with the nodes' stubs answering at once.

For each it prints the median wall seconds per epoch (epochs 2..), the CPU seconds of
this process and of the node processes per epoch, and per round; and this process's CPU
per round beyond the model's (mesh: the executor, asyncio and the gRPC client; in
process: the engine), and the mesh epochs' CPU on the training thread and on the mesh's
event-loop thread (Linux /proc, 10 ms ticks: use a few epochs).

Usage:
    python benchmarks/profile_epoch.py [--epochs 4] [--nodes 4] [--model distributed] [--qubits 4]
        [--gradient-mode jacobian|vjp]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from model_args import add_model_arguments, model_spec
from proc_cpu import cpu_seconds, thread_cpu_seconds

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, LocalExecutor
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire import node_calls
from qpumesh.wire.channels import open_aio_channel
from qpumesh.wire.tensors import to_tensor
from qpumesh.wire.tls import TlsConfig


class ZeroExecutor(LocalExecutor):
    """Answers every task at once with zeros of the right shapes: the model's time alone."""

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        results = []
        for task in tasks:
            rows, n_obs = task.values.shape[0], len(task.observables)
            if task.cotangents is not None:  # gradient mode "vjp": the backward round
                results.append(CircuitResult(None, None, "zero", vjp=np.zeros((rows, len(task.symbols)))))
                continue
            jacobian = np.zeros((rows, n_obs, len(task.symbols))) if task.jacobian else None
            results.append(CircuitResult(np.zeros((rows, n_obs)), jacobian, "zero"))
        self.stats.record_round(results)
        return results


class InstantStub:
    """Answers every ShiftGradient/Evaluate at once with zeros of the request's shapes; GetInfo for real."""

    def __init__(self, real: Any) -> None:
        self.GetInfo = real.GetInfo

    async def ShiftGradient(self, request: Any, **_: Any) -> pb.ShiftGradientResponse:  # noqa: N802
        rows, n_obs, n_sym = request.params.values.shape[0], len(request.observables), len(request.wrt)
        if request.HasField("cotangents"):
            return pb.ShiftGradientResponse(
                jacobian=to_tensor(np.zeros((rows, n_sym))), wrt=list(request.wrt)
            )
        return pb.ShiftGradientResponse(
            jacobian=to_tensor(np.zeros((rows, n_obs, n_sym))),
            expectations=to_tensor(np.zeros((rows, n_obs))),
            wrt=list(request.wrt),
        )

    async def Evaluate(self, request: Any, **_: Any) -> pb.EvaluateResponse:  # noqa: N802
        rows, n_obs = request.params.values.shape[0], len(request.observables)
        return pb.EvaluateResponse(expectations=to_tensor(np.zeros((rows, n_obs))))


def _executor_alone(mesh: MeshExecutor, tasks: Sequence[CircuitTask], repeats: int) -> tuple[float, float]:
    """Median wall and mean CPU seconds per ``run_round(tasks)`` when every node answers at once."""
    for node in mesh.membership.current():
        node.stub = InstantStub(node.stub)
    walls = []
    cpu = time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        mesh.run_round(tasks)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu) / repeats


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of processes ``pids`` so far (one that ended counts 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def _thread_cpu_seconds(thread_id: int | None) -> float:
    """CPU seconds of this process's thread ``thread_id`` so far (0 for a thread not there)."""
    if thread_id is None:
        return 0.0
    try:
        return thread_cpu_seconds(thread_id)
    except OSError:
        return 0.0


async def _round_trips(
    address: str, tasks: Sequence[CircuitTask], repeats: int, tls: TlsConfig | None
) -> tuple[float, float]:
    """Median gRPC round trip and node execute seconds of each task sent alone to ``address``."""
    channel = open_aio_channel(address, tls=tls)
    stub = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
    trips, executes = [], []
    try:
        for i in range(repeats):
            for task in tasks:
                params = node_calls.parameter_batch(task.symbols, task.values)
                request: Any
                if task.jacobian:
                    request = node_calls.shift_gradient_request(task.observables, params, include_values=True)
                else:
                    request = node_calls.evaluate_request(task.observables, params)
                request.circuit.CopyFrom(task.circuit.to_proto(include_json=True))
                method = stub.ShiftGradient if task.jacobian else stub.Evaluate
                start = time.perf_counter()
                reply = await method(request, timeout=30)
                if i:  # the first sends compile the circuit
                    trips.append(time.perf_counter() - start)
                    executes.append(reply.timings.execute_seconds)
    finally:
        await channel.close(None)
    return statistics.median(trips), statistics.median(executes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=4)
    add_model_arguments(parser)
    parser.add_argument(
        "--plaintext", action="store_true", help="run the local mesh without TLS (default: mutual TLS)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = model_spec(args, args.epochs)
    print(
        f"# {spec.model}, {spec.qubits} qubits, M = {spec.partitions}, gradient mode {spec.gradient_mode}, "
        f"{'plaintext' if args.plaintext else 'mutual TLS'}; load average {os.getloadavg()[0]:.1f}"
    )
    with LocalMesh(
        nodes=args.nodes, node_args=("--torch-threads", "1"), coordinator=False, tls=not args.plaintext
    ) as local_mesh:
        node_pids = local_mesh.pids  # nodes only: no coordinator was started
        tls = local_mesh.coordinator_tls
        mesh = MeshExecutor(local_mesh.node_addresses, tls=tls)
        qubits = mesh.node_max_qubits()
        trainers = {
            "model only": Trainer(spec, ZeroExecutor(), ()),
            "in process": Trainer(spec, InProcessExecutor(), ()),
            "mesh": Trainer(spec, mesh, qubits),
        }
        plan = trainers["mesh"].plan
        assert plan is not None
        mesh.set_assignment(plan.assignment)
        wall: dict[str, list[float]] = {name: [] for name in trainers}
        own: dict[str, list[float]] = {name: [] for name in trainers}
        nodes: dict[str, list[float]] = {name: [] for name in trainers}
        # The mesh epochs' CPU on the training thread and on the mesh's event-loop thread.
        threads = {"training": threading.get_native_id(), "event loop": mesh._thread.native_id}
        by_thread: dict[str, list[float]] = {name: [] for name in threads}
        for _ in range(args.epochs):
            for name, trainer in trainers.items():
                cpu, node_cpu = time.process_time(), _cpu_seconds(node_pids)
                before = {t: _thread_cpu_seconds(i) for t, i in threads.items()}
                wall[name].append(trainer.train_epoch().wall_seconds)
                own[name].append(time.process_time() - cpu)
                nodes[name].append(_cpu_seconds(node_pids) - node_cpu)
                if name == "mesh":
                    for t, i in threads.items():
                        by_thread[t].append(_thread_cpu_seconds(i) - before[t])
        rounds = trainers["mesh"].history[-1].rounds
        print(f"{'':<12} {'s/epoch':>9} {'ms/round':>9} {'own CPU s':>10} {'nodes CPU s':>12}")
        for name in trainers:
            seconds = statistics.median(wall[name][1:] or wall[name])
            print(
                f"{name:<12} {seconds:>9.3f} {1000 * seconds / rounds:>9.2f} "
                f"{statistics.median(own[name][1:] or own[name]):>10.3f} "
                f"{statistics.median(nodes[name][1:] or nodes[name]):>12.3f}"
            )
        beyond = {
            name: (
                statistics.median(own[name][1:] or own[name])
                - statistics.median(own["model only"][1:] or own["model only"])
            )
            / rounds
            for name in ("in process", "mesh")
        }
        print(
            f"this process's CPU per round beyond the model: mesh {1e6 * beyond['mesh']:.0f} µs (the "
            f"executor, asyncio, gRPC client), in process {1e6 * beyond['in process']:.0f} µs (the engine)"
        )
        print(
            "the mesh epochs' CPU per round by thread: "
            + ", ".join(
                f"{t} {1e6 * statistics.median(v[1:] or v) / rounds:.0f} µs" for t, v in by_thread.items()
            )
        )
        # One training round's requests, each sent alone to the node the plan put it on.
        data = trainers["mesh"].dataset
        captured: list[CircuitTask] = []

        class Capture(ZeroExecutor):
            def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
                captured.extend(tasks)
                return super().run_round(tasks)

        probe = Trainer(spec, Capture(), qubits)
        probe.model(data.x_train[: spec.batch_size, :1])  # one time step: one round
        address = local_mesh.node_addresses[plan.assignment[captured[0].key]]
        trip, execute = asyncio.run(_round_trips(address, captured[:1], 200, tls))
        kind = "Jacobian" if captured[0].jacobian else "Evaluate"
        print(
            f"one request ({captured[0].values.shape[0]} rows, {kind}): gRPC round trip "
            f"{1000 * trip:.3f} ms, of which the node's execute time {1000 * execute:.3f} ms"
        )
        mesh.close()
        alone = MeshExecutor(local_mesh.node_addresses, tls=tls)
        alone.node_max_qubits()
        alone.set_assignment(plan.assignment)
        hop_wall, hop_cpu = _executor_alone(alone, [], 2000)
        round_wall, round_cpu = _executor_alone(alone, captured, 2000)
        alone.close()
        print(
            f"the mesh executor alone (nodes answering at once), per round of {len(captured)} task(s): "
            f"{1e6 * round_wall:.0f} µs wall, {1e6 * round_cpu:.0f} µs CPU; an empty round (the thread hop): "
            f"{1e6 * hop_wall:.0f} µs wall, {1e6 * hop_cpu:.0f} µs CPU"
        )
    print(f"# load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
