"""A node under load: good requests alone, with hostile traffic alongside, and past its queue.

    python benchmarks/load.py [--callers 64] [--seconds 60] [--hostile 2] [--queue 4]
                              [--baseline OTHER_PYTHON] [--rounds 200]

Every phase starts a fresh node process (``LocalMesh``, nodes only, default settings, one
execution slot) and measures QLSTM-sized ``Evaluate`` calls (4 qubits, 3 layers of the
paper's ansatz, 8 rows), as the mesh sends them:

1. ``admission``: the cost of the admission checks on a normal Evaluate. One caller
   alternates between a node of this tree and, with ``--baseline``, a node of another
   checkout (e.g. main before issue 9's bounds) in rounds, so both see the same machine
   load; median latency of each, and the ratio. Twice: the same circuit every call (the
   node's cache answers; only the request checks run) and a new circuit every call (the
   circuit JSON scan and compile-cost estimate run too).
2. ``good``: `--callers` threads send good requests back to back for `--seconds`:
   throughput, p50/p99 latency and every status seen.
3. ``good + hostile``: the same while `--hostile` processes send the hostile requests of
   ``qpumesh.wire.testing.BOMBS`` (those a default node answers) round after round; their
   statuses are counted apart. Good calls must all succeed, bombs must all be refused.
4. ``overload``: a node with ``--max-queued-requests`` `--queue` and the same callers: the
   calls past ``workers + queue`` in flight are refused at once with RESOURCE_EXHAUSTED
   ("node busy"), the others are served.

The machine this runs on may be shared: compare the numbers of one run side by side.
Results are recorded in docs/performance.md ("Node under load and hostile requests").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cirq
import grpc
import numpy as np
import sympy

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.circuits import WireCircuit
from qpumesh.wire.tensors import to_tensor
from qpumesh.wire.testing import BOMBS, raw_stub

QUBITS, LAYERS, ROWS = 4, 3, 8
GOOD_DEADLINE = 60.0
HOSTILE_DEADLINE = 30.0


def qlstm_request(offset: float = 0.0) -> pb.EvaluateRequest:
    """A QLSTM cell circuit as the mesh sends it (chen2020): encoding, `LAYERS` layers, Z on each qubit.

    `offset` changes one fixed angle (a different circuit, hash and compile) without changing
    the work.
    """
    q = cirq.LineQubit.range(QUBITS)
    xs = sympy.symbols(f"x0:{QUBITS}")  # the encoding angles atan(v), atan(v**2)
    ys = sympy.symbols(f"y0:{QUBITS}")
    ws = sympy.symbols(f"w0:{3 * QUBITS * LAYERS}")
    ops: list[cirq.Operation] = [cirq.H(x) for x in q]
    ops += [cirq.ry(x).on(b) for x, b in zip(xs, q, strict=True)]
    ops += [cirq.rz(y).on(b) for y, b in zip(ys, q, strict=True)]
    for layer in range(LAYERS):
        ops += [cirq.CNOT(q[i], q[(i + 1) % QUBITS]) for i in range(QUBITS)]
        ops += [cirq.CNOT(q[i], q[(i + 2) % QUBITS]) for i in range(QUBITS)]
        for i in range(QUBITS):
            base = 3 * (layer * QUBITS + i)
            ops += [
                cirq.rx(ws[base]).on(q[i]),
                cirq.ry(ws[base + 1]).on(q[i]),
                cirq.rz(ws[base + 2]).on(q[i]),
            ]
    ops.append(cirq.rz(0.1 + offset).on(q[0]))
    wire = WireCircuit.from_cirq(cirq.Circuit(ops))
    symbols = [str(s) for s in (*xs, *ys, *ws)]
    values = np.random.default_rng(1).uniform(-1, 1, (ROWS, len(symbols)))
    observables = [
        pb.Observable(terms=[pb.PauliTerm(coefficient=1.0, paulis="I" * i + "Z" + "I" * (QUBITS - 1 - i))])
        for i in range(QUBITS)
    ]
    return pb.EvaluateRequest(
        circuit=wire.to_proto(),
        observables=observables,
        params=pb.ParameterBatch(symbols=symbols, values=to_tensor(values)),
    )


@dataclass
class Calls:
    """Latencies of successful calls and the status of every call, shared by threads."""

    seconds: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    refused_seconds: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: str, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == "OK":
                self.seconds.append(seconds)
            elif status == "RESOURCE_EXHAUSTED":
                self.refused_seconds.append(seconds)


def timed(call: Callable[[], Any]) -> tuple[str, float]:
    """Run `call`; return its status name and seconds."""
    start = time.perf_counter()
    try:
        call()
        status = "OK"
    except grpc.RpcError as error:
        status = error.code().name
    return status, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def admission_phase(pythons: list[str], rounds: int) -> None:
    """Median Evaluate latency of each node, alternating calls, same circuit and new circuits."""
    meshes = [LocalMesh(1, coordinator=False, python=p, tls=False) for p in pythons]  # plaintext, as main
    for mesh in meshes:
        mesh.__enter__()
    try:
        channels = [open_channel(m.node_addresses[0]) for m in meshes]
        stubs = [pb_grpc.QPUNodeStub(c) for c in channels]  # type: ignore[no-untyped-call]
        same = qlstm_request()
        for stub in stubs:
            for _ in range(20):  # warm: compiled, kernels jitted, connections up
                stub.Evaluate(same, timeout=GOOD_DEADLINE)
        fresh = [qlstm_request(offset=1e-3 * (k + 1)) for k in range(rounds)]
        print("| node | same circuit: median ms | ratio | new circuit each call: median ms | ratio |")
        print("|---|---|---|---|---|")
        medians: list[tuple[float, float]] = []
        cached = [[0.0] * (rounds * 5) for _ in stubs]
        compiled = [[0.0] * rounds for _ in stubs]
        for r in range(rounds * 5):
            for k, stub in enumerate(stubs):
                status, cached[k][r] = timed(partial(stub.Evaluate, same, timeout=GOOD_DEADLINE))
                assert status == "OK", status
        for r in range(rounds):
            for k, stub in enumerate(stubs):
                status, compiled[k][r] = timed(partial(stub.Evaluate, fresh[r], timeout=GOOD_DEADLINE))
                assert status == "OK", status
        for k in range(len(stubs)):
            medians.append((statistics.median(cached[k]) * 1e3, statistics.median(compiled[k]) * 1e3))
        for k, python in enumerate(pythons):
            a, b = medians[k]
            print(f"| {python} | {a:.2f} | {a / medians[0][0]:.2f} | {b:.2f} | {b / medians[0][1]:.2f} |")
        for channel in channels:
            channel.close()
    finally:
        for mesh in meshes:
            mesh.__exit__(None, None, None)


def hostile_caller(address: str, first: int, seconds: float, results: Any) -> None:
    """Send the bombs a default node answers, round after round, for `seconds` (own process).

    Each bomb is serialised once and sent as bytes, so this process spends its time waiting
    for the node, not encoding, and does not take the good callers' GIL. Puts a Counter of
    statuses in `results`.
    """
    bombs = []
    for bomb in BOMBS:
        if not bomb.node:
            method, request = bomb.build()
            bombs.append((method, request if isinstance(request, bytes) else request.SerializeToString()))
    statuses: Counter[str] = Counter()
    with open_channel(address) as channel:
        raw = raw_stub(channel)
        end = time.monotonic() + seconds
        k = first
        while time.monotonic() < end:
            method, payload = bombs[k % len(bombs)]
            status, _ = timed(partial(getattr(raw, method), payload, timeout=HOSTILE_DEADLINE))
            statuses[status] += 1
            k += 1
    results.put(statuses)


def load_phase(
    label: str, good: pb.EvaluateRequest, *, callers: int, seconds: float, hostile: int, node_args: list[str]
) -> None:
    """`callers` threads of good calls (and `hostile` processes of bombs) for `seconds`; print a row."""
    good_calls = Calls()
    bad: Counter[str] = Counter()
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    with LocalMesh(1, coordinator=False, node_args=node_args, tls=False) as mesh:
        address = mesh.node_addresses[0]
        with open_channel(address) as channel:
            stub = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
            stub.Evaluate(good, timeout=GOOD_DEADLINE)  # warm
            processes = [
                context.Process(target=hostile_caller, args=(address, k, seconds, results))
                for k in range(hostile)
            ]
            for process in processes:
                process.start()
            end = time.monotonic() + seconds

            def good_caller() -> None:
                while time.monotonic() < end:
                    good_calls.record(*timed(lambda: stub.Evaluate(good, timeout=GOOD_DEADLINE)))

            threads = [threading.Thread(target=good_caller) for _ in range(callers)]
            start = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - start
            for process in processes:
                bad.update(results.get(timeout=HOSTILE_DEADLINE + 60))
                process.join()
    ok = good_calls.statuses["OK"]
    refused = good_calls.refused_seconds
    print(
        f"| {label} | {callers} + {hostile} | {elapsed:.0f} | {ok / elapsed:.1f} "
        f"| {percentile(good_calls.seconds, 50) * 1e3:.0f} | {percentile(good_calls.seconds, 99) * 1e3:.0f} "
        f"| {dict(good_calls.statuses)} | {percentile(refused, 50) * 1e3:.1f} "
        f"| {dict(bad) if hostile else '-'} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=64, help="threads sending good requests")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of each load phase")
    parser.add_argument("--hostile", type=int, default=2, help="processes sending hostile requests")
    parser.add_argument("--queue", type=int, default=4, help="--max-queued-requests of the overload phase")
    parser.add_argument("--rounds", type=int, default=200, help="new circuits in the admission phase")
    parser.add_argument("--baseline", default=None, help="interpreter of another checkout to compare with")
    parser.add_argument("--skip", nargs="*", default=[], choices=["admission", "good", "hostile", "overload"])
    args = parser.parse_args()
    # Shared with bombs.py (compiled once), and never next to another checkout's sources.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "qpumesh-bombs-numba"))
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # another checkout's node must not write into it
    print(f"{QUBITS} qubits, {LAYERS} layers, {ROWS} rows per Evaluate; nodes: 1 execution slot")
    if "admission" not in args.skip:
        pythons = [sys.executable] + ([args.baseline] if args.baseline else [])
        print(
            f"\nadmission checks: {args.rounds * 5} calls of one circuit, {args.rounds} new ones, alternating"
        )
        admission_phase(pythons, args.rounds)
    good = qlstm_request()
    print(
        "\n| phase | callers (good + hostile) | s | good calls/s | p50 ms | p99 ms | good statuses "
        "| refusal p50 ms | hostile statuses |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    if "good" not in args.skip:
        load_phase("good", good, callers=args.callers, seconds=args.seconds, hostile=0, node_args=[])
    if "hostile" not in args.skip:
        load_phase(
            "good + hostile",
            good,
            callers=args.callers,
            seconds=args.seconds,
            hostile=args.hostile,
            node_args=[],
        )
    if "overload" not in args.skip:
        queue = ["--max-queued-requests", str(args.queue)]
        load_phase(
            f"overload (queue {args.queue})",
            good,
            callers=args.callers,
            seconds=args.seconds,
            hostile=0,
            node_args=queue,
        )


if __name__ == "__main__":
    main()
