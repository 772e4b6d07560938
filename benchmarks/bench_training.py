"""Training throughput: wall seconds per epoch of the QLSTM on the damped pendulum.

An epoch is 16 mini-batches of 10 windows x 4 time steps (64 training rounds with
parameter-shift Jacobians) plus one evaluation round per time step over the 78
test windows. The executor comes from a factory so the same measurement runs in
process or over a mesh: ``measure(spec, factory)`` is importable, e.g.

    from benchmarks.bench_training import measure
    measure(spec, lambda: MeshExecutor(addresses), node_max_qubits=[4, 4])

With ``--mesh N`` (default 4) every quantum configuration is measured twice, side by
side in the same run: in process (``InProcessExecutor``) and on a local mesh of N real
``qpumesh node serve`` processes on loopback (``MeshExecutor`` over gRPC), alternating
epochs so that a change in the machine's load hits both alike. It also counts the
sequential network rounds of one training batch (forward + backward), whose target is
the window length T: one round per time step, none for the backward pass.

Usage:
    python benchmarks/bench_training.py [--epochs 2] [--only centric-4 distributed-4] [--mesh 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
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
}


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
        "seconds_per_epoch": statistics.median(seconds),
        "seconds": seconds,
        "rounds_per_epoch": metrics[-1].rounds,
        "evaluations_per_epoch": metrics[-1].circuit_evaluations,
        "ms_per_round": 1000 * statistics.median(seconds) / max(1, metrics[-1].rounds),
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
    return trainer.executor.stats.snapshot()["rounds"] - before


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
            "local_s": statistics.median(seconds["local"]),
            "mesh_s": statistics.median(seconds["mesh"]),
            "rounds_per_epoch": trainers["mesh"].history[-1].rounds,
            "rounds_per_batch": rounds_per_training_batch(trainers["mesh"]),
            "same_r2": abs(r2["local"] - r2["mesh"]) <= 1e-9,
        }
    finally:
        mesh.close()
        local.close()


def main_mesh(names: Sequence[str], epochs: int, nodes: int) -> int:
    """Print the in-process vs mesh table for the quantum configurations in ``names``."""
    header = ("s/epoch local", "s/epoch mesh", "mesh/local", "rounds/epoch", "rounds/batch", "T")
    print(f"{'config':<15} " + " ".join(f"{c:>13}" for c in header) + "  same R²")
    with LocalMesh(nodes=nodes, node_args=("--torch-threads", "1")) as local_mesh:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per configuration (median reported)")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS), metavar="CONFIG")
    parser.add_argument(
        "--mesh", type=int, default=0, metavar="N",
        help="also train on a local mesh of N node processes and compare (0 = in process only)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
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
