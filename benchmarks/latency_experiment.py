"""Mesh latency and hedging: how one slow node slows distributed QLSTM training, and what hedging buys.

Starts a local mesh of ``--nodes`` QPU nodes on loopback (separate ``python -m
qpumesh.node serve`` processes by default, or in-process servers with
``--in-process``), then for every latency injected on ONE node (``--latencies``, ms;
set through the token-guarded NodeAdmin RPC, as ``qpumesh fault`` does) trains the
same short distributed-QLSTM job through a ``MeshExecutor`` without hedging and with
``hedge_after_seconds = --hedge-after-ms``. Every round of a time step waits for its
slowest call, so without hedging each round pays the slow node's latency; with
hedging a call the slow node has not answered after the hedge delay is duplicated
on the least-loaded, fastest other node and the first reply wins.

The configurations are run ``--repeats`` times, interleaved, and the median epoch
wall time is reported, because the host is shared. Epoch 1 (which also ships and
compiles the circuits) is left out of the timing. The final test R² must be the
same in every row: retried and hedged calls return identical numbers.

It also counts the sequential network rounds of one training step (forward +
backward of one mini-batch): the target is the window length T, since all 4 x M
sub-circuits of a time step, Jacobians included, travel in one round (as M requests,
one per part, since issue 8: the 4 gates of a part share a request).

Usage::

    python benchmarks/latency_experiment.py --markdown     # 4 node processes, 0/5/20/50 ms

Results and the exact command are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.training import Trainer
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig
from qpumesh.node.faults import FaultSettings, fault_hooks
from qpumesh.node.server import create_server
from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.v1 import node_admin_pb2_grpc as apb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.fault_config import ADMIN_TOKEN_METADATA, FaultConfig
from qpumesh.wire.job_spec import JobSpec

TOKEN = "latency-experiment"


@dataclass
class Run:
    """One training run's measurements."""

    epoch_seconds: float
    final_r2: float
    hedges: int
    hedge_wins: int
    retries: int
    rounds_per_epoch: int
    others_p50_ms: float


@contextmanager
def in_process_mesh(count: int, workers: int) -> Iterator[list[str]]:
    """Run ``count`` node servers in this process; yield their addresses."""
    servers = []
    try:
        for i in range(count):
            hooks = fault_hooks(FaultSettings(admin_token=TOKEN), node_id=f"qpu-{i}")
            config = ServerConfig(
                node=NodeConfig(node_id=f"qpu-{i}"), host="127.0.0.1", port=0, workers=workers
            )
            servers.append(create_server(config, **hooks.server_kwargs()))
        yield [f"127.0.0.1:{port}" for _, port in servers]
    finally:
        for server, _ in servers:
            server.stop(None)


@contextmanager
def process_mesh(count: int, workers: int) -> Iterator[list[str]]:
    """Run ``count`` ``python -m qpumesh.node serve`` processes; yield their addresses."""
    with tempfile.TemporaryDirectory(prefix="qpumesh-latency-") as tmp:
        port_files = [Path(tmp) / f"port-{i}" for i in range(count)]
        env = {**os.environ, "QPUMESH_ADMIN_TOKEN": TOKEN, "QPUMESH_TORCH_THREADS": "1"}

        def command(i: int) -> list[str]:
            return [
                sys.executable, "-m", "qpumesh.node", "--log-level", "WARNING", "serve",
                "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_files[i]),
                "--node-id", f"qpu-{i}", "--workers", str(workers),
            ]  # fmt: skip

        processes = [subprocess.Popen(command(i), env=env) for i in range(count)]
        try:
            deadline = time.monotonic() + 180
            while not all(p.exists() for p in port_files):
                if time.monotonic() > deadline or any(proc.poll() is not None for proc in processes):
                    raise RuntimeError("node processes did not start")
                time.sleep(0.2)
            yield [f"127.0.0.1:{p.read_text().strip()}" for p in port_files]
        finally:
            for proc in processes:
                proc.terminate()
            for proc in processes:
                proc.wait(timeout=30)


def set_latency(address: str, latency_ms: float) -> None:
    """Replace the node's faults by a fixed latency, through NodeAdmin.SetFaults."""
    with open_channel(address) as channel:
        admin = apb_grpc.NodeAdminStub(channel)  # type: ignore[no-untyped-call]
        request = apb.SetFaultsRequest(faults=FaultConfig(latency_ms=latency_ms).to_proto())
        admin.SetFaults(request, timeout=30, metadata=((ADMIN_TOKEN_METADATA, TOKEN),))


def make_trainer(spec: JobSpec, mesh: MeshExecutor) -> Trainer:
    """Plan the job on the mesh's nodes and route each part to its planned node."""
    trainer = Trainer(spec, mesh, mesh.node_max_qubits())
    assert trainer.plan is not None
    mesh.set_assignment(trainer.plan.assignment)
    return trainer


def rounds_per_batch(spec: JobSpec, addresses: Sequence[str]) -> int:
    """Count the executor rounds of one training step (forward + backward of one mini-batch)."""
    with MeshExecutor(addresses) as mesh:
        trainer = make_trainer(spec, mesh)
        x = trainer.dataset.x_train[: spec.batch_size]
        y = trainer.dataset.y_train[: spec.batch_size]
        before = mesh.stats.snapshot()["rounds"]
        trainer.loss_fn(trainer.model(x), y).backward()
        return int(mesh.stats.snapshot()["rounds"] - before)


