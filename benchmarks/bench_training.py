"""Training throughput: wall seconds per epoch of the QLSTM on the damped pendulum.

An epoch is 16 mini-batches of 10 windows x 4 time steps (64 training rounds with
Jacobians) plus one evaluation round per time step over the 78 test windows. The
executor comes from a factory so the same measurement runs in process or over a mesh:
``measure(spec, factory)`` is importable, e.g.

    from benchmarks.bench_training import measure
    measure(spec, lambda: MeshExecutor(addresses), node_max_qubits=[4, 4])

Modes (all ratios come from one run, side by side, so machine load hits both alike):

- default: in process only, one line per configuration of ``--only``;
- ``--mesh N``: every configuration in process and on a local mesh of N real ``qpumesh
  node serve`` processes on loopback, alternating epochs; also the sequential network
  rounds of one training batch (forward + backward), whose target is the window T;
- ``--scale``: issue 8's scale table -- many small parts (4-qubit parts, widths 4 to 64,
  one node per part) and few large parts (2 x 8, 2 x 10, 2 x 12 qubits on 2 nodes) -- in
  process, on a local mesh, and (with the ``peer`` extra installed) the same model in
  PennyLane (``benchmarks/peer_pennylane.py``, default.qubit with backprop);
- ``--targets``: measures issue 8's speed targets and prints each with its ratio.

Mesh runs use one local mesh of ``--nodes`` node processes (max 12 qubits each); a
configuration on k nodes uses the first k of them. Times are medians of epochs 2.. (epoch
1 compiles circuits and warms the engines), so use ``--epochs 3`` or more.

Usage:
    python benchmarks/bench_training.py [--epochs 3] [--only centric-4 distributed-4] [--mesh 4]
    python benchmarks/bench_training.py --scale [--epochs 3] [--no-peer | --no-scale-peer]
    python benchmarks/bench_training.py --targets [--epochs 3]
    python benchmarks/bench_training.py --scale --targets --no-scale-peer   # issue 8's table, one run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.coordinator.executor import Executor
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.job_spec import JobSpec
from qpumesh.wire.tls import TlsConfig

ExecutorFactory = Callable[[], Executor]

CONFIGS: dict[str, dict[str, Any]] = {
    "centric-4": {"model": "centric", "qubits": 4},
    "distributed-4": {"model": "distributed", "qubits": 4},
    "centric-6": {"model": "centric", "qubits": 6},
    "distributed-6": {"model": "distributed", "qubits": 6, "partitions": 3},
    "classical-4": {"model": "classical", "qubits": 4},
    # The PennyLane peer's configurations (benchmarks/peer_pennylane.py, issue 8).
    "centric-v0-4": {"model": "centric", "qubits": 4, "ansatz": "v0", "layers": 5},
    "centric-v0-10": {"model": "centric", "qubits": 10, "ansatz": "v0", "layers": 5},
    # Issue 8's scale table: many small parts (4 qubits each) ...
    "parts-4x1": {"model": "distributed", "qubits": 4, "partitions": 1},
    "parts-4x2": {"model": "distributed", "qubits": 8, "partitions": 2},
    "parts-4x4": {"model": "distributed", "qubits": 16, "partitions": 4},
    "parts-4x6": {"model": "distributed", "qubits": 24, "partitions": 6},
    "parts-4x7": {"model": "distributed", "qubits": 28, "partitions": 7},
    "parts-4x8": {"model": "distributed", "qubits": 32, "partitions": 8},
    "parts-4x16": {"model": "distributed", "qubits": 64, "partitions": 16},
    # ... and few large ones.
    "parts-8x2": {"model": "distributed", "qubits": 16, "partitions": 2},
    "parts-10x2": {"model": "distributed", "qubits": 20, "partitions": 2},
    "parts-12x2": {"model": "distributed", "qubits": 24, "partitions": 2},
}
SCALE = [name for name in CONFIGS if name.startswith("parts-")]
NODE_QUBITS = 12
"""--max-qubits of the local mesh's nodes (the widest part of the scale table)."""


