"""In-process engine benchmark of the node: gradients, wide circuits, the torch/kernel crossover.

Everything runs in this process on one thread, ratios side by side in one run:

1. ``gradients`` -- one ``ShiftGradient`` (10 rows, VJP) of the QLSTM's chen2020 ansatz with
   3 layers, through ``NodeCore.shift_gradient``: adjoint (the default for exact requests)
   vs the parameter-shift rule on the same compiled kernels vs the parameter-shift rule on
   the torch program (the batched engine before the compiled kernels) vs torch autograd
   through the torch program.
2. ``wide`` -- time per evaluation (one parameter set, <Z> on qubit 0) of the gate-by-gate
   compiled kernels, the wide (fused, cache-blocked) kernels, the torch program and qsim's
   C++ (``qsimcirq``, float32, 1 thread) for 10-20 qubits, chen2020 and v0 ansatzes with 3
   layers -- the measurement behind ``compiled.fused_is_faster``. Kernels, wide kernels and
   qsim are called in turn, round after round (medians), so that their ratios hold on a
   shared machine.
3. ``crossover`` -- evaluation of many rows of small registers on the compiled kernels vs
   the torch program, the measurement behind ``batched.torch_is_faster``.
4. ``small`` -- the distributed model's part: a 10-row, 2-qubit, chen2020 3-layer VJP
   through ``NodeCore.shift_gradient`` (target: well under 0.2 ms), and the kernel alone.

Usage:
    python benchmarks/bench_engines.py [--only gradients wide crossover small] [--quick]
        [--wide-qubits 10 12 ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import cirq
import numpy as np
import qsimcirq  # type: ignore[import-untyped]
import torch

from qpumesh.coordinator.ansatz import build_ansatz
from qpumesh.node.backends import BatchedBackend
from qpumesh.node.circuits import CompiledCircuit, compile_circuit
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.gradients import differentiable_slots, parameter_shift

SECTIONS = ("gradients", "wide", "crossover", "small")


def timed(fn: Callable[[], object], repeats: int, budget: float = 20.0) -> float:
    """Median seconds of `fn` over up to `repeats` calls (after one warm-up), within a budget."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < repeats and (not times or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: Sequence[Callable[[], object]], rounds: int, budget: float = 30.0) -> list[float]:
    """Median seconds of each of `fns`, called in turn round after round (after one warm-up each).

    On a shared machine a burst of load then hits every engine of a round alike, so their
    ratios stay meaningful where timing one engine after the other would not.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    deadline = time.perf_counter() + budget
    while len(times[0]) < rounds and (not times[0] or time.perf_counter() < deadline):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def z_terms(n: int, count: int) -> list[str]:
    return ["I" * i + "Z" + "I" * (n - i - 1) for i in range(count)]


def gradients(qubit_list: Sequence[int], repeats: int) -> None:
    print("\n## 1. One ShiftGradient: VJP of 10 rows, chen2020, 3 layers, <Z> read-outs (ms)")
    print(f"{'qubits':>6} {'obs':>3} {'adjoint':>9} {'shift kernels':>13} {'shift torch':>11} "
          f"{'autograd torch':>14} {'shift torch/adjoint':>19}")  # fmt: skip
    rng = np.random.default_rng(0)
    for n in qubit_list:
        _gradient_row(n, repeats, rng)


def _gradient_row(n: int, repeats: int, rng: np.random.Generator) -> None:
    outputs = max(1, n // 2)
    ansatz = build_ansatz("chen2020", n, 3, outputs)
    wire = ansatz.circuit
    values = rng.uniform(-1, 1, size=(10, len(ansatz.symbols)))
    cotangents = rng.normal(size=(10, outputs))
    core = NodeCore(NodeConfig())
    obs, symbols = ansatz.observables, ansatz.symbols

    def call(method: str) -> Callable[[], object]:
        return lambda: core.shift_gradient(
            wire.hash, wire.cirq_json, obs, symbols, values, cotangents=cotangents, method=method
        )

    adjoint = timed(call("adjoint"), repeats)
    shift = timed(call("parameter_shift"), repeats if n <= 10 else 2)
    compiled = core.load_circuit(wire.hash, None)
    torch_engine = BatchedBackend()
    terms = z_terms(n, outputs)
    angles = compiled.angles(list(symbols), values)
    slots = differentiable_slots(compiled, list(symbols))

    def torch_shift() -> object:
        program = torch_engine.program(compiled)

        def evaluate(a: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return program.run(torch.from_numpy(a), tuple(terms)).numpy()

        return parameter_shift(evaluate, compiled, angles, slots)

    torch_shift_s = timed(torch_shift, 1 if n >= 10 else repeats, budget=60)

    def autograd_vjp() -> object:
        return torch_autograd_vjp(torch_engine, compiled, terms, angles, cotangents)

    autograd = timed(autograd_vjp, repeats)
    print(f"{n:>6} {outputs:>3} {adjoint * 1e3:>9.3f} {shift * 1e3:>13.2f} {torch_shift_s * 1e3:>11.1f} "
          f"{autograd * 1e3:>14.2f} {torch_shift_s / adjoint:>18.0f}x", flush=True)  # fmt: skip


def torch_autograd_vjp(
    engine: BatchedBackend,
    compiled: CompiledCircuit,
    terms: list[str],
    angles: np.ndarray,
    cotangents: np.ndarray,
) -> np.ndarray:
    """The VJP with respect to the slot angles by torch autograd through the torch program."""
    a = torch.from_numpy(angles).requires_grad_(True)
    out = engine.expectations_torch(compiled, terms, a)
    torch.autograd.backward((out * torch.from_numpy(cotangents)).sum())
    assert a.grad is not None
    return a.grad.numpy()


def wide(qubit_list: Sequence[int], torch_max: int) -> None:
    print("\n## 2. Time per evaluation (one parameter set, <Z_0>), ms: compiled kernels vs qsim (float32)")
    print(f"{'ansatz':<9} {'qubits':>6} {'kernels':>9} {'fused':>9} {'torch':>9} {'qsim':>9} "
          f"{'qsim/kernels':>12} {'qsim/fused':>10} {'kernels/fused':>13}")  # fmt: skip
    simulator = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=1))  # type: ignore[attr-defined]
    engine = BatchedBackend()
    rng = np.random.default_rng(1)
    for name in ("chen2020", "v0"):
        for n in qubit_list:
            _wide_row(name, n, torch_max, simulator, engine, rng)


def _wide_row(  # noqa: PLR0917
    name: str, n: int, torch_max: int, simulator: Any, engine: BatchedBackend, rng: np.random.Generator
) -> None:
    ansatz = build_ansatz(name, n, 3, 1)
    circuit = cirq.read_json(json_text=ansatz.circuit.cirq_json)
    compiled = compile_circuit(circuit, 24)
    rows = 4 if n <= 14 else 2
    values = rng.uniform(-1, 1, size=(rows, len(ansatz.symbols)))
    angles = compiled.angles(list(ansatz.symbols), values)
    terms = z_terms(n, 1)
    torch_s = float("nan")
    if n <= torch_max:
        program = engine.program(compiled)

        def run_torch() -> object:
            with torch.no_grad():
                return program.run(torch.from_numpy(angles), tuple(terms))

        torch_s = timed(run_torch, 3) / rows
    qubits = sorted(circuit.all_qubits())
    resolvers = [
        cirq.ParamResolver(dict(zip(ansatz.symbols, map(float, row), strict=True))) for row in values
    ]
    observable = [cirq.Z(qubits[0])]

    def run_qsim() -> object:
        return simulator.simulate_expectation_values_sweep(circuit, observable, resolvers, qubit_order=qubits)

    kernel, fused, qsim_s = (
        seconds / rows
        for seconds in interleaved(
            [
                lambda: engine.compiled.expectations(compiled, terms, angles, fused=False),
                lambda: engine.compiled.expectations(compiled, terms, angles, fused=True),
                run_qsim,
            ],
            rounds=9 if n >= 18 else 15,
        )
    )
    print(f"{name:<9} {n:>6} {kernel * 1e3:>9.3f} {fused * 1e3:>9.3f} {torch_s * 1e3:>9.3f} "
          f"{qsim_s * 1e3:>9.3f} {qsim_s / kernel:>11.2f}x {qsim_s / fused:>9.2f}x "
          f"{kernel / fused:>12.2f}x", flush=True)  # fmt: skip


def crossover(qubit_list: Sequence[int], row_list: Sequence[int]) -> None:
    print("\n## 3. Evaluation of many rows (chen2020, 3 layers, <Z> on every qubit), ms: kernels vs torch")
    print(f"{'qubits':>6} {'rows':>6} {'kernels':>9} {'torch':>9} {'faster':>8}")
    engine = BatchedBackend()
    rng = np.random.default_rng(2)
    for n in qubit_list:
        for rows in row_list:
            _crossover_row(n, rows, engine, rng)


def _crossover_row(n: int, rows: int, engine: BatchedBackend, rng: np.random.Generator) -> None:
    ansatz = build_ansatz("chen2020", n, 3, n)
    compiled = compile_circuit(cirq.read_json(json_text=ansatz.circuit.cirq_json), 24)
    program = engine.program(compiled)
    terms = z_terms(n, n)
    values = rng.uniform(-1, 1, size=(rows, len(ansatz.symbols)))
    angles = compiled.angles(list(ansatz.symbols), values)
    kernel = timed(lambda: engine.compiled.expectations(compiled, terms, angles, fused=False), 7)

    def run_torch() -> object:
        with torch.no_grad():
            return program.run(torch.from_numpy(angles), tuple(terms))

    torch_s = timed(run_torch, 7)
    faster = "torch" if torch_s < kernel else "kernels"
    print(f"{n:>6} {rows:>6} {kernel * 1e3:>9.3f} {torch_s * 1e3:>9.3f} {faster:>8}", flush=True)


def small(repeats: int) -> None:
    print("\n## 4. The distributed model's part: 2 qubits, chen2020, 3 layers, 10 rows, VJP (µs)")
    ansatz = build_ansatz("chen2020", 2, 3, 1)
    wire = ansatz.circuit
    rng = np.random.default_rng(3)
    values = rng.uniform(-1, 1, size=(10, len(ansatz.symbols)))
    cotangents = rng.normal(size=(10, 1))
    core = NodeCore(NodeConfig())
    obs, symbols = ansatz.observables, ansatz.symbols

    def vjp() -> object:
        return core.shift_gradient(wire.hash, wire.cirq_json, obs, symbols, values, cotangents=cotangents)

    def jacobian() -> object:
        return core.shift_gradient(wire.hash, wire.cirq_json, obs, symbols, values, include_values=True)

    for label, fn in (("VJP", vjp), ("Jacobian + values", jacobian)):
        print(f"NodeCore.shift_gradient, {label}: {timed(fn, repeats) * 1e6:.0f} µs")
    compiled = core.load_circuit(wire.hash, None)
    angles = compiled.angles(list(symbols), values)
    engine = BatchedBackend()
    weights = cotangents[:, :, None]
    kernel = timed(lambda: engine.adjoint(compiled, ["ZI"], angles, weights), repeats)
    print(f"the adjoint kernel alone (forward + backward of 10 rows): {kernel * 1e6:.0f} µs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="fewer sizes (a smoke run)")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--wide-qubits", type=int, nargs="*", help="widths of the wide section")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"torch {torch.__version__} (1 thread), qsimcirq {metadata.version('qsimcirq')}, "
          f"numba {metadata.version('numba')}; load average {load}")  # fmt: skip
    if "gradients" in args.only:
        gradients([2, 4, 8] if args.quick else [2, 4, 6, 8, 10, 12], args.repeats)
    if "wide" in args.only:
        sizes = args.wide_qubits or ([10, 12] if args.quick else [10, 12, 14, 16, 18, 20])
        wide(sizes, torch_max=12 if args.quick else 16)
    if "crossover" in args.only:
        crossover([1, 2] if args.quick else [1, 2, 3, 4], [100, 1000] if args.quick else [1000, 4000, 16000])
    if "small" in args.only:
        small(args.repeats * 8)
    print(f"# load average after: {os.getloadavg() if hasattr(os, 'getloadavg') else ()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
