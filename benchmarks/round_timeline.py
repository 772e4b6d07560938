"""Where a mesh round's wall time goes: one time line across the coordinator and the nodes.

Trains the default model (or ``--model/--qubits/--partitions``) on a local mesh of
``--nodes`` node processes with mutual TLS, from this process as the coordinator, and
stamps every step of each round with ``time.perf_counter_ns`` -- ``CLOCK_MONOTONIC`` on
Linux, one clock for every process on the host -- so that the stamps of the training
thread, the mesh's event loop, the asyncio gRPC client and the node processes (gRPC's
poller thread, the thread-pool worker, the servicer, the engine) lie on one time line.

Nothing in production code is changed or asked per call: this process wraps the
executor's, dispatcher's and codec's functions and gives each node's channel stamping
serializers; the nodes are started as ``python -m round_timeline_node serve ...``
(``benchmarks/round_timeline_node.py``, found through ``PYTHONPATH``), which wraps the node's
servicer, core, telemetry interceptor and gRPC's own server functions in that process
before running the node's usual command line, and writes its stamps to a file when it
stops. The tables are built by ``round_timeline_table.py``.

For every round it takes the critical path -- the call whose reply the round waited for
last -- and prints the median of each segment over the timed rounds, their sum, and the
measured round (the training thread's model work since the previous round plus
``run_round``); the busy threads' CPU against their wall time (work or waiting: the
mesh loop's and the training thread's CPU clocks, the node's gRPC worker's); the other
call's segments, to see how the two calls of a round share the event loop; and the
model's work between two rounds on the mesh against the same model trained in the same
run (``--in-process-epochs`` each) in process, with an executor that answers zeros at
once, and with one that first sleeps (or busy-waits) about a mesh round (``--sleep-ms``):
what a thread's sleeping through the round alone does to the model's next step. Garbage
collections of every process during the stamped rounds are counted too.

Usage:
    python benchmarks/round_timeline.py [--warm 1] [--timed 3] [--in-process-epochs 2]

The wrappers cost a few µs per stamp; the segment between two stamps includes the
wrapper's own cost, so read the table as where time goes, not as exact figures.
"""

from __future__ import annotations

import argparse
import contextvars
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_args import add_model_arguments, model_spec
from profile_epoch import ZeroExecutor
from round_timeline_node import DIR_VARIABLE, now, shift_gradient_path, watch_gc
from round_timeline_table import attach_node_calls, critical, gc_summary, other, print_cpu, segment_table

from qpumesh.coordinator.executor import CircuitResult, CircuitTask

# --------------------------------------------------------------------------- coordinator side