def median_tail(seconds: Sequence[float]) -> float:
    """Median of epochs 2.. (epoch 1 compiles and warms up), or of what there is."""
    return statistics.median(list(seconds[1:]) or list(seconds))


def measure(
    spec: JobSpec,
    factory: ExecutorFactory,
    epochs: int = 2,
    node_max_qubits: Sequence[int] = (),
) -> dict[str, Any]:
    """Train ``epochs`` epochs and return per-epoch wall seconds, rounds and evaluations.

    The executor is created by ``factory`` (not for the classical model) and closed after.
    """
    executor = None if spec.model == "classical" else factory()
    try:
        trainer = Trainer(spec, executor, node_max_qubits)
        metrics = [trainer.train_epoch() for _ in range(epochs)]
    finally:
        if executor is not None:
            executor.close()
    seconds = [m.wall_seconds for m in metrics]
    return {
        "seconds_per_epoch": median_tail(seconds),
        "seconds": seconds,
        "rounds_per_epoch": metrics[-1].rounds,
        "evaluations_per_epoch": metrics[-1].circuit_evaluations,
        "ms_per_round": 1000 * median_tail(seconds) / max(1, metrics[-1].rounds),
        "r2": metrics[-1].test_r2,
    }


def rounds_per_training_batch(trainer: Trainer) -> int:
    """Sequential executor rounds of one forward + backward pass on the first training batch."""
    if trainer.executor is None:
        return 0
    data = trainer.dataset
    x = data.x_train[: trainer.spec.batch_size]
    y = data.y_train[: trainer.spec.batch_size]
    before = trainer.executor.stats.snapshot()["rounds"]
    trainer.model.train()
    trainer.optimizer.zero_grad()
    trainer.loss_fn(trainer.model(x), y).backward()
    trainer.optimizer.zero_grad()
    return int(trainer.executor.stats.snapshot()["rounds"] - before)


def compare_mesh(
    spec: JobSpec, addresses: Sequence[str], epochs: int, tls: TlsConfig | None = None
) -> dict[str, Any]:
    """Train the same spec in process and on the mesh, alternating epochs; return both timings."""
    local = InProcessExecutor()
    mesh = MeshExecutor(addresses, tls=tls)
    try:
        qubits = mesh.node_max_qubits()
        trainers = {"local": Trainer(spec, local, qubits), "mesh": Trainer(spec, mesh, qubits)}
        if trainers["mesh"].plan is not None:
            mesh.set_assignment(trainers["mesh"].plan.assignment)
        seconds: dict[str, list[float]] = {"local": [], "mesh": []}
        r2: dict[str, float] = {}
        for _ in range(epochs):
            for name, trainer in trainers.items():
                metrics = trainer.train_epoch()
                seconds[name].append(metrics.wall_seconds)
                r2[name] = metrics.test_r2
        return {
            "local_s": median_tail(seconds["local"]),
            "mesh_s": median_tail(seconds["mesh"]),
            "rounds_per_epoch": trainers["mesh"].history[-1].rounds,
            "rounds_per_batch": rounds_per_training_batch(trainers["mesh"]),
            "r2": r2["mesh"],
            "same_r2": r2["local"] == r2["mesh"],
        }
    finally:
        mesh.close()
        local.close()


def peer_seconds(spec: JobSpec, epochs: int) -> tuple[float, float] | None:
    """(median s/epoch, final test R²) of the same model in PennyLane; None without the peer extra."""
    try:
        from peer_pennylane import train  # type: ignore[import-not-found]  # benchmarks/ is on sys.path
    except ImportError:
        return None
    results = train(spec, "default.qubit", "backprop", epochs)
    return median_tail([s for s, _ in results]), results[-1][1]


