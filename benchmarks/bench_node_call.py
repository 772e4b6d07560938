"""The node's CPU per small call, and what it does to a mesh round of the default model.

A mesh round of the default model (distributed, 4 qubits, M = 2, chen2020 L = 3) is two
ShiftGradient calls of 40 rows with Jacobian and values, one per node. Beyond gRPC and the
engine, each call pays the node's own Python around the engine (interceptors, admission,
decoding, validation, metrics, the reply). This prints, measured side by side in one run:

1. **per call**: the same captured 40-row request sent one after another (blocking stub,
   mutual TLS) to a node of this tree and, with ``--baseline-python``, to a node run by
   another interpreter (e.g. main's venv, to compare before/after); batches alternate
   between the nodes. For each: the node process's CPU per call (µs, summed over its
   threads from ``/proc/PID/task/*/schedstat``), the round trip and the node's own
   execute time. A bare ``grpc.server`` answering bytes of the same sizes at once
   (``bench_transport.py``'s server) is the floor: gRPC alone.
2. **training** (``--epochs``): the default model in process and on a 4-node mesh of each
   interpreter, epochs alternating; ms per round, the nodes' CPU per call, and whether the
   losses are bit-identical across the runs.

With ``--gradient-mode vjp`` the model trains in gradient mode "vjp" (values forward by
Evaluate, one round of VJPs per time step backward) and the per-call part sends the
forward round's Evaluate request instead (40 rows, exact, by hash).

Usage:
    python benchmarks/bench_node_call.py [--baseline-python /work/main/.venv/bin/python]
        [--calls 300] [--batches 9] [--epochs 4] [--gradient-mode jacobian|vjp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, LocalExecutor
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire import node_calls
from qpumesh.wire.channels import open_channel
from qpumesh.wire.job_spec import GRADIENT_MODES, JobSpec
from qpumesh.wire.tensors import to_tensor
from qpumesh.wire.tls import TlsConfig

BENCH_TRANSPORT = Path(__file__).with_name("bench_transport.py")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of every thread of process ``pid`` so far (nanosecond schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return total / 1e9


class Capture(LocalExecutor):
    """Keeps the tasks of the rounds it is given; answers with zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[CircuitTask] = []

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        self.tasks.extend(tasks)
        results = []
        for task in tasks:
            rows, n_obs = task.values.shape[0], len(task.observables)
            jacobian = np.zeros((rows, n_obs, len(task.symbols))) if task.jacobian else None
            results.append(CircuitResult(np.zeros((rows, n_obs)), jacobian, "zero"))
        return results


def round_tasks(spec: JobSpec) -> list[CircuitTask]:
    """The tasks of the default model's first training round (one per part)."""
    capture = Capture()
    probe = Trainer(spec, capture, ())
    probe.model(probe.dataset.x_train[: spec.batch_size, :1])  # one time step: one round
    return capture.tasks


def request_of(task: CircuitTask, include_json: bool) -> pb.ShiftGradientRequest | pb.EvaluateRequest:
    """The request the mesh sends for ``task`` (`mesh.dispatch`: Jacobian with values, or Evaluate)."""
    params = node_calls.parameter_batch(task.symbols, task.values)
    request: pb.ShiftGradientRequest | pb.EvaluateRequest
    if task.jacobian:
        request = node_calls.shift_gradient_request(
            task.observables, params, wrt=task.symbols, include_values=True, shots=task.shots, seed=task.seed
        )
    else:
        request = node_calls.evaluate_request(task.observables, params, shots=task.shots, seed=task.seed)
    request.circuit.CopyFrom(task.circuit.to_proto(include_json=include_json))
    return request


def reply_size(task: CircuitTask) -> int:
    """Bytes of the node's reply to ``task``'s request (its tensors, timings and counts filled in)."""
    rows, n_obs, n_sym = task.values.shape[0], len(task.observables), len(task.symbols)
    timings = pb.Timings(queue_seconds=1e-3, execute_seconds=1e-3)
    reply: pb.ShiftGradientResponse | pb.EvaluateResponse
    if task.jacobian:
        reply = pb.ShiftGradientResponse(
            jacobian=to_tensor(np.ones((rows, n_obs, n_sym))),
            expectations=to_tensor(np.ones((rows, n_obs))),
            wrt=list(task.symbols),
            backend="batched",
            method=pb.GRADIENT_METHOD_ADJOINT,
            shift_rule_executions=rows * (2 * n_sym + 1),
            hardware_seconds=1.0,
            timings=timings,
        )
    else:
        reply = pb.EvaluateResponse(
            expectations=to_tensor(np.ones((rows, n_obs))),
            backend="batched",
            hardware_seconds=1.0,
            executions=rows,
            timings=timings,
        )
    return len(reply.SerializeToString())


