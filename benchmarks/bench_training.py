"""Training throughput: wall seconds per epoch of the QLSTM on the damped pendulum.

An epoch is 16 mini-batches of 10 windows x 4 time steps (64 training rounds with
parameter-shift Jacobians) plus one evaluation round per time step over the 78
test windows. The executor comes from a factory so the same measurement runs in
process or over a mesh: ``measure(spec, factory)`` is importable, e.g.

    from benchmarks.bench_training import measure
    measure(spec, lambda: MeshExecutor(addresses), node_max_qubits=[4, 4])

Usage:
    python benchmarks/bench_training.py [--epochs 2] [--only centric-4 distributed-4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from qpumesh.coordinator.executor import Executor, InProcessExecutor
from qpumesh.coordinator.spec import JobSpec
from qpumesh.coordinator.training import Trainer

ExecutorFactory = Callable[[], Executor]

CONFIGS: dict[str, dict[str, Any]] = {
    "centric-4": {"model": "centric", "qubits": 4},
    "distributed-4": {"model": "distributed", "qubits": 4},
    "centric-6": {"model": "centric", "qubits": 6},
    "distributed-6": {"model": "distributed", "qubits": 6, "partitions": 3},
    "classical-4": {"model": "classical", "qubits": 4},
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per configuration (median reported)")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS), metavar="CONFIG")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
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