@dataclass
class Bench:
    """Measurements of one run, cached so that the scale table and the targets share them."""

    epochs: int
    addresses: list[str]
    peer: bool = True
    scale_peer: bool = True
    mesh_runs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    local_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    peer_runs: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    def spec(self, name: str) -> JobSpec:
        return JobSpec(**CONFIGS[name], epochs=self.epochs)

    def nodes_for(self, name: str) -> int:
        """One node per part, at most the mesh's nodes."""
        spec = self.spec(name)
        return min(len(self.addresses), spec.partitions if spec.model == "distributed" else 1)

    def mesh(self, name: str, nodes: int) -> dict[str, Any]:
        key = (name, nodes)
        if key not in self.mesh_runs:
            self.mesh_runs[key] = compare_mesh(self.spec(name), self.addresses[:nodes], self.epochs)
            self.local_runs.setdefault(name, {"seconds_per_epoch": self.mesh_runs[key]["local_s"]})
        return self.mesh_runs[key]

    def local(self, name: str) -> float:
        if name not in self.local_runs:
            self.local_runs[name] = measure(self.spec(name), InProcessExecutor, self.epochs)
        return float(self.local_runs[name]["seconds_per_epoch"])

    def pennylane(self, name: str) -> tuple[float, float] | None:
        if name not in self.peer_runs:
            print(f"# PennyLane {name} ...", file=sys.stderr, flush=True)
            self.peer_runs[name] = peer_seconds(self.spec(name), self.epochs) if self.peer else None
        return self.peer_runs[name]


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_scale(bench: Bench) -> None:
    """The scale table: in process, on the mesh, and in PennyLane, with ratios."""
    print(
        "| model | parts x qubits | nodes | in process s/epoch | mesh s/epoch | mesh / in process "
        "| PennyLane s/epoch | PennyLane / mesh | PennyLane / in process | rounds/batch "
        "| test R² (mesh = in process) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in SCALE:
        spec = bench.spec(name)
        nodes = bench.nodes_for(name)
        m = bench.mesh(name, nodes)
        peer = bench.pennylane(name) if bench.scale_peer else None
        pl = peer[0] if peer else None
        width = spec.qubits // spec.partitions
        print(
            f"| {spec.qubits} qubits | {spec.partitions} x {width} | {nodes} | {_f(m['local_s'])} | "
            f"{_f(m['mesh_s'])} | {_f(m['mesh_s'] / m['local_s'])} | {_f(pl)} | "
            f"{_f(pl / m['mesh_s'] if pl else None, 1)} | {_f(pl / m['local_s'] if pl else None, 1)} | "
            f"{m['rounds_per_batch']} | {m['r2']:.4f} ({m['same_r2']}) |",
            flush=True,
        )


def print_targets(bench: Bench) -> None:
    """Issue 8's speed targets, each with the two epochs and their ratio measured in this run."""

    def peer(name: str) -> float | None:
        result = bench.pennylane(name)
        return result[0] if result else None

    def row(text: str, ours: float, theirs: float | None, speedup: bool, bound: float) -> None:
        if theirs is None:
            ratio, holds = None, None
        else:
            ratio = theirs / ours if speedup else ours / theirs
            holds = ratio >= bound if speedup else ratio <= bound
        sign = ">=" if speedup else "<="
        print(
            f"| {text} | {_f(ours, 3)} | {_f(theirs, 3)} | {_f(ratio)} | {sign} {bound:g} | {holds} |",
            flush=True,
        )

    print("| target | qpumesh s/epoch | reference s/epoch | ratio | bound | holds |")
    print("|---|---:|---:|---:|---|---|")
    v0_4 = peer("centric-v0-4")
    row(
        "centric v0 4 q, 4-node mesh; PennyLane same model / qpumesh",
        bench.mesh("centric-v0-4", 4)["mesh_s"],
        v0_4,
        True,
        20,
    )
    dist = bench.mesh("distributed-4", 4)
    row(
        "default distributed, 4-node mesh; PennyLane same model / qpumesh",
        dist["mesh_s"],
        peer("distributed-4"),
        True,
        15,
    )
    row("default distributed; 4-node mesh / in process", dist["mesh_s"], dist["local_s"], False, 1.2)
    wide = bench.mesh("parts-10x2", 2)["mesh_s"]
    row("2 x 10 q, 2-node mesh; qpumesh / PennyLane centric v0 4 q", wide, v0_4, False, 3)
    sixteen = bench.mesh("parts-4x4", 4)["mesh_s"]
    row("distributed 16 q (M = 4), 4-node mesh; PennyLane centric v0 4 q / qpumesh", sixteen, v0_4, True, 5)
    row(
        "centric v0 10 q in process; PennyLane same model / qpumesh",
        bench.local("centric-v0-10"),
        peer("centric-v0-10"),
        True,
        5,
    )
    print(f"rounds per training batch (default distributed, mesh): {dist['rounds_per_batch']} (T = 4)")


def main_mesh(names: Sequence[str], epochs: int, nodes: int) -> int:
    """Print the in-process vs mesh table for the quantum configurations in ``names``."""
    header = ("s/epoch local", "s/epoch mesh", "mesh/local", "rounds/epoch", "rounds/batch", "T")
    print(f"{'config':<15} " + " ".join(f"{c:>13}" for c in header) + "  same R²")
    with LocalMesh(nodes=nodes, node_args=_node_args(), coordinator=False) as local_mesh:
        for name in names:
            spec = JobSpec(**CONFIGS[name], epochs=epochs)
            if spec.model == "classical":
                continue
            r = compare_mesh(spec, local_mesh.node_addresses, epochs, local_mesh.coordinator_tls)
            print(
                f"{name:<15} {r['local_s']:>13.2f} {r['mesh_s']:>13.2f} {r['mesh_s'] / r['local_s']:>13.2f} "
                f"{r['rounds_per_epoch']:>13} {r['rounds_per_batch']:>13} {spec.window:>13}  {r['same_r2']}",
                flush=True,
            )
    return 0


def _node_args() -> tuple[str, ...]:
    return ("--torch-threads", "1", "--max-qubits", str(NODE_QUBITS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per configuration (median of 2..)")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS), metavar="CONFIG")
    parser.add_argument(
        "--mesh",
        type=int,
        default=0,
        metavar="N",
        help="also train on a local mesh of N node processes and compare (0 = in process only)",
    )
    parser.add_argument("--scale", action="store_true", help="print issue 8's scale table")
    parser.add_argument("--targets", action="store_true", help="check issue 8's speed targets")
    parser.add_argument("--nodes", type=int, default=16, help="node processes for --scale/--targets")
    parser.add_argument("--no-peer", action="store_true", help="skip the PennyLane runs")
    parser.add_argument(
        "--no-scale-peer",
        action="store_true",
        help="skip PennyLane in the scale table only (the targets' PennyLane runs still happen)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.scale or args.targets:
        print(f"# load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        with LocalMesh(nodes=args.nodes, node_args=_node_args(), coordinator=False) as local_mesh:
            bench = Bench(
                args.epochs,
                list(local_mesh.node_addresses),
                peer=not args.no_peer,
                scale_peer=not args.no_scale_peer,
            )
            if args.scale:
                print_scale(bench)
            if args.targets:
                print_targets(bench)
        print(f"# load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        return 0
    if args.mesh:
        return main_mesh(args.only, args.epochs, args.mesh)
    columns = ("s/epoch", "rounds", "evals/epoch", "ms/round")
    print(f"{'config':<15} {'ansatz':<8} {'L':>2} " + " ".join(f"{c:>11}" for c in columns))
    for name in args.only:
        spec = JobSpec(**CONFIGS[name], epochs=args.epochs)
        result = measure(spec, InProcessExecutor, args.epochs)
        quantum = spec.model != "classical"
        ansatz, layers = (spec.ansatz, str(spec.layers)) if quantum else ("-", "-")
        per_round = f"{result['ms_per_round']:.1f}" if quantum else "-"
        print(
            f"{name:<15} {ansatz:<8} {layers:>2} {result['seconds_per_epoch']:>11.2f} "
            f"{result['rounds_per_epoch']:>11} {result['evaluations_per_epoch']:>11} {per_round:>11}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