class CoordinatorStamps:
    """Wraps this process's mesh executor, dispatcher and codec so each round leaves its stamps."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []
        self.round: dict[str, Any] = {}
        self.call: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("call")
        self.recording = False

    def install(self, executor: Any) -> None:
        """Wrap ``executor`` (a started ``MeshExecutor``) and the codec's functions."""
        from qpumesh.coordinator.mesh import executor as executor_module
        from qpumesh.wire import node_calls

        stamps = self
        run_round = executor.run_round
        loop_clock = time.pthread_getcpuclockid(executor._thread.ident)

        def stamped_run_round(tasks: Sequence[Any]) -> Any:
            # The CPU clocks of this (the training) thread and of the loop's thread, too.
            round_ = {"enter": now(), "calls": [], "cpu": time.thread_time_ns()}
            round_["loop_cpu"] = time.clock_gettime_ns(loop_clock)
            stamps.round = round_
            if stamps.recording:
                stamps.rounds.append(round_)
            results = run_round(tasks)
            round_["loop_cpu_left"] = time.clock_gettime_ns(loop_clock)
            round_["exit"], round_["cpu_left"] = now(), time.thread_time_ns()
            return results

        executor.run_round = stamped_run_round
        start_round = executor._start_round

        def stamped_start_round(round_: Any) -> None:
            stamps.round["loop"] = now()
            start_round(round_)

        executor._start_round = stamped_start_round
        round_class = executor_module._Round
        finish, wait = round_class.finish, round_class.wait

        def stamped_finish(self: Any) -> None:
            stamps.round["finish"] = now()
            finish(self)

        def stamped_wait(self: Any, loop_thread: Any) -> Any:
            try:
                return wait(self, loop_thread)
            finally:
                stamps.round["woken"] = now()

        round_class.finish = stamped_finish  # type: ignore[method-assign]
        round_class.wait = stamped_wait  # type: ignore[method-assign]

        dispatcher = executor.dispatcher
        run = dispatcher.run

        async def stamped_run(task: Any) -> Any:
            call = {"task": now()}
            stamps.round["calls"].append(call)
            stamps.call.set(call)
            result = await run(task)
            call["done"] = now()
            return result

        dispatcher.run = stamped_run
        decode = node_calls.decode_gradient

        def stamped_decode(reply: Any, request: Any) -> Any:
            call = stamps.call.get()
            call["decode"] = now()
            gradient = decode(reply, request)
            call["decoded"] = now()
            return gradient

        node_calls.decode_gradient = stamped_decode
        # Each node's ShiftGradient through a multicallable of its own channel with stamping codecs.
        from qpumesh.v1 import qpu_node_pb2 as pb

        for node in executor.membership.nodes.values():
            self._wrap_stub(node, pb)

    def _wrap_stub(self, node: Any, pb: Any) -> None:
        stamps = self
        address = node.address

        def serialize(request: Any) -> bytes:
            call = stamps.call.get()
            call["serialize"] = now()
            raw = request.SerializeToString()
            call["serialized"] = now()
            return raw  # type: ignore[no-any-return]

        def deserialize(raw: bytes) -> Any:
            call = stamps.call.get()
            call["deserialize_reply"] = now()
            reply = pb.ShiftGradientResponse.FromString(raw)
            call["reply_deserialized"] = now()
            return reply

        multicallable = node.channel.unary_unary(
            shift_gradient_path(), request_serializer=serialize, response_deserializer=deserialize
        )

        async def shift_gradient(request: Any, **kwargs: Any) -> Any:
            call = stamps.call.get()
            call["node"] = address
            call["stub"] = now()
            reply = await multicallable(request, **kwargs)
            call["reply"] = now()
            return reply

        class Stub:
            def __getattr__(self, name: str) -> Any:
                return getattr(original, name)

        original = node.stub
        stub = Stub()
        stub.ShiftGradient = shift_gradient  # type: ignore[attr-defined]
        node.stub = stub


def wrap_model_gaps(executor: Any, gaps: list[tuple[int, int, int]], loop_thread: Any = None) -> None:
    """Record the training thread's time between one ``run_round``'s return and the next call.

    Each gap is (wall ns, the training thread's CPU ns, the loop thread's CPU ns or 0): CPU
    clocks of threads, so a gap whose CPU falls short of its wall waited (for the GIL or a core).
    """
    run_round = executor.run_round
    loop_clock = None if loop_thread is None else time.pthread_getcpuclockid(loop_thread.ident)
    last = [0, 0, 0]

    def loop_cpu() -> int:
        return 0 if loop_clock is None else time.clock_gettime_ns(loop_clock)

    def timed(tasks: Sequence[Any]) -> Any:
        entered, cpu, loop = now(), time.thread_time_ns(), loop_cpu()
        if last[0]:
            gaps.append((entered - last[0], cpu - last[1], loop - last[2]))
        results = run_round(tasks)
        last[:] = [now(), time.thread_time_ns(), loop_cpu()]
        return results

    executor.run_round = timed


# --------------------------------------------------------------------------- the run


