"""CPU per mesh round, process by process: the coordinator's and each busy node's.

Trains the default model (or ``--model/--qubits/--partitions``) on a local mesh of
``--nodes`` node processes with mutual TLS, from this process as the coordinator, and
reads every process's user + system CPU from ``/proc`` around ``--timed`` epochs (after
``--warm`` untimed ones). Prints the wall milliseconds per round and the CPU milliseconds
per round of the coordinator (this process) and of each node that did work.

Wall figures on a shared 2-core machine move by tens of per cent from run to run; the CPU
figures are steadier. To compare two versions, run this alternately with each version's
interpreter (e.g. another checkout's ``.venv/bin/python``) and compare medians.

Usage:
    python benchmarks/mesh_round_cpu.py [--nodes 4] [--warm 2] [--timed 10] [--gradient-mode jacobian|vjp]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import torch
from model_args import add_model_arguments, model_spec
from proc_cpu import cpu_seconds

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.training import Trainer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=4)
    add_model_arguments(parser)
    parser.add_argument("--warm", type=int, default=2, help="untimed epochs first")
    parser.add_argument("--timed", type=int, default=10, help="epochs timed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = model_spec(args, args.warm + args.timed)
    with LocalMesh(
        nodes=args.nodes, node_args=("--torch-threads", "1"), coordinator=False, tls=True
    ) as mesh_procs:
        mesh = MeshExecutor(mesh_procs.node_addresses, tls=mesh_procs.coordinator_tls)
        try:
            trainer = Trainer(spec, mesh, mesh.node_max_qubits())
            assert trainer.plan is not None
            mesh.set_assignment(trainer.plan.assignment)
            for _ in range(args.warm):
                trainer.train_epoch()
            pids = [*mesh_procs.pids, os.getpid()]
            before = [cpu_seconds(pid) for pid in pids]
            start = time.perf_counter()
            rounds = 0
            for _ in range(args.timed):
                rounds += trainer.train_epoch().rounds
            wall = time.perf_counter() - start
            used = [cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True)]
        finally:
            mesh.close()
    nodes = used[:-1]
    # A node the plan left idle still answers health probes: count only the ones that worked.
    busy = " ".join(f"{1000 * seconds / rounds:.2f}" for seconds in nodes if seconds > 0.1 * max(nodes))
    print(
        f"# {spec.model}, {spec.qubits} qubits, M = {spec.partitions}, gradient mode {spec.gradient_mode}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"wall ms/round {1000 * wall / rounds:.2f}  coordinator CPU ms/round {1000 * used[-1] / rounds:.2f}  "
        f"busy nodes' CPU ms/round {busy or '-'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
