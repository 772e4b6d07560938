"""The round time line accounts for the whole round, and each node record lands on its own call."""

from __future__ import annotations

from typing import Any

import pytest
import round_timeline_table as timeline


def _stamps() -> list[str]:
    """Every stamp of the critical path, in the order the segments visit them."""
    names = [timeline.SEGMENTS[0][1]]
    for _, first, second in timeline.SEGMENTS:
        assert first == names[-1], f"segment {first} -> {second} does not start where the last one ended"
        names.append(second)
    return names


def _round(start: int, step: int, node: str) -> dict[str, Any]:
    """A round whose stamps follow each other ``step`` ns apart, from ``start``."""
    round_: dict[str, Any] = {"calls": []}
    call: dict[str, Any] = {"node": node, "n": {}}
    for i, name in enumerate(_stamps()):
        scope, key = name.split(".", 1)
        target = round_ if scope == "r" else call if scope == "c" else call["n"]
        target[key] = start + i * step
    round_["calls"].append(call)
    return round_


def test_segments_chain_from_the_previous_round_to_the_return() -> None:
    names = _stamps()
    assert names[0] == "r.prev_exit"
    assert names[-1] == "r.exit"
    assert len(set(names)) == len(names)


def test_the_segments_add_up_to_the_measured_round() -> None:
    rounds = [_round(1_000_000 * i, 1_000 + i, "a") for i in range(5)]
    table = timeline.segment_table(rounds, timeline.critical)
    measured = sorted((r["exit"] - r["prev_exit"]) / 1000 for r in rounds)[2]
    assert sum(value for _, value, _ in table) == pytest.approx(measured)
    assert all(count == 5 for _, _, count in table)


def test_node_records_attach_to_the_call_they_answered() -> None:
    first, second = _round(0, 1_000, "a"), _round(10_000_000, 1_000, "a")
    rounds = [first, second]
    for round_ in rounds:
        del round_["calls"][0]["n"]
    inside = {"event": second["calls"][0]["serialized"] + 1, "engine": 5}
    stray = {"event": second["calls"][0]["reply"] + 1}  # after the reply: another call's
    timeline.attach_node_calls(rounds, {"a": [stray, inside], "b": [{"event": first["calls"][0]["stub"]}]})
    assert "n" not in first["calls"][0]
    assert second["calls"][0]["n"] is inside


def test_the_critical_call_is_the_one_answered_last() -> None:
    round_ = _round(0, 1_000, "a")
    early = dict(round_["calls"][0], done=round_["calls"][0]["done"] - 500)
    round_["calls"].append(early)
    assert timeline.critical(round_) is round_["calls"][0]
    assert timeline.other(round_) is early
