"""Throughput of QPU node engines, as a client sees it through gRPC (and, given one, in process).

Runs the QLSTM-style variational circuit (H + RY(x_i) encoding, then ``depth`` layers
of CNOT ladders and RY(w) rotations, <Z> on every qubit) on each engine and reports
circuit evaluations per second and parameter-shift Jacobians per second through a real
node (``NodeClient``). ``qpumesh node bench`` starts one ``python -m qpumesh.node``
process per engine on a free port of this machine (or measures the node at ``--node``);
``benchmarks/bench_node.py`` also runs the same engine on a ``NodeCore`` in its own
process, timed in alternation, and the last lines compare the batched engine behind
gRPC with qsim, the plain simulator it replaces.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import cirq
import numpy as np
import numpy.typing as npt
import sympy

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.client.node_client import NodeClient
from qpumesh.wire.backends import BACKENDS
from qpumesh.wire.circuits import PauliTerms, WireCircuit, pauli_terms
from qpumesh.wire.tls import TlsConfig

# Rows per request: the batched engine gets the full batch; the per-row engines fewer
# (their cost is linear in rows, so the rate per row is what matters).
EVAL_ROWS = {"batched": 1000, "qsim": 100, "cirq": 100}
JACOBIAN_ROWS = {"batched": 1000, "qsim": 4, "cirq": 4}
QUICK_ROWS = {"batched": 200, "qsim": 20, "cirq": 20}
BENCH_MAX_QUBITS = 8
"""The benchmark's nodes accept circuits up to this width (the largest shape is 6)."""


LocalCall = Callable[[str, str | None, Sequence[PauliTerms], Sequence[str], npt.NDArray[np.float64]], object]
"""``NodeCore.evaluate`` / ``.shift_gradient``: (hash, Cirq JSON or None, observables, symbols, rows)."""


class LocalEngine(Protocol):
    """An engine in this process with a ``NodeCore``'s calls (``benchmarks/bench_node.py``)."""

    @property
    def evaluate(self) -> LocalCall:
        """Expectations for a batch of rows."""
        ...

    @property
    def shift_gradient(self) -> LocalCall:
        """Parameter-shift Jacobians for a batch of rows."""
        ...


@dataclass(frozen=True)
class BenchNode:
    """A node to measure: its address, and optionally the same engine in this process."""

    address: str
    local: LocalEngine | None = None
    tls: TlsConfig | None = None