def train(spec: JobSpec, addresses: Sequence[str], hedge_after_ms: float | None) -> Run:
    """Train ``spec`` on the mesh (faults already set) and measure it."""
    options = PoolOptions(
        timeout_seconds=30.0,
        hedge_after_seconds=None if hedge_after_ms is None else hedge_after_ms / 1000.0,
    )
    with MeshExecutor(addresses, options) as mesh:
        trainer = make_trainer(spec, mesh)
        history = [trainer.train_epoch() for _ in range(spec.epochs)]
        counters = mesh.stats.snapshot()
        others = [s.p50_latency_ms for s in mesh.node_stats() if s.address != addresses[0]]
    timed = history[1:] or history
    return Run(
        epoch_seconds=statistics.median(m.wall_seconds for m in timed),
        final_r2=history[-1].test_r2,
        hedges=counters["hedges"],
        hedge_wins=counters["hedge_wins"],
        retries=counters["retries"],
        rounds_per_epoch=history[-1].rounds,
        others_p50_ms=statistics.median(others) if others else 0.0,
    )


def table(results: dict[tuple[float, float | None], list[Run]], epochs: int, markdown: bool) -> list[str]:
    """Format one row per configuration (medians over the repeats)."""
    header = [
        "latency on 1 node (ms)", "hedging", "epoch wall time (s)", "final test R²", "hedges/epoch (won)",
        "retries", "rounds/epoch", "p50 call, other nodes (ms)",
    ]  # fmt: skip
    rows = []
    for (latency, hedge), runs in results.items():
        rows.append([
            f"{latency:g}",
            "off" if hedge is None else f"after {hedge:g} ms",
            f"{statistics.median(r.epoch_seconds for r in runs):.3f}",
            ", ".join(sorted({f"{r.final_r2:.6f}" for r in runs})),
            f"{statistics.mean(r.hedges for r in runs) / epochs:.1f} "
            f"({statistics.mean(r.hedge_wins for r in runs) / epochs:.1f})",
            str(sum(r.retries for r in runs)),
            ", ".join(sorted({str(r.rounds_per_epoch) for r in runs})),
            f"{statistics.median(r.others_p50_ms for r in runs):.1f}",
        ])  # fmt: skip
    if markdown:
        return [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---:" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return [
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
        *("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4, help="node servers (default %(default)s)")
    parser.add_argument("--in-process", action="store_true", help="run the nodes in this process")
    parser.add_argument(
        "--workers", type=int, default=2, help="execution slots per node (default %(default)s)"
    )
    parser.add_argument("--latencies", default="0,5,20,50", help="ms on one node (default %(default)s)")
    parser.add_argument(
        "--hedge-after-ms", type=float, default=20.0, help="hedge delay (default %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (default %(default)s)")
    parser.add_argument("--series-length", type=int, default=60, help="series points (default %(default)s)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (default %(default)s)")
    parser.add_argument("--qubits", type=int, default=4, help="QLSTM width d_x + d_h (default %(default)s)")
    parser.add_argument(
        "--partitions", type=int, default=2, help="parts (sub-circuits per gate) M (default %(default)s)"
    )
    parser.add_argument("--layers", type=int, default=2, help="variational layers (default %(default)s)")
    parser.add_argument("--ansatz", default="v0", help="v0 or chen2020 (default %(default)s)")
    parser.add_argument("--window", type=int, default=4, help="window length T (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(1)

    spec = JobSpec(
        name="latency-experiment",
        task="pendulum",
        model="distributed",
        qubits=args.qubits,
        partitions=args.partitions,
        layers=args.layers,
        ansatz=args.ansatz,
        epochs=args.epochs,
        window=args.window,
        series_length=args.series_length,
        lr=args.lr,
        seed=0,
    )
    latencies = [float(v) for v in args.latencies.split(",") if v.strip()]
    configs = [(latency, hedge) for latency in latencies for hedge in (None, args.hedge_after_ms)]
    started = time.perf_counter()
    mesh = in_process_mesh if args.in_process else process_mesh
    with mesh(args.nodes, args.workers) as addresses:
        print(
            f"# {args.nodes} {'in-process' if args.in_process else 'process'} nodes "
            f"({args.workers} workers), "
            f"{args.qubits} qubits, M={args.partitions}, ansatz {args.ansatz}, {args.layers} layers, "
            f"T={args.window}, "
            f"batch {spec.batch_size}, series {args.series_length}, lr {args.lr}, {args.epochs} epochs x "
            f"{args.repeats} repeats; latency injected on {addresses[0]}",
            flush=True,
        )
        per_batch = rounds_per_batch(spec, addresses)
        print(
            f"# sequential network rounds per training step (forward + backward): {per_batch} "
            f"(T={args.window})"
        )
        results: dict[tuple[float, float | None], list[Run]] = {config: [] for config in configs}
        for repeat in range(args.repeats):
            for latency, hedge in configs:
                set_latency(addresses[0], latency)
                results[(latency, hedge)].append(train(spec, addresses, hedge))
            print(
                f"# repeat {repeat + 1}/{args.repeats} done ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        set_latency(addresses[0], 0.0)
    print("\n".join(table(results, args.epochs, args.markdown)))
    print(f"# total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