@dataclass
class Target:
    """Something answering calls, and what its process spent on them."""

    name: str
    pid: int
    call: Callable[[], float | None]
    cpu: list[float] = field(default_factory=list)
    trips: list[float] = field(default_factory=list)
    executes: list[float] = field(default_factory=list)

    def batch(self, calls: int) -> None:
        """Send ``calls`` calls; keep their CPU per call, round trips and execute times."""
        before = cpu_seconds(self.pid)
        for _ in range(calls):
            start = time.perf_counter()
            execute = self.call()
            self.trips.append(time.perf_counter() - start)
            if execute is not None:
                self.executes.append(execute)
        self.cpu.append((cpu_seconds(self.pid) - before) / calls)

    def line(self) -> str:
        execute = f"{1e3 * statistics.median(self.executes):>10.3f}" if self.executes else f"{'-':>10}"
        spread = f"{1e6 * min(self.cpu):.0f}-{1e6 * max(self.cpu):.0f}"
        return (
            f"{self.name:<34} {1e6 * statistics.median(self.cpu):>9.0f} {spread:>11} "
            f"{1e3 * statistics.median(self.trips):>9.3f} {execute}"
        )


def node_target(name: str, mesh: LocalMesh, task: CircuitTask, tls: TlsConfig | None) -> Target:
    """Calls of ``task``'s request, by hash, to the mesh's first node (sent the circuit once first)."""
    channel = open_channel(mesh.node_addresses[0], tls=tls)
    stub = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
    method = stub.ShiftGradient if task.jacobian else stub.Evaluate
    method(request_of(task, include_json=True), timeout=30)
    by_hash = request_of(task, include_json=False)

    def call() -> float:
        reply = method(by_hash, timeout=30)
        return float(reply.timings.execute_seconds)

    for _ in range(50):
        call()
    return Target(name, mesh.pids[0], call)


def bare_target(certs: Path, tls: TlsConfig, request: bytes, reply_size: int, stack: ExitStack) -> Target:
    """Calls to ``bench_transport.py``'s server: gRPC alone, answering at once."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    port_file = directory / "port"
    server = subprocess.Popen(
        [sys.executable, str(BENCH_TRANSPORT), "--serve", str(port_file), "--certs", str(certs)]
    )
    stack.callback(server.wait)
    stack.callback(server.kill)
    while not port_file.exists() or not port_file.read_text(encoding="ascii"):
        time.sleep(0.05)
    channel = open_channel(f"127.0.0.1:{port_file.read_text(encoding='ascii')}", tls=tls)
    stack.callback(channel.close)
    unary = channel.unary_unary("/bench.Transport/Call", lambda b: b, lambda b: b)

    def call() -> None:
        unary(request, timeout=30)

    for _ in range(50):
        call()
    return Target(f"bare grpc.server ({len(request)} B, {reply_size} B)", server.pid, call)


def per_call(args: argparse.Namespace, spec: JobSpec, stack: ExitStack) -> None:
    """Part 1: the node's CPU per call, side by side."""
    task = round_tasks(spec)[0]
    pythons = [("this tree", sys.executable)]
    if args.baseline_python:
        pythons.insert(0, ("baseline", args.baseline_python))
    targets = []
    for name, python in pythons:
        mesh = stack.enter_context(
            LocalMesh(nodes=1, node_args=("--torch-threads", "1"), coordinator=False, python=python)
        )
        targets.append(node_target(f"node, {name}", mesh, task, mesh.coordinator_tls))
    tls, certs = mesh.coordinator_tls, mesh.certificates
    assert tls is not None and certs is not None
    by_hash = request_of(task, include_json=False).SerializeToString()
    targets.append(bare_target(certs.directory, tls, by_hash, reply_size(task), stack))
    for _ in range(args.batches):
        for target in targets:
            target.batch(args.calls)
    rows = task.values.shape[0]
    what = (
        "ShiftGradient call: {} rows, Jacobian + values" if task.jacobian else "Evaluate call: {} rows, exact"
    )
    print(
        f"## one {what.format(rows)}, by hash, mutual TLS, "
        f"{args.calls} calls x {args.batches} batches, alternating"
    )
    print(f"{'target':<34} {'CPU µs':>9} {'(batches)':>11} {'trip ms':>9} {'execute ms':>10}")
    for target in targets:
        print(target.line(), flush=True)


