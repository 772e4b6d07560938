"""Gradient modes side by side: seconds per epoch of the centric QLSTM, "jacobian" vs "vjp".

In mode "jacobian" a node returns each part's full Jacobian in the forward round; its
adjoint method costs about one reverse sweep per read-out (a centric model of width Q has
Q - 1), so wide parts are slow. In mode "vjp" the forward round only evaluates and the
backward pass sends the incoming gradient as cotangents: ONE weighted reverse sweep per
request, at the price of a second round per time step (docs/model.md, "Gradient modes").

The runs are the scale study's centric rows (``benchmarks/study_runs.py``: the pendulum,
the default chen2020 ansatz with 3 layers, batch 10, window 4; in process on
``InProcessExecutor`` with the studies' ``max_request_cost``; torch on one thread).
For each width the two modes run one after the other (mode order alternating per
repetition), so machine load hits both alike; the table gives the ratio of the medians,
and the train losses of both modes, which must agree (same gradients to ~1e-15).

``--batches N`` times the first N training mini-batches instead of whole epochs (for
widths whose jacobian epoch is too slow to wait for) and says so in the table.

``--mesh N`` also trains ``--mesh-models`` (default: the default distributed model and
centric-8) on a local mesh of N real node processes in both modes, alternating epochs
(median of epochs 2..), to show what the second round per time step costs on a network.

Usage:
    python benchmarks/bench_gradient_mode.py [--widths 8 12 16] [--repeat 1] [--batches 0]
    python benchmarks/bench_gradient_mode.py --widths --mesh 2 [--mesh-epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.node.core import NodeConfig
from qpumesh.wire.job_spec import GRADIENT_MODES, JobSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_runs import STUDY_MAX_REQUEST_COST


@dataclass
class Timing:
    """One measurement: a mode at a width."""

    width: int
    mode: str
    seconds: float
    train_loss: float
    rounds: int
    circuit_evaluations: int


def load() -> str:
    """The 1-minute load average, for the record."""
    return f"{os.getloadavg()[0]:.1f}"


def measure(width: int, mode: str, batches: int, seed: int = 0) -> Timing:
    """Train a fresh centric model of ``width`` for one epoch (or ``batches`` mini-batches)."""
    spec = JobSpec(task="pendulum", model="centric", qubits=width, gradient_mode=mode, seed=seed, epochs=1)
    executor = InProcessExecutor(NodeConfig(node_id="local", max_request_cost=STUDY_MAX_REQUEST_COST))
    trainer = Trainer(spec, executor)
    if batches <= 0:
        metrics = trainer.train_epoch()
        return Timing(
            width, mode, metrics.wall_seconds, metrics.train_loss, metrics.rounds, metrics.circuit_evaluations
        )
    data, model = trainer.dataset, trainer.model
    before = executor.stats.snapshot()
    start = time.perf_counter()
    total, count = 0.0, 0
    for first in range(0, min(len(data.x_train), batches * spec.batch_size), spec.batch_size):
        x = data.x_train[first : first + spec.batch_size]
        y = data.y_train[first : first + spec.batch_size]
        trainer.optimizer.zero_grad()
        loss = trainer.loss_fn(model(x), y)
        loss.backward()
        trainer.optimizer.step()
        total += float(loss.detach()) * len(x)
        count += len(x)
    seconds = time.perf_counter() - start
    after = executor.stats.snapshot()
    return Timing(
        width,
        mode,
        seconds,
        total / count,
        after["rounds"] - before["rounds"],
        after["circuit_evaluations"] - before["circuit_evaluations"],
    )


MESH_MODELS: dict[str, dict[str, object]] = {
    "distributed-4": {"model": "distributed", "qubits": 4, "partitions": 2},
    "centric-8": {"model": "centric", "qubits": 8},
}
"""The ``--mesh`` rows: the default model (2-qubit parts, where the round trip dominates) and a wider part."""


def mesh_table(nodes: int, epochs: int, models: list[str]) -> None:
    """Train each of ``models`` on a local mesh in both modes, alternating epochs; print a table."""
    rows = []
    with LocalMesh(nodes=nodes, node_args=("--torch-threads", "1"), coordinator=False) as local_mesh:
        for name in models:
            executors = {
                m: MeshExecutor(local_mesh.node_addresses, tls=local_mesh.coordinator_tls)
                for m in GRADIENT_MODES
            }
            try:
                trainers = {}
                for mode, executor in executors.items():
                    spec = JobSpec(**MESH_MODELS[name], gradient_mode=mode, epochs=epochs)  # type: ignore[arg-type]
                    trainers[mode] = Trainer(spec, executor, executor.node_max_qubits())
                    if trainers[mode].plan is not None:
                        executor.set_assignment(trainers[mode].plan.assignment)  # type: ignore[union-attr]
                seconds: dict[str, list[float]] = {m: [] for m in GRADIENT_MODES}
                for _ in range(epochs):
                    for mode, trainer in trainers.items():
                        metrics = trainer.train_epoch()
                        seconds[mode].append(metrics.wall_seconds)
                        print(
                            f"mesh {name} {mode:8s} epoch {metrics.epoch} {metrics.wall_seconds:.2f} s, "
                            f"{metrics.rounds} rounds, train loss {metrics.train_loss:.15g} (load {load()})",
                            flush=True,
                        )
            finally:
                for executor in executors.values():
                    executor.close()
            jac, vjp = (statistics.median(seconds[m][1:] or seconds[m]) for m in GRADIENT_MODES)
            rows.append(f"| {name} | {nodes} | {jac:.2f} | {vjp:.2f} | {jac / vjp:.2f}x |")
    print(f"\n| model, {nodes}-node local mesh | nodes | jacobian s/epoch | vjp s/epoch | jacobian / vjp |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print one line per measurement, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="*", default=[8, 12, 16])
    parser.add_argument(
        "--mesh", type=int, default=0, metavar="N", help="also compare on a local mesh of N nodes"
    )
    parser.add_argument("--mesh-epochs", type=int, default=3)
    parser.add_argument("--mesh-models", nargs="+", choices=list(MESH_MODELS), default=list(MESH_MODELS))
    parser.add_argument("--repeat", type=int, default=1, help="measurements per width and mode")
    parser.add_argument(
        "--batches", type=int, default=0, help="time this many mini-batches (0 = whole epochs)"
    )
    parser.add_argument(
        "--first", choices=GRADIENT_MODES, default="vjp", help="mode measured first at each width"
    )
    parser.add_argument("--only", choices=GRADIENT_MODES, help="measure this mode only (no table)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    unit = f"{args.batches} batches" if args.batches > 0 else "epoch"
    print(
        f"# started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load()}, {os.cpu_count()} cpus", flush=True
    )
    timings: list[Timing] = []
    for width in args.widths:
        order = [args.only] if args.only else [args.first, *(m for m in GRADIENT_MODES if m != args.first)]
        for repetition in range(args.repeat):
            for mode in order if repetition % 2 == 0 else order[::-1]:
                timing = measure(width, mode, args.batches)
                timings.append(timing)
                print(
                    f"width {width:2d} {mode:8s} {timing.seconds:9.2f} s/{unit}  train loss "
                    f"{timing.train_loss:.15g}  rounds {timing.rounds}  executions "
                    f"{timing.circuit_evaluations}  ({datetime.now(UTC):%H:%M} UTC, load {load()})",
                    flush=True,
                )
    if timings and not args.only:
        print(
            f"\n| centric width | jacobian s/{unit} | vjp s/{unit} | jacobian / vjp "
            "| train loss, jacobian | vjp |"
        )
        print("|---|---|---|---|---|---|")
        for width in args.widths:
            by_mode = {m: [t for t in timings if t.width == width and t.mode == m] for m in GRADIENT_MODES}
            jac = statistics.median(t.seconds for t in by_mode["jacobian"])
            vjp = statistics.median(t.seconds for t in by_mode["vjp"])
            print(
                f"| {width} | {jac:.1f} | {vjp:.1f} | {jac / vjp:.1f}x | "
                f"{by_mode['jacobian'][0].train_loss:.12g} | {by_mode['vjp'][0].train_loss:.12g} |"
            )
    if args.mesh:
        mesh_table(args.mesh, args.mesh_epochs, args.mesh_models)
    print(f"# finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load()}")


if __name__ == "__main__":
    main()
