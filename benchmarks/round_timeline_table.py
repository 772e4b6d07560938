"""The tables of ``round_timeline.py``: the critical path's segments and the threads' CPU.

A round is a dict of stamps (``enter``, ``loop``, ``finish``, ``woken``, ``exit``, the
previous round's ``prev_exit``, CPU clocks) with a list of ``calls``; a call is a dict of the
coordinator's stamps with, under ``"n"``, the record of the node that answered it
(``round_timeline_node``). All stamps are ``time.perf_counter_ns`` values.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable
from typing import Any

# The critical path of a round: (label, from stamp, to stamp); "r." = the round, "c." = the
# critical call (the one that reported last), "n." = that call on its node.
SEGMENTS: list[tuple[str, str, str]] = [
    ("training thread: the model since the last round", "r.prev_exit", "r.enter"),
    ("hand-off: run_round -> the loop picks the round up", "r.enter", "r.loop"),
    ("loop: round start -> this task's dispatch starts", "r.loop", "c.task"),
    ("dispatch: node, deadline, request -> stub called", "c.task", "c.stub"),
    ("grpc aio: call set up -> request serialized (start)", "c.stub", "c.serialize"),
    ("client: serialize the request", "c.serialize", "c.serialized"),
    ("wire out: client send, TLS, node's poller sees the call", "c.serialized", "n.event"),
    ("node poller: call event -> interceptors looked up, pool submit", "n.event", "n.submitted"),
    ("node: worker asks for the message -> poller deserializes", "n.submitted", "n.deserialize"),
    ("node poller: deserialize the request", "n.deserialize", "n.deserialized"),
    ("node: poller notifies -> worker thread runs the behaviour", "n.deserialized", "n.worker"),
    ("node: telemetry + fault interceptors -> servicer", "n.worker", "n.handler"),
    ("node servicer: admission, decode values, slot", "n.handler", "n.engine"),
    ("node core: shift_gradient (engine)", "n.engine", "n.engine_done"),
    ("node servicer: reply built, metrics, slot back", "n.engine_done", "n.handler_left"),
    ("node: interceptors' exits", "n.handler_left", "n.interceptors_left"),
    ("node: -> serialize the reply (start)", "n.interceptors_left", "n.serialize_reply"),
    ("node: serialize the reply", "n.serialize_reply", "n.reply_serialized"),
    ("node: status + message batch started", "n.reply_serialized", "n.status_sent"),
    ("wire back: node send, TLS, client's loop deserializes", "n.status_sent", "c.deserialize_reply"),
    ("client: deserialize the reply", "c.deserialize_reply", "c.reply_deserialized"),
    ("grpc aio: -> the stub's await returns", "c.reply_deserialized", "c.reply"),
    ("dispatch: -> decode starts (pace, latency)", "c.reply", "c.decode"),
    ("codec: decode_gradient", "c.decode", "c.decoded"),
    ("dispatch: -> task done (CircuitResult)", "c.decoded", "c.done"),
    ("loop: task done -> round finished (lock released)", "c.done", "r.finish"),
    ("hand-back: lock released -> training thread awake", "r.finish", "r.woken"),
    ("training thread: round stats -> run_round returns", "r.woken", "r.exit"),
]


def attach_node_calls(rounds: list[dict[str, Any]], node_calls: dict[str, list[dict[str, int]]]) -> None:
    """Give each coordinator call the node record of the call it made (matched by time)."""
    for address, unsorted in node_calls.items():
        records = sorted((r for r in unsorted if "event" in r), key=lambda r: r["event"])
        starts = [r["event"] for r in records]
        for round_ in rounds:
            for call in round_["calls"]:
                if call.get("node") != address or "serialized" not in call or "reply" not in call:
                    continue
                i = bisect.bisect_left(starts, call["serialize"])
                if i < len(records) and records[i]["event"] <= call["reply"]:
                    call["n"] = records[i]


def stamp(round_: dict[str, Any], call: dict[str, Any], name: str) -> int | None:
    scope, key = name.split(".", 1)
    source = round_ if scope == "r" else call if scope == "c" else call.get("n", {})
    return source.get(key)  # type: ignore[no-any-return]


def segment_table(
    rounds: list[dict[str, Any]], pick: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> list[tuple[str, float, int]]:
    """Median µs of each segment over ``rounds`` for the call ``pick`` chooses in each."""
    rows = []
    for label, first, second in SEGMENTS:
        values = []
        for round_ in rounds:
            call = pick(round_)
            if call is None:
                continue
            a, b = stamp(round_, call, first), stamp(round_, call, second)
            if a is not None and b is not None:
                values.append((b - a) / 1000)
        rows.append((label, statistics.median(values) if values else float("nan"), len(values)))
    return rows


def critical(round_: dict[str, Any]) -> dict[str, Any] | None:
    calls = [c for c in round_["calls"] if "done" in c and "n" in c]
    return max(calls, key=lambda c: c["done"]) if calls else None


def other(round_: dict[str, Any]) -> dict[str, Any] | None:
    calls = [c for c in round_["calls"] if "done" in c and "n" in c]
    return min(calls, key=lambda c: c["done"]) if len(calls) > 1 else None


def print_cpu(rounds: list[dict[str, Any]]) -> None:
    """Print the busy threads' CPU against their wall time: what is work, what is waiting."""

    def median(values: list[int]) -> float:
        return statistics.median(values) / 1000 if values else float("nan")

    run_wall = [r["exit"] - r["enter"] for r in rounds]
    loop = [r["loop_cpu_left"] - r["loop_cpu"] for r in rounds]
    training = [r["cpu_left"] - r["cpu"] for r in rounds]
    calls = [c["n"] for r in rounds for c in r["calls"] if "worker_cpu_left" in c.get("n", {})]
    worker_wall = [n["interceptors_left"] - n["worker"] for n in calls]
    worker_cpu = [n["worker_cpu_left"] - n["worker_cpu"] for n in calls]
    status_wall = [n["status_sent"] - n["reply_serialized"] for n in calls if "status_cpu" in n]
    status_cpu = [n["status_cpu"] for n in calls if "status_cpu" in n]
    rows = (
        ("coordinator, run_round: the mesh loop thread", median(run_wall), median(loop)),
        (
            "coordinator, run_round: the training thread (hand-off, wait, stats)",
            float("nan"),
            median(training),
        ),
        ("node, gRPC worker thread: interceptors, servicer, core", median(worker_wall), median(worker_cpu)),
        ("node, gRPC worker thread: the status + message batch", median(status_wall), median(status_cpu)),
    )
    print(f"\n{'threads: CPU against wall, median µs':<66} {'wall':>10} {'CPU':>8}")
    for label, wall, cpu in rows:
        print(f"{label:<66} {wall:>10.1f} {cpu:>8.1f}")


def gc_summary(events: list[Any], start: int, end: int, rounds: int) -> str:
    """Collections per generation and µs of collecting per round between ``start`` and ``end``."""
    inside = [e for e in events if start <= e[0] <= end]
    counts = [sum(1 for e in inside if e[2] == g) for g in range(3)]
    spent = sum(e[1] - e[0] for e in inside) / 1000
    return f"gen0/1/2 collections {counts[0]}/{counts[1]}/{counts[2]}, {spent / rounds:.1f} µs/round"
