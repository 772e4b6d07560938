"""In-process engine benchmark: time per parameter set of each node engine, no network.

Runs the node's benchmark circuit (H + RY(x) encoding, then `depth` layers of a CNOT ladder
and RY(w) on every qubit; Z on every qubit measured) through `NodeCore` for 4 and 6 qubits,
depth 2 and 5: `batched` on 1000 rows, `qsim` and `cirq` on fewer rows (they simulate one
parameter set at a time), and parameter-shift Jacobians per second. Torch runs on one
thread, as on a node container sharing its host.

Usage:
    python benchmarks/bench_engines.py [--rows 1000] [--slow-rows 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from functools import partial

import cirq
import numpy as np
import sympy
import torch

from qpumesh.node.core import NodeConfig, NodeCore, Observables


def benchmark_circuit(n: int, depth: int) -> tuple[cirq.Circuit, list[str]]:
    qubits = cirq.LineQubit.range(n)
    x = sympy.symbols(f"x0:{n}")
    w = sympy.symbols(f"w0:{n * depth}")
    circuit = cirq.Circuit([cirq.H(q) for q in qubits], [cirq.ry(x[i]).on(qubits[i]) for i in range(n)])
    for d in range(depth):
        circuit += [cirq.CNOT(qubits[i], qubits[i + 1]) for i in range(n - 1)]
        circuit += [cirq.ry(w[d * n + i]).on(qubits[i]) for i in range(n)]
    return circuit, [s.name for s in (*x, *w)]


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: compile, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows for the batched engine")
    parser.add_argument("--slow-rows", type=int, default=50, help="rows for the qsim and cirq engines")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (best is reported)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cores = {name: NodeCore(NodeConfig(backend=name)) for name in ("batched", "qsim", "cirq")}
    rng = np.random.default_rng(0)
    print(f"torch threads: {torch.get_num_threads()}; rows: batched {args.rows}, qsim/cirq {args.slow_rows}")
    header = f"{'qubits':>6} {'depth':>5} {'params':>6} | {'batched us/set':>14} {'qsim us/set':>11} "
    header += f"{'cirq us/set':>11} | {'qsim/batched':>12} | {'batched jac/s':>13} {'qsim jac/s':>10}"
    print(header)
    print("-" * len(header))
    for n in (4, 6):
        for depth in (2, 5):
            circuit, symbols = benchmark_circuit(n, depth)
            text = cirq.to_json(circuit)
            digest = hashlib.sha256(text.encode()).hexdigest()
            observables: Observables = [[(1.0, "I" * i + "Z" + "I" * (n - i - 1))] for i in range(n)]
            values = rng.uniform(-np.pi, np.pi, size=(args.rows, len(symbols)))
            per_set = {}
            for name, core in cores.items():
                rows = args.rows if name == "batched" else args.slow_rows
                batch = values[:rows]
                seconds = best_time(
                    partial(core.evaluate, digest, text, observables, symbols, batch),
                    args.repeats if name == "batched" else 1,
                )
                per_set[name] = seconds / rows * 1e6
            jac_per_s = {}
            for name in ("batched", "qsim"):
                rows = args.rows if name == "batched" else max(1, args.slow_rows // 10)
                batch = values[:rows]
                core = cores[name]
                seconds = best_time(
                    partial(core.shift_gradient, digest, text, observables, symbols, batch),
                    args.repeats if name == "batched" else 1,
                )
                jac_per_s[name] = rows / seconds
            print(
                f"{n:>6} {depth:>5} {len(symbols):>6} | {per_set['batched']:>14.2f} {per_set['qsim']:>11.1f} "
                f"{per_set['cirq']:>11.1f} | {per_set['qsim'] / per_set['batched']:>11.0f}x | "
                f"{jac_per_s['batched']:>13.0f} {jac_per_s['qsim']:>10.1f}"
            )


if __name__ == "__main__":
    main()