class SleepingZeroExecutor(ZeroExecutor):
    """``ZeroExecutor`` that waits ``seconds`` before answering, like a thread waiting for the mesh.

    It sleeps, or with ``spin`` busy-waits (keeping its core, holding the GIL).
    """

    def __init__(self, seconds: float, *, spin: bool = False) -> None:
        super().__init__()
        self.seconds = seconds
        self.spin = spin

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Wait, then answer zeros."""
        if self.spin:
            end = time.perf_counter() + self.seconds
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(self.seconds)
        return super().run_round(tasks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=4)
    add_model_arguments(parser, gradient_mode=False)  # the time line stamps ShiftGradient rounds
    parser.add_argument("--warm", type=int, default=1, help="untimed mesh epochs first")
    parser.add_argument("--timed", type=int, default=3, help="mesh epochs stamped")
    parser.add_argument("--in-process-epochs", type=int, default=2, help="in-process epochs, alternated")
    parser.add_argument(
        "--sleep-ms",
        type=float,
        default=1.5,
        help="the model-only executor's sleep per round (about a mesh round's)",
    )
    parser.add_argument("--json", type=Path, help="also write every round's stamps here")
    args = parser.parse_args(argv)

    import torch

    from qpumesh.client.local_mesh import LocalMesh
    from qpumesh.coordinator.mesh.executor import MeshExecutor
    from qpumesh.coordinator.mesh.in_process import InProcessExecutor
    from qpumesh.coordinator.training import Trainer

    class StampedMesh(LocalMesh):
        def node_command(self, index: int) -> list[str]:
            return ["round_timeline_node", *super().node_command(index)[1:]]

    torch.set_num_threads(1)
    epochs = args.warm + args.timed
    spec = model_spec(args, epochs)
    stamp_dir = Path(tempfile.mkdtemp(prefix="round-timeline-"))
    os.environ[DIR_VARIABLE] = str(stamp_dir)
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    stamps = CoordinatorStamps()
    coordinator_gc: list[tuple[int, int, int]] = []
    watch_gc(coordinator_gc)
    mesh_gaps: list[tuple[int, int, int]] = []
    local_gaps: list[tuple[int, int, int]] = []
    zero_gaps: list[tuple[int, int, int]] = []
    sleepy_gaps: list[tuple[int, int, int]] = []
    spinning_gaps: list[tuple[int, int, int]] = []
    with StampedMesh(
        nodes=args.nodes, node_args=("--torch-threads", "1"), coordinator=False, tls=True
    ) as mesh_procs:
        mesh = MeshExecutor(mesh_procs.node_addresses, tls=mesh_procs.coordinator_tls)
        try:
            trainer = Trainer(spec, mesh, mesh.node_max_qubits())
            assert trainer.plan is not None
            mesh.set_assignment(trainer.plan.assignment)
            stamps.install(mesh)
            wrap_model_gaps(mesh, mesh_gaps, mesh._thread)
            local = InProcessExecutor()
            local_trainer = Trainer(spec, local, mesh.node_max_qubits())
            wrap_model_gaps(local, local_gaps)
            # The model alone (zeros at once), and the model alone with the thread asleep during
            # each round as on the mesh: what sleeping does to the model's next step by itself.
            zero, sleepy = ZeroExecutor(), SleepingZeroExecutor(args.sleep_ms / 1000)
            spinning = SleepingZeroExecutor(args.sleep_ms / 1000, spin=True)
            side_trainers = [local_trainer]
            for executor, gaps in ((zero, zero_gaps), (sleepy, sleepy_gaps), (spinning, spinning_gaps)):
                side_trainers.append(Trainer(spec, executor, mesh.node_max_qubits()))
                wrap_model_gaps(executor, gaps)
            for _ in range(args.warm):
                trainer.train_epoch()
                if args.in_process_epochs:
                    for other_trainer in side_trainers:
                        other_trainer.train_epoch()
            for gaps in (mesh_gaps, local_gaps, zero_gaps, sleepy_gaps, spinning_gaps):
                gaps.clear()
            rounds = 0
            mesh_seconds = 0.0
            for epoch in range(args.timed):
                stamps.recording = True
                start = time.perf_counter()
                rounds += trainer.train_epoch().rounds
                mesh_seconds += time.perf_counter() - start
                stamps.recording = False
                if epoch < args.in_process_epochs:
                    for other_trainer in side_trainers:
                        other_trainer.train_epoch()
            addresses = list(mesh_procs.node_addresses)
        finally:
            mesh.close()
    node_records = {}
    node_gc = {}
    for index, address in enumerate(addresses):
        path = stamp_dir / f"node-{index}.json"
        saved = json.loads(path.read_text()) if path.exists() else {"calls": [], "gc": []}
        node_records[address], node_gc[address] = saved["calls"], saved["gc"]
    recorded = stamps.rounds
    for previous, round_ in itertools.pairwise(recorded):
        if "exit" in previous:
            round_["prev_exit"] = previous["exit"]
    recorded = recorded[1:]
    attach_node_calls(recorded, node_records)
    if args.json:
        args.json.write_text(json.dumps(recorded))

    print(
        f"# {spec.model}, {spec.qubits} qubits, M = {spec.partitions}, {args.nodes}-node local mesh, "
        f"mutual TLS; {len(recorded)} rounds stamped; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"mesh wall ms/round (whole epochs, stamped) {1000 * mesh_seconds / rounds:.3f}")
    window = (recorded[0]["enter"], recorded[-1]["exit"])
    print(f"garbage collection, coordinator: {gc_summary(coordinator_gc, *window, len(recorded))}")
    for address, events in node_gc.items():
        if node_records[address]:
            print(f"garbage collection, node {address}: {gc_summary(events, *window, len(recorded))}")
    table = segment_table(recorded, critical)
    print(f"\n{'critical path of a round (the call answered last)':<66} {'median µs':>10} {'n':>6}")
    for label, value, count in table:
        print(f"{label:<66} {value:>10.1f} {count:>6}")
    total = sum(value for _, value, _ in table)
    measured = [(r["exit"] - r["prev_exit"]) / 1000 for r in recorded if "exit" in r and "prev_exit" in r]
    print(f"{'sum of the medians':<66} {total:>10.1f}")
    print(f"{'measured round (model + run_round), median':<66} {statistics.median(measured):>10.1f}")
    node_side = [
        (c["n"]["status_sent"] - c["n"]["event"]) / 1000
        for r in recorded for c in [critical(r)] if c is not None and "status_sent" in c["n"]
    ]  # fmt: skip
    print(f"{'  of which on the node (call event -> status sent)':<66} {statistics.median(node_side):>10.1f}")
    trip = [(c["reply"] - c["stub"]) / 1000 for r in recorded for c in [critical(r)] if c is not None]
    print(f"{'  stub called -> await returns':<66} {statistics.median(trip):>10.1f}")

    print_cpu(recorded)
    others = [r for r in recorded if other(r) is not None]
    if others:
        print(f"\n{'the other call of the round (answered first)':<66} {'median µs':>10} {'n':>6}")
        for label, value, count in segment_table(others, other)[2:-3]:
            print(f"{label:<66} {value:>10.1f} {count:>6}")
        lead = []
        for r in others:
            first, last = other(r), critical(r)
            assert first is not None and last is not None
            lead.append((last["stub"] - first["stub"]) / 1000)
        print(f"{'stub of the critical call - stub of the other call':<66} {statistics.median(lead):>10.1f}")
    if local_gaps:
        print(f"\n{'the model between two rounds, median µs':<40} {'wall':>8} {'its CPU':>8} {'loop CPU':>9}")
        for name, gaps in (
            ("mesh", mesh_gaps),
            ("in process", local_gaps),
            ("model only (zeros at once)", zero_gaps),
            (f"model only, asleep {args.sleep_ms:g} ms a round", sleepy_gaps),
            (f"model only, busy-waiting {args.sleep_ms:g} ms a round", spinning_gaps),
        ):
            wall, cpu, loop = (statistics.median(g[i] for g in gaps) / 1000 for i in range(3))
            print(f"{name:<40} {wall:>8.1f} {cpu:>8.1f} {loop:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
