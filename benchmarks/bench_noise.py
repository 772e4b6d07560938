"""Noisy node engines side by side: one VJP of the default distributed model's part.

The default distributed QLSTM (4-qubit width, M = 2, chen2020 ansatz, L = 3) splits every
gate into 2-qubit parts; a training step asks a node for the vector-Jacobian product of such a
part over a mini-batch of 10 rows (ShiftGradient with cotangents). This script runs exactly
that request in process through `NodeCore` on

* the exact node (``batched``, no gate noise) -- the baseline;
* ``batched-density``: depolarizing 1q/2q, exact, the default noisy engine;
* ``batched-trajectories``: the same noise by Monte Carlo (``--trajectories`` per row);
* the references ``cirq`` (DensityMatrixSimulator) and ``qsim`` (trajectories), unless
  ``--skip-references`` (each takes seconds per call),

and prints the median time per call and its ratio to the exact VJP (all measured in this one
run, alternating engines, so machine load affects them alike), plus the largest difference
of the torch density matrix from Cirq's. A second table times the engines on wider parts
(``--widths``) to show where trajectories overtake the density matrix.

Usage:
    python benchmarks/bench_noise.py [--rows 10] [--repeats 21] [--p1 0.01] [--p2 0.02]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from qpumesh.coordinator.ansatz import Ansatz, build_ansatz
from qpumesh.node.backends.density import MAX_QUBITS as DENSITY_MAX_QUBITS
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig


def vjp_call(
    core: NodeCore, ansatz: Ansatz, values: np.ndarray, cotangents: np.ndarray, seed: int
) -> Callable[[], np.ndarray]:
    """Return a function running one ShiftGradient VJP of `ansatz` on `core`."""
    circuit = ansatz.circuit

    def call() -> np.ndarray:
        result = core.shift_gradient(
            circuit.hash,
            circuit.cirq_json,
            ansatz.observables,
            ansatz.symbols,
            values,
            cotangents=cotangents,
            seed=seed,
        )
        return result.jacobian

    return call


def median_times(calls: dict[str, Callable[[], np.ndarray]], repeats: dict[str, int]) -> dict[str, float]:
    """Median seconds per call, timing the engines in alternation (round robin)."""
    for call in calls.values():
        call()  # warm-up: compile, caches
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(max(repeats.values())):
        for name, call in calls.items():
            if r >= repeats[name]:
                continue
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def cores(p1: float, p2: float, trajectories: int, references: bool) -> dict[str, NodeCore]:
    """The exact node and one node per noisy engine."""
    exact = NoiseConfig(depolarizing_1q=p1, depolarizing_2q=p2, trajectories=trajectories)
    monte_carlo = replace(exact, method="trajectories")
    out = {
        "exact (batched)": NodeCore(NodeConfig()),
        "batched-density": NodeCore(NodeConfig(noise=exact)),
        "batched-trajectories": NodeCore(NodeConfig(noise=monte_carlo)),
    }
    if references:
        out["cirq (density matrix)"] = NodeCore(NodeConfig(backend="cirq", noise=exact))
        out["qsim (trajectories)"] = NodeCore(NodeConfig(backend="qsim", noise=monte_carlo))
    return out


def evaluate_call(core: NodeCore, part: Ansatz, batch: np.ndarray) -> Callable[[], np.ndarray]:
    """Return a function running one Evaluate of `part` on `core`."""
    circuit = part.circuit

    def call() -> np.ndarray:
        return core.evaluate(
            circuit.hash, circuit.cirq_json, part.observables, part.symbols, batch, seed=1
        ).expectations

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10, help="rows of the VJP (the mini-batch)")
    parser.add_argument("--repeats", type=int, default=21, help="timed calls per fast engine (median)")
    parser.add_argument("--reference-repeats", type=int, default=3, help="timed calls of cirq/qsim")
    parser.add_argument("--p1", type=float, default=0.01, help="depolarizing after 1-qubit gates")
    parser.add_argument("--p2", type=float, default=0.02, help="depolarizing after 2-qubit gates")
    parser.add_argument("--trajectories", type=int, default=200, help="trajectories per row")
    parser.add_argument("--skip-references", action="store_true", help="do not time cirq and qsim")
    parser.add_argument("--widths", type=int, nargs="*", default=[4, 6, 8, 10], help="wider parts to time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(
        f"torch threads {torch.get_num_threads()}; depolarizing 1q {args.p1:g}, 2q {args.p2:g}; "
        f"{args.trajectories} trajectories per row; median of {args.repeats} calls "
        f"({args.reference_repeats} for cirq/qsim)"
    )

    ansatz = build_ansatz("chen2020", 2, 3, 2)
    values = rng.uniform(-1, 1, size=(args.rows, len(ansatz.symbols)))
    cotangents = rng.normal(size=(args.rows, len(ansatz.observables)))
    engines = cores(args.p1, args.p2, args.trajectories, not args.skip_references)
    calls = {name: vjp_call(core, ansatz, values, cotangents, seed=1) for name, core in engines.items()}
    repeats = {
        name: args.repeats if name.startswith(("exact", "batched")) else args.reference_repeats
        for name in calls
    }
    seconds = median_times(calls, repeats)
    exact = seconds["exact (batched)"]
    print(
        f"\nVJP of the default part (chen2020, 2 qubits, 3 layers, {len(ansatz.symbols)} symbols, "
        f"{args.rows} rows, cotangents), in process through NodeCore:"
    )
    print(f"{'engine':<24} {'ms/call':>10} {'x exact':>9}")
    for name, s in seconds.items():
        print(f"{name:<24} {s * 1e3:>10.2f} {s / exact:>9.1f}")
    density = calls["batched-density"]()
    if "cirq (density matrix)" in calls:
        diff = np.abs(density - calls["cirq (density matrix)"]()).max()
        print(f"max |batched-density - cirq| over the VJP: {diff:.1e}")
    print(f"max |noisy - exact| over the VJP: {np.abs(density - calls['exact (batched)']()).max():.3f}")

    if not args.widths:
        return
    print(f"\nEvaluate, {args.rows} rows, chen2020 L=3 on wider parts (ms/call, median of 5):")
    print(f"{'qubits':>6} {'exact':>9} {'density':>10} {'trajectories':>13}")
    for width in args.widths:
        part = build_ansatz("chen2020", width, 3, width)
        batch = rng.uniform(-1, 1, size=(args.rows, len(part.symbols)))
        names = ["exact (batched)", "batched-density", "batched-trajectories"]
        if width > DENSITY_MAX_QUBITS:
            names.remove("batched-density")  # refused: over the density-matrix memory bound
        evals = {name: evaluate_call(engines[name], part, batch) for name in names}
        times = median_times(evals, dict.fromkeys(evals, 5))
        density_ms = (
            f"{times['batched-density'] * 1e3:>10.2f}" if "batched-density" in times else f"{'refused':>10}"
        )
        print(
            f"{width:>6} {times['exact (batched)'] * 1e3:>9.2f} {density_ms} "
            f"{times['batched-trajectories'] * 1e3:>13.2f}"
        )


if __name__ == "__main__":
    main()