def training(args: argparse.Namespace, spec: JobSpec, stack: ExitStack) -> None:
    """Part 2: the default model in process and on a mesh of each interpreter."""
    pythons = [("this tree", sys.executable)]
    if args.baseline_python:
        pythons.insert(0, ("baseline", args.baseline_python))
    trainers: dict[str, Trainer] = {"in process": Trainer(spec, InProcessExecutor(), ())}
    pids: dict[str, list[int]] = {"in process": []}
    for name, python in pythons:
        mesh = stack.enter_context(
            LocalMesh(nodes=4, node_args=("--torch-threads", "1"), coordinator=False, python=python)
        )
        executor = MeshExecutor(mesh.node_addresses, tls=mesh.coordinator_tls)
        stack.callback(executor.close)
        trainer = Trainer(spec, executor, executor.node_max_qubits())
        assert trainer.plan is not None
        executor.set_assignment(trainer.plan.assignment)
        trainers[f"mesh, {name} nodes"] = trainer
        pids[f"mesh, {name} nodes"] = mesh.pids
    wall: dict[str, list[float]] = {name: [] for name in trainers}
    node_cpu: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.epochs):
        for name, trainer in trainers.items():
            before = sum(cpu_seconds(p) for p in pids[name])
            wall[name].append(trainer.train_epoch().wall_seconds)
            node_cpu[name].append(sum(cpu_seconds(p) for p in pids[name]) - before)
    rounds = trainers["in process"].history[-1].rounds
    calls = 2 * rounds
    print(
        f"## training: {spec.model}, {spec.qubits} qubits, M = {spec.partitions}, gradient mode "
        f"{spec.gradient_mode}, {rounds} rounds per epoch, "
        f"{args.epochs} epochs alternating (medians of epochs 2..)"
    )
    print(f"{'run':<28} {'ms/round':>9} {'x in process':>13} {'node CPU µs/call':>17}")
    base = statistics.median(wall["in process"][1:] or wall["in process"])
    for name in trainers:
        seconds = statistics.median(wall[name][1:] or wall[name])
        cpu = statistics.median(node_cpu[name][1:] or node_cpu[name])
        cpu_text = f"{1e6 * cpu / calls:>17.0f}" if pids[name] else f"{'-':>17}"
        print(f"{name:<28} {1e3 * seconds / rounds:>9.2f} {seconds / base:>13.2f} {cpu_text}")
    losses = {name: [repr(e.train_loss) for e in trainer.history] for name, trainer in trainers.items()}
    same = all(value == losses["in process"] for value in losses.values())
    for name, value in losses.items():
        print(f"  {name}: {value}")
    print(
        f"losses bit-identical across the runs: {same} "
        f"({losses['in process'][-1]} after {args.epochs} epochs)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline-python", default="", help="interpreter whose qpumesh node to compare with"
    )
    parser.add_argument("--calls", type=int, default=300, help="calls per batch")
    parser.add_argument("--batches", type=int, default=9, help="batches per target, alternating")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per run (0: skip training)")
    parser.add_argument(
        "--gradient-mode",
        choices=GRADIENT_MODES,
        default="jacobian",
        help="the model's gradient mode (vjp: the per-call part sends the forward round's Evaluate)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = JobSpec(
        model="distributed",
        qubits=4,
        partitions=2,
        epochs=max(args.epochs, 1),
        gradient_mode=args.gradient_mode,
    )
    print(
        f"# load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"baseline {args.baseline_python or '-'}"
    )
    with ExitStack() as stack:
        per_call(args, spec, stack)
    if args.epochs:
        with ExitStack() as stack:
            training(args, spec, stack)
    print(f"# load average after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
