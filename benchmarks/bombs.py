"""Memory and CPU bombs against a real node: time to the answer, node memory, health latency.

    python benchmarks/bombs.py [--python OTHER_PYTHON] [--deadline 30] [--only NAME ...]

For every hostile request of ``qpumesh.wire.testing.BOMBS`` a fresh node process is started
(``LocalMesh`` with nodes only) and the request is sent with a deadline. Printed per bomb:
the status and seconds until the answer, the node's peak resident memory above its idle
size (``VmHWM`` - ``VmRSS`` at start, from ``/proc``), the slowest health check while the
request ran and how many missed their deadline (a ``grpc.health.v1`` check every 0.1 s with
a 1 s deadline, from a process of its own so that sending the bomb does not delay it),
and how long after the answer the node took to answer a good request ("busy" when
abandoned work still held it after 30 s).

``--python`` runs the nodes on another interpreter, e.g. the old main's venv, so before and
after are measured in one run side by side. Nodes above ``--max-rss-gb`` resident are
killed and reported as such. The machine is shared: read the times as orders of magnitude.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.client.local_mesh import LocalMesh
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.testing import BOMBS, Bomb, raw_stub, repetitions


def memory_kb(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of a process in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Outcome:
    status: str
    seconds: float
    peak_mb: float
    health_max: float
    health_failures: int
    recovery: str


def probe_health(address: str, stop: Any, results: Any) -> None:
    """Check health every 0.1 s with a 1 s deadline until `stop`; put (slowest, misses) in `results`."""
    slowest, failures = 0.0, 0
    with open_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10.0)  # connected
        results.put("ready")
        while not stop.is_set():
            start = time.perf_counter()
            try:
                stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            except grpc.RpcError:
                failures += 1
            slowest = max(slowest, time.perf_counter() - start)
            stop.wait(0.1)
    results.put((slowest, failures))


class HealthProbe:
    """`probe_health` in a process of its own, so that this process's GIL does not delay it."""

    def __init__(self, address: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.results: Any = context.Queue()
        self.process = context.Process(
            target=probe_health, args=(address, self.stop, self.results), daemon=True
        )

    def start(self) -> None:
        self.process.start()
        if self.results.get(timeout=60) != "ready":
            raise RuntimeError("the health probe did not start")

    def finish(self) -> tuple[float, int]:
        """Stop probing; return the slowest check (s) and the checks that missed their deadline."""
        self.stop.set()
        slowest, failures = self.results.get(timeout=30)
        self.process.join()
        return slowest, failures


class RssGuard(threading.Thread):
    """Kills the node when its resident memory passes a bound (the machine is shared)."""

    def __init__(self, pid: int, limit_kb: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.limit_kb = pid, limit_kb
        self.stop = threading.Event()
        self.killed = False

    def run(self) -> None:
        while not self.stop.wait(0.05):
            if memory_kb(self.pid, "VmRSS") > self.limit_kb:
                self.killed = True
                os.kill(self.pid, 9)
                return


def good_request() -> pb.EvaluateRequest:
    _, request = repetitions(1)
    assert isinstance(request, pb.EvaluateRequest)
    return request


def run_bomb(bomb: Bomb, python: str, deadline: float, max_rss_gb: float) -> Outcome:
    settings = [arg for name, value in bomb.node for arg in (f"--{name.replace('_', '-')}", str(value))]
    with LocalMesh(
        1, coordinator=False, python=python, node_args=["--workers", "1", *settings], tls=False
    ) as mesh:
        address = mesh.node_addresses[0]
        pid = mesh.pids[0]
        channel = open_channel(address)
        stub = pb_grpc.QPUNodeStub(channel)  # type: ignore[no-untyped-call]
        stub.Evaluate(good_request(), timeout=60)  # warm: the node is serving and has compiled
        idle = memory_kb(pid, "VmRSS")
        probe, guard = HealthProbe(address), RssGuard(pid, int(max_rss_gb * 2**20))
        method, request = bomb.build()
        probe.start()
        guard.start()
        start = time.perf_counter()
        try:
            if isinstance(request, bytes):
                getattr(raw_stub(channel), method)(request, timeout=deadline)
            else:
                getattr(stub, method)(request, timeout=deadline)
            status = "OK"
        except grpc.RpcError as error:
            status = error.code().name
        seconds = time.perf_counter() - start
        peak = memory_kb(pid, "VmHWM")
        recovery = "-"
        if guard.killed:
            status, recovery = f"killed at {max_rss_gb:g} GB", "dead"
        else:
            begin = time.perf_counter()
            try:
                stub.Evaluate(good_request(), timeout=30)
                recovery = f"{time.perf_counter() - begin:.2f} s"
            except grpc.RpcError as error:
                recovery = "busy" if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED else error.code().name
        guard.stop.set()
        slowest, failures = probe.finish()
        channel.close()
        return Outcome(status, seconds, max(0.0, (peak - idle) / 1024), slowest, failures, recovery)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--python",
        action="append",
        default=None,
        help="interpreter(s) to run the node with (default: this one); repeat to compare",
    )
    parser.add_argument("--deadline", type=float, default=30.0, help="client deadline per bomb (s)")
    parser.add_argument("--max-rss-gb", type=float, default=6.0, help="kill a node above this resident size")
    parser.add_argument("--only", nargs="*", default=None, help="bomb names containing these words")
    args = parser.parse_args()
    pythons = args.python or [sys.executable]
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "qpumesh-bombs-numba"))
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # another checkout's node must not write into it
    bombs = [b for b in BOMBS if not args.only or any(w.lower() in b.name.lower() for w in args.only)]
    print(f"deadline {args.deadline:g} s; health: 1 s deadline every 0.1 s; nodes: {', '.join(pythons)}")
    print(
        "| bomb | defect | node | answer | seconds | peak MB | slowest health (s) | health misses "
        "| next good request |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for bomb in bombs:
        for k, python in enumerate(pythons):
            out = run_bomb(bomb, python, args.deadline, args.max_rss_gb)
            print(
                f"| {bomb.name} | {bomb.defect} | {k} | {out.status} | {out.seconds:.3f} "
                f"| {out.peak_mb:.0f} | "
                f"{out.health_max:.3f} | {out.health_failures} | {out.recovery} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
