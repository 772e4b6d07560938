"""What mutual TLS costs: a connection's handshake, one Evaluate call, one QLSTM training round.

Starts two local meshes of ``--nodes`` node processes side by side, one with mutual TLS
(certificates made by ``qpumesh certs init``'s code, as the local mesh does) and one in
plaintext, and measures, interleaved so that both see the same load:

- **connect**: a new channel to a node and its first GetInfo call (TCP, plus the TLS
  handshake with certificate checks on both sides);
- **call**: one Evaluate of a 4-qubit VQC for 10 parameter rows on a warm channel;
- **round**: one epoch of the distributed QLSTM (pendulum, 40 points) through a
  ``MeshExecutor`` holding the coordinator's certificate, divided by its rounds (all
  sub-circuits of a time step, Jacobians included, in one concurrent round).

Prints medians and the TLS/plaintext ratio. The final losses must be equal: TLS changes
no number. Usage::

    nice -n 10 python benchmarks/bench_tls.py [--repeats 30] [--epochs 4]

Results and the exact command are recorded in docs/performance.md ("TLS").
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import cirq
import sympy

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.client.node_client import NodeClient
from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.job_spec import JobSpec
from qpumesh.wire.tls import TlsConfig


def _circuit() -> tuple[cirq.Circuit, list[cirq.PauliString[Any]], dict[str, list[float]]]:
    qubits = cirq.LineQubit.range(4)
    symbols = [sympy.Symbol(f"t{i}") for i in range(8)]
    circuit = cirq.Circuit(
        [cirq.H.on_each(qubits)],
        [cirq.ry(symbols[i]).on(q) for i, q in enumerate(qubits)],
        [cirq.CNOT(a, b) for a, b in itertools.pairwise(qubits)],
        [cirq.ry(symbols[4 + i]).on(q) for i, q in enumerate(qubits)],
    )
    observables = [cirq.Z(q) for q in qubits]
    params = {str(s): [0.1 * (i + 1) * (row + 1) for row in range(10)] for i, s in enumerate(symbols)}
    return circuit, observables, params


def _median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def _timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="connections and calls per configuration")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per setup (the first is not timed)")
    args = parser.parse_args()

    with LocalMesh(nodes=args.nodes, coordinator=False, tls=True) as secure, LocalMesh(
        nodes=args.nodes, coordinator=False, tls=False
    ) as plain:
        coordinator_tls = secure.coordinator_tls
        setups: dict[str, tuple[list[str], TlsConfig | None, TlsConfig | None]] = {
            "mutual TLS": (secure.node_addresses, secure.client_tls, coordinator_tls),
            "plaintext": (plain.node_addresses, None, None),
        }
        circuit, observables, params = _circuit()
        connect: dict[str, list[float]] = {name: [] for name in setups}
        call: dict[str, list[float]] = {name: [] for name in setups}
        clients = {name: NodeClient(addresses[0], tls=tls) for name, (addresses, tls, _) in setups.items()}
        for client in clients.values():
            client.evaluate(circuit, observables, params)  # ship and compile the circuit once
        for _ in range(args.repeats):
            for name, (addresses, tls, _) in setups.items():

                def fresh(address: str = addresses[0], tls: TlsConfig | None = tls) -> None:
                    with NodeClient(address, tls=tls) as client:
                        client.info()

                def evaluate(client: NodeClient = clients[name]) -> None:
                    client.evaluate(circuit, observables, params)

                connect[name].append(_timed(fresh))
                call[name].append(_timed(evaluate))
        for client in clients.values():
            client.close()

        spec = JobSpec(
            model="distributed", qubits=4, partitions=2, layers=1, series_length=40, epochs=args.epochs
        )
        rounds: dict[str, list[float]] = {name: [] for name in setups}
        losses: dict[str, list[float]] = {name: [] for name in setups}
        meshes = {name: MeshExecutor(nodes, tls=mesh_tls) for name, (nodes, _, mesh_tls) in setups.items()}
        trainers = {name: Trainer(spec, mesh, mesh.node_max_qubits()) for name, mesh in meshes.items()}
        for epoch in range(args.epochs):
            for name, trainer in trainers.items():
                metrics = trainer.train_epoch()
                losses[name].append(metrics.train_loss)
                if epoch:  # the first epoch also ships and compiles the circuits
                    rounds[name].append(metrics.wall_seconds / metrics.rounds)
        for mesh in meshes.values():
            mesh.close()

    rounds_each = trainers["plaintext"].history[-1].rounds
    print(
        f"{args.nodes} node processes per mesh, medians of {args.repeats} connections/calls, "
        f"{args.epochs - 1} timed epochs ({rounds_each} rounds each)"
    )
    print(f"{'':<28}{'mutual TLS':>12}{'plaintext':>12}{'ratio':>8}")
    for label, samples in (
        ("connect + first call (ms)", connect),
        ("Evaluate call (ms)", call),
        ("training round (ms)", rounds),
    ):
        tls_ms, plain_ms = _median_ms(samples["mutual TLS"]), _median_ms(samples["plaintext"])
        print(f"{label:<28}{tls_ms:>12.2f}{plain_ms:>12.2f}{tls_ms / plain_ms:>8.2f}")
    same = losses["mutual TLS"] == losses["plaintext"]
    print(f"train losses identical with and without TLS: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