NodeFor = Callable[[str], contextlib.AbstractContextManager[BenchNode]]
"""Given an engine name, a context that serves a node with that engine (and stops it after)."""


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
    ``eval_*``, full Jacobians (every observable by every symbol) for ``jac_*``; the
    ``*_local`` ones are None when the engine was not also run in this process.
    """

    backend: str
    engine: str
    n_qubits: int
    depth: int
    eval_rows: int
    eval_local: float | None
    eval_grpc: float
    jac_rows: int
    jac_local: float | None
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
    node: BenchNode,
    backend: str,
    n_qubits: int,
    depth: int,
    *,
    eval_rows: int,
    jac_rows: int,
    min_seconds: float,
) -> BenchRow:
    """Measure one engine on one circuit shape through gRPC (and in process when ``node.local`` is set).

    A local engine and the node's are separate (as on a real mesh) and are timed in alternation.
    """
    circuit, symbols, observables = qlstm_vqc(n_qubits, depth)
    wire = WireCircuit.from_cirq(circuit)
    terms = [pauli_terms(o, wire.qubits) for o in observables]
    rng = np.random.default_rng(0)
    values: npt.NDArray[np.float64] = rng.uniform(
        -np.pi, np.pi, size=(max(eval_rows, jac_rows), len(symbols))
    )
    eval_params = {s: values[:eval_rows, j] for j, s in enumerate(symbols)}
    jac_params = {s: values[:jac_rows, j] for j, s in enumerate(symbols)}
    local = node.local
    with NodeClient(node.address, timeout=600, tls=node.tls) as client:
        first = {s: values[:1, j] for j, s in enumerate(symbols)}
        engine = client.evaluate_detailed(circuit, observables, first).backend
        evaluations: list[Callable[[], object]] = [lambda: client.evaluate(circuit, observables, eval_params)]
        jacobians: list[Callable[[], object]] = [
            lambda: client.shift_gradient(circuit, observables, jac_params)
        ]
        if local is not None:  # in process first, as the table reads
            local.evaluate(wire.hash, wire.cirq_json, terms, symbols, values[:1])  # compile once
            evaluations.insert(0, lambda: local.evaluate(wire.hash, None, terms, symbols, values[:eval_rows]))
            jacobians.insert(
                0, lambda: local.shift_gradient(wire.hash, None, terms, symbols, values[:jac_rows])
            )
        eval_rates = _rates(evaluations, eval_rows, min_seconds)
        jac_rates = _rates(jacobians, jac_rows, min_seconds)
    eval_local, jac_local = (eval_rates[0], jac_rates[0]) if local is not None else (None, None)
    return BenchRow(
        backend,
        engine,
        n_qubits,
        depth,
        eval_rows,
        eval_local,
        eval_rates[-1],
        jac_rows,
        jac_local,
        jac_rates[-1],
    )


@contextlib.contextmanager
def node_process(backend: str) -> Iterator[BenchNode]:
    """Serve ``backend`` from a ``python -m qpumesh.node`` process on a free local port."""
    node_args = ["--backend", backend, "--max-qubits", str(BENCH_MAX_QUBITS), "--torch-threads", "1"]
    with LocalMesh(nodes=1, node_args=node_args, coordinator=False) as mesh:
        yield BenchNode(mesh.node_addresses[0], tls=mesh.client_tls)


def existing_node(address: str, tls: TlsConfig | None = None) -> NodeFor:
    """Measure the node at ``address`` (whatever its engine, over ``tls``) instead of starting one."""

    @contextlib.contextmanager
    def serve(backend: str) -> Iterator[BenchNode]:
        yield BenchNode(address, tls=tls)

    return serve


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
            "-" if r.eval_local is None else f"{r.eval_local:,.0f}",
            f"{r.eval_grpc:,.0f}",
            str(r.jac_rows),
            "-" if r.jac_local is None else f"{r.jac_local:,.1f}",
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
    """Lines comparing batched-through-gRPC with qsim in process for every shape both ran."""
    by_key = {(r.backend, r.n_qubits, r.depth): r for r in rows}
    lines = []
    for (backend, n_qubits, depth), row in by_key.items():
        qsim = by_key.get(("qsim", n_qubits, depth))
        if backend != "batched" or qsim is None or qsim.eval_local is None or qsim.jac_local is None:
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
    backends: Sequence[str] = BACKENDS,
    *,
    quick: bool = False,
    markdown: bool = False,
    torch_threads: int = 1,
    node_for: NodeFor = node_process,
) -> list[BenchRow]:
    """Measure every engine in ``backends`` on 4 and 6 qubits, depth 2 and 5; print the results.

    Args:
        backends: the engines to measure.
        quick: one small shape, fewer rows (a smoke run).
        markdown: print the table as Markdown.
        torch_threads: set process-wide (for a local engine), as ``qpumesh node serve`` does.
        node_for: serves the node of each engine (default: a node process per engine).
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
        with node_for(backend) as node:
            for n_qubits, depth in shapes:
                eval_rows = QUICK_ROWS[backend] if quick else EVAL_ROWS[backend]
                jac_rows = min(eval_rows, JACOBIAN_ROWS[backend])
                results.append(
                    measure(
                        node,
                        backend,
                        n_qubits,
                        depth,
                        eval_rows=eval_rows,
                        jac_rows=jac_rows,
                        min_seconds=min_seconds,
                    )
                )
    print("# load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(format_table(results, markdown))
    for line in speedups(results):
        print(line)
    return results
