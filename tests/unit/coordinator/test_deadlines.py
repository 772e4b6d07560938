"""Deadlines from work and pace: what a slow node is allowed, and when a call counts as hung."""

from __future__ import annotations

import dataclasses

import cirq
import numpy as np
import pytest

from qpumesh.coordinator.ansatz import build_ansatz
from qpumesh.coordinator.executor import CircuitTask
from qpumesh.coordinator.mesh.deadlines import (
    MAX_DEADLINE_SECONDS,
    SLACK,
    Pace,
    call_work,
    deadline,
    describe,
)


def _task(qubits: int, rows: int, *, jacobian: bool) -> CircuitTask:
    ansatz = build_ansatz("chen2020", qubits, 2, 1)
    values = np.zeros((rows, len(ansatz.symbols)))
    return CircuitTask(ansatz.circuit, ansatz.observables, ansatz.symbols, values, jacobian=jacobian)


def test_work_grows_with_rows_width_operations_and_the_shift_rule() -> None:
    small = _task(2, 10, jacobian=False)
    operations = len(list(cirq.read_json(json_text=small.circuit.cirq_json).all_operations()))
    assert call_work(small) == 10 * 2**2 * operations
    assert call_work(dataclasses.replace(small, values=np.zeros((40, len(small.symbols))))) == 4 * call_work(
        small
    )
    assert call_work(dataclasses.replace(small, jacobian=True)) == (2 * len(small.symbols) + 1) * call_work(
        small
    )
    assert call_work(_task(10, 10, jacobian=False)) > 2**8 * call_work(small)
    # A VJP (gradient mode "vjp") is the shift rule's executions without the values.
    vjp = dataclasses.replace(small, cotangents=np.ones((10, len(small.observables))))
    assert call_work(vjp) == 2 * len(small.symbols) * call_work(small)


def test_without_history_the_deadline_is_the_floor() -> None:
    assert deadline(30.0, Pace(), [], 1e6) == 30.0
    assert deadline(30.0, Pace(), [Pace()], 1e6) == 30.0


def test_prediction_scales_up_with_work_never_down() -> None:
    pace = Pace()
    pace.record(2.0, 100.0)  # 2 s for 100 units in flight
    assert pace.predict(400.0) == pytest.approx(8.0)  # four times the work in flight
    assert pace.predict(10.0) == 2.0  # a fixed latency may dominate small calls
    assert deadline(0.5, pace, [], 400.0) == pytest.approx(0.5 + SLACK * 8.0)


def test_a_probe_record_is_a_fixed_latency() -> None:
    pace = Pace()
    pace.record(3.0, 0.0)
    assert pace.predict(0.0) == 3.0 and pace.predict(1e9) == 3.0


def test_a_node_without_history_borrows_the_slowest_other_pace() -> None:
    fast, slow = Pace(), Pace()
    fast.record(0.01, 10.0)
    slow.record(1.0, 10.0)
    assert deadline(0.3, Pace(), [fast, slow], 10.0) == pytest.approx(0.3 + SLACK * 1.0)
    assert deadline(0.3, fast, [slow], 10.0) == pytest.approx(0.3 + SLACK * 0.01)


def test_a_timeout_escalates_the_next_deadline_and_the_cap_holds() -> None:
    pace = Pace()
    pace.record(0.01, 10.0)
    first = deadline(0.3, pace, [], 10.0)
    pace.record(first, 10.0)  # that call timed out: the node is at least this slow
    second = deadline(0.3, pace, [], 10.0)
    assert second == pytest.approx(0.3 + SLACK * first) and second > (SLACK + 1) * first - 0.3
    pace.record(1e9, 10.0)
    assert deadline(0.3, pace, [], 10.0) == MAX_DEADLINE_SECONDS
    assert deadline(7200.0, pace, [], 10.0) == 7200.0


def test_the_window_forgets_old_calls() -> None:
    pace = Pace()
    pace.record(100.0, 1.0)
    for _ in range(64):
        pace.record(0.1, 1.0)
    assert pace.predict(1.0) == pytest.approx(0.1)
    pace.clear()
    assert not pace and pace.predict(1.0) == 0.0


def test_the_description_names_the_floor_slack_and_cap() -> None:
    text = describe(30.0, 41.5)
    assert text.startswith("deadline 41.5 s = floor 30 s (timeout_seconds) + 4 x ")
    assert text.endswith(f"capped at {MAX_DEADLINE_SECONDS:g} s (MAX_DEADLINE_SECONDS)")
    assert "capped at 7200 s" in describe(7200.0, 7200.0)  # a floor above the cap raises it
