"""Throughput of the node engines, in process and through gRPC.

Runs the QLSTM-style variational circuit (H + RY(x_i) encoding, then ``depth`` layers
of CNOT ladders and RY(w) rotations, <Z> on every qubit) on each engine and reports
circuit evaluations per second and parameter-shift Jacobians per second, once calling
``NodeCore`` directly and once through a real gRPC server on a free port of this
process (``NodeClient``). The last line compares the batched engine behind gRPC with
qsim, the plain simulator it replaces. Used by ``benchmarks/bench_node.py`` and
``qpumesh node bench``.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cirq
import numpy as np
import numpy.typing as npt
import sympy

from qpumesh.client.node_client import NodeClient
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.server import create_server
from qpumesh.wire.circuits import WireCircuit, pauli_terms

# Rows per request: the batched engine gets the full batch; the per-row engines fewer
# (their cost is linear in rows, so the rate per row is what matters).
EVAL_ROWS = {"batched": 1000, "qsim": 100, "cirq": 100}
JACOBIAN_ROWS = {"batched": 1000, "qsim": 4, "cirq": 4}
QUICK_ROWS = {"batched": 200, "qsim": 20, "cirq": 20}


def qlstm_vqc(n_qubits: int, depth: int) -> tuple[cirq.Circuit, list[str], list[cirq.PauliString[cirq.Qid]]]:
    """Build the QLSTM-style variational circuit.

    Args:
        n_qubits: circuit width; also the number of encoded inputs x_0..x_{n-1}.
        depth: number of variational layers, each a CNOT ladder on (0,1),(2,3),... then
            (1,2),(3,4),... followed by RY(w_{layer,qubit}) on every qubit.

    Returns:
        The circuit, its symbol names (inputs first, then weights) and <Z_i> observables.
    """
    qubits = cirq.LineQubit.range(n_qubits)
    inputs = [sympy.Symbol(f"x{i}") for i in range(n_qubits)]
    circuit = cirq.Circuit(cirq.H.on_each(*qubits))
    circuit.append(cirq.ry(x).on(q) for x, q in zip(inputs, qubits, strict=True))
    weights: list[sympy.Symbol] = []
    for layer in range(depth):
        for start in (0, 1):
            circuit.append(cirq.CNOT(qubits[i], qubits[i + 1]) for i in range(start, n_qubits - 1, 2))
        layer_weights = [sympy.Symbol(f"w{layer}_{i}") for i in range(n_qubits)]
        circuit.append(cirq.ry(w).on(q) for w, q in zip(layer_weights, qubits, strict=True))
        weights.extend(layer_weights)
    symbols = [str(s) for s in (*inputs, *weights)]
    return circuit, symbols, [cirq.Z(q) for q in qubits]


@dataclass(frozen=True)
class BenchRow:
    """Measured rates of one engine on one circuit shape.

    Rates are parameter rows per second: circuit evaluations (of every observable) for
    ``eval_*``, full Jacobians (every observable by every symbol) for ``jac_*``.
    """

    backend: str
    engine: str
    n_qubits: int
    depth: int
    eval_rows: int
    eval_local: float
    eval_grpc: float
    jac_rows: int
    jac_local: float
    jac_grpc: float


def _rates(runs: Sequence[Callable[[], object]], rows: int, min_seconds: float) -> list[float]:
    """Rows per second of each of ``runs``: ``rows`` over the median duration of one call.

    One warm-up call each (compilation, caches) is not timed. Then the runs take turns,
    for at least ``min_seconds`` and 3 rounds, so that a shared machine's load changes hit
    them alike; the median keeps its stalls out.
    """
    for run in runs:
        run()
    durations: list[list[float]] = [[] for _ in runs]
    started = time.perf_counter()
    while len(durations[0]) < 3 or time.perf_counter() - started < min_seconds:
        for run, times in zip(runs, durations, strict=True):
            begin = time.perf_counter()
            run()
            times.append(time.perf_counter() - begin)
    return [rows / float(np.median(times)) for times in durations]


def measure(
    backend: str, n_qubits: int, depth: int, *, eval_rows: int, jac_rows: int, min_seconds: float
) -> BenchRow:
    """Measure one engine on one circuit shape, in process and through a local gRPC server.

    The in-process ``NodeCore`` and the server's core are separate (as on a real mesh) and
    are timed in alternation.
    """
    circuit, symbols, observables = qlstm_vqc(n_qubits, depth)
    wire = WireCircuit.from_cirq(circuit)
    terms = [pauli_terms(o, wire.qubits) for o in observables]
    rng = np.random.default_rng(0)
    values: npt.NDArray[np.float64] = rng.uniform(
        -np.pi, np.pi, size=(max(eval_rows, jac_rows), len(symbols))
    )
    node = NodeConfig(node_id=f"bench-{backend}", backend=backend, max_qubits=max(n_qubits, 8))
    core = NodeCore(node)
    engine = core.evaluate(wire.hash, wire.cirq_json, terms, symbols, values[:1]).backend
    eval_params = {s: values[:eval_rows, j] for j, s in enumerate(symbols)}
    jac_params = {s: values[:jac_rows, j] for j, s in enumerate(symbols)}

    server, port = create_server(ServerConfig(node=node, host="127.0.0.1", port=0))
    try:
        with NodeClient(f"127.0.0.1:{port}", timeout=600) as client:
            eval_local, eval_grpc = _rates(
                [
                    lambda: core.evaluate(wire.hash, None, terms, symbols, values[:eval_rows]),
                    lambda: client.evaluate(circuit, observables, eval_params),
                ],
                eval_rows,
                min_seconds,
            )
            jac_local, jac_grpc = _rates(
                [
                    lambda: core.shift_gradient(wire.hash, None, terms, symbols, values[:jac_rows]),
                    lambda: client.shift_gradient(circuit, observables, jac_params),
                ],
                jac_rows,
                min_seconds,
            )
    finally:
        server.stop(None)
    return BenchRow(
        backend, engine, n_qubits, depth, eval_rows, eval_local, eval_grpc, jac_rows, jac_local, jac_grpc
    )


def format_table(rows: Sequence[BenchRow], markdown: bool) -> str:
    """Render the measurements as an aligned text table or a Markdown table."""
    header = (
        "backend",
        "engine",
        "qubits",
        "depth",
        "eval rows",
        "eval/s local",
        "eval/s gRPC",
        "jac rows",
        "jac/s local",
        "jac/s gRPC",
    )
    body = [
        (
            r.backend,
            r.engine,
            str(r.n_qubits),
            str(r.depth),
            str(r.eval_rows),
            f"{r.eval_local:,.0f}",
            f"{r.eval_grpc:,.0f}",
            str(r.jac_rows),
            f"{r.jac_local:,.1f}",
            f"{r.jac_grpc:,.1f}",
        )
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(cells[k]) for cells in (header, *body)) for k in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(cells, widths, strict=True)) for cells in (header, *body)
    )


def speedups(rows: Sequence[BenchRow]) -> list[str]:
    """Lines comparing batched-through-gRPC with qsim for every shape both ran."""
    by_key = {(r.backend, r.n_qubits, r.depth): r for r in rows}
    lines = []
    for (backend, n_qubits, depth), row in by_key.items():
        qsim = by_key.get(("qsim", n_qubits, depth))
        if backend != "batched" or qsim is None:
            continue
        lines.append(
            f"{n_qubits} qubits, depth {depth}: batched via gRPC ({row.eval_rows} rows) / qsim in process = "
            f"{row.eval_grpc / qsim.eval_local:,.0f}x evaluations/s, "
            f"{row.jac_grpc / qsim.jac_local:,.0f}x Jacobians/s"
        )
    return lines


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmark(
    backends: Sequence[str] = ("batched", "qsim", "cirq"),
    *,
    quick: bool = False,
    markdown: bool = False,
    torch_threads: int = 1,
) -> list[BenchRow]:
    """Measure every engine in ``backends`` on 4 and 6 qubits, depth 2 and 5; print the results.

    ``torch_threads`` is set process-wide, as ``qpumesh node serve`` does (its default is 1).
    """
    import torch

    torch.set_num_threads(torch_threads)
    shapes = [(4, 2)] if quick else [(4, 2), (4, 5), (6, 2), (6, 5)]
    min_seconds = 0.2 if quick else 1.0
    print(f"# qpumesh node benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"# {platform.platform()}, {_cpu_name()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"torch {torch.__version__} with {torch_threads} thread(s); rates = rows / median call time"
    )
    print("# load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    results: list[BenchRow] = []
    for backend in backends:
        for n_qubits, depth in shapes:
            eval_rows = QUICK_ROWS[backend] if quick else EVAL_ROWS[backend]
            jac_rows = min(eval_rows, JACOBIAN_ROWS[backend])
            results.append(
                measure(
                    backend, n_qubits, depth, eval_rows=eval_rows, jac_rows=jac_rows, min_seconds=min_seconds
                )
            )
    print("# load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(format_table(results, markdown))
    for line in speedups(results):
        print(line)
    return results
