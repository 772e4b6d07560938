"""How many nanoseconds one *amplitude operation* of the node's cost model takes, per engine.

    python benchmarks/calibrate_cost.py [--quick]

The node refuses a request whose estimated cost (``qpumesh.node.limits``: rows x passes x
(operations x (amplitudes + per-operation overhead) + terms x amplitudes)) is over
``max_request_cost``. For the bound to mean "seconds of work", the estimate must be
proportional to the time on every engine. This script times evaluations, gradients and
compilation of random layered circuits through a ``NodeCore`` and prints the measured
nanoseconds per estimated amplitude operation (median of 3): the per-engine constants of
``ENGINE_COSTS`` and ``compile_cost`` are chosen so that no engine is much slower per unit
than the compiled kernels (then ``max_request_cost`` x ns/unit bounds a request's seconds).
The machine is shared; read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import cirq
import numpy as np
import sympy

from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.limits import compile_cost, run_cost
from qpumesh.node.noise import NoiseConfig
from qpumesh.wire.circuits import WireCircuit


def layered(n: int, layers: int) -> tuple[cirq.Circuit, list[str]]:
    """H on every qubit, then per layer a CNOT ladder and RY, RZ of one symbol per qubit."""
    q = cirq.LineQubit.range(n)
    circuit = cirq.Circuit(cirq.H.on_each(*q))
    names = []
    for layer in range(layers):
        circuit.append(cirq.CNOT(q[i], q[i + 1]) for i in range(n - 1))
        for i in range(n):
            s = sympy.Symbol(f"w{layer}_{i}")
            names.append(s.name)
            circuit.append([cirq.ry(s).on(q[i]), cirq.rz(s).on(q[i])])
    return circuit, names


def median_time(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    args = parser.parse_args()
    noisy = NoiseConfig(depolarizing_1q=0.001, depolarizing_2q=0.01)
    engines = {
        "batched": NodeConfig(max_request_cost=10**18, max_qubits=24),
        "cirq": NodeConfig(backend="cirq", max_request_cost=10**18, max_qubits=24),
        "qsim": NodeConfig(backend="qsim", max_request_cost=10**18, max_qubits=24),
        "batched-density": NodeConfig(noise=noisy, max_request_cost=10**18),
        "batched-trajectories": NodeConfig(
            noise=NoiseConfig(depolarizing_1q=0.001, method="trajectories", trajectories=50),
            max_request_cost=10**18,
        ),
    }
    sizes = {
        "batched": [(4, 2, 20000), (10, 4, 2000), (16, 4, 20), (20, 2, 2)],
        "cirq": [(4, 2, 20), (10, 2, 5), (14, 2, 1)],
        "qsim": [(4, 2, 50), (10, 4, 20), (16, 2, 2)],
        "batched-density": [(4, 2, 200), (8, 2, 10)],
        "batched-trajectories": [(4, 2, 20), (10, 2, 4)],
    }
    if args.quick:
        sizes = {name: cases[:2] for name, cases in sizes.items()}
    print("| engine | qubits | ops | rows | evaluate ns/unit | gradient ns/unit | compile ns/unit |")
    print("|---|---|---|---|---|---|---|")
    for name, config in engines.items():
        for n, layers, rows in sizes[name]:
            core = NodeCore(config)
            circuit, names = layered(n, layers)
            wire = WireCircuit.from_cirq(circuit)
            observables = [[(1.0, "Z" + "I" * (n - 1))]]
            values = np.random.default_rng(0).uniform(-np.pi, np.pi, (rows, len(names)))
            start = time.perf_counter()
            compiled = core.load_circuit(wire.hash, wire.cirq_json)
            compile_seconds = time.perf_counter() - start
            ops, slots = len(compiled.ops), len(compiled.slots)
            core.evaluate(wire.hash, None, observables, names, values[:1])  # warm
            evaluate = median_time(partial(core.evaluate, wire.hash, None, observables, names, values))
            gradient = median_time(partial(core.shift_gradient, wire.hash, None, observables, names, values))
            engine = core.evaluate(wire.hash, None, observables, names, values[:1]).backend
            trajectories = config.noise.trajectories
            eval_cost = run_cost(
                engine, qubits=n, operations=ops, terms=1, rows=rows, passes=1, trajectories=trajectories
            )
            adjoint = name == "batched"
            passes = 4 if adjoint else 2 * slots
            grad_cost = run_cost(
                engine, qubits=n, operations=ops, terms=1, rows=rows, passes=passes, trajectories=trajectories
            )
            print(
                f"| {engine} | {n} | {ops} | {rows} | {1e9 * evaluate / eval_cost:.2f} | "
                f"{1e9 * gradient / grad_cost:.2f} | {1e9 * compile_seconds / compile_cost(ops, n):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
