"""The hardware cost model against hand-computed cases (docs/hardware.md)."""

from __future__ import annotations

import json
from pathlib import Path

import cirq
import numpy as np
import pytest
import sympy

from qpumesh.node.config import ConfigError, build_config
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.wire.circuits import WireCircuit
from qpumesh.wire.hardware import (
    PRESETS,
    HardwareProfile,
    TaskTime,
    load_profile,
    moment_arities,
    round_seconds,
)

# Round numbers so that every expected value below is computed by hand.
PROFILE = HardwareProfile(
    name="hand",
    gate_1q_seconds=1e-6,
    gate_2q_seconds=10e-6,
    readout_seconds=100e-6,
    shot_seconds=1e-3,
    circuit_seconds=0.1,
    exact_shots=1000,
)
# One shot: moments (1q, 2q, 1q) = 1 + 10 + 1 = 12 µs, + 100 µs readout + 1 ms = 1.112 ms.
SHOT = 1.112e-3


def _circuit() -> cirq.Circuit:
    a, b, c = sympy.symbols("a b c")
    q0, q1 = cirq.LineQubit.range(2)
    return cirq.Circuit(
        [
            cirq.Moment([cirq.ry(a).on(q0), cirq.ry(b).on(q1)]),
            cirq.Moment([cirq.CNOT(q0, q1)]),
            cirq.Moment([cirq.rz(c).on(q1)]),
        ]
    )


def test_shot_duration_is_the_schedule_plus_readout_and_overhead() -> None:
    arities = moment_arities(_circuit())
    assert arities == (1, 2, 1)
    assert PROFILE.shot_duration(arities) == pytest.approx(SHOT, rel=1e-15)


def test_request_seconds_counts_circuits_per_measured_term_and_shots() -> None:
    # 3 parameter sets x 2 measured terms = 6 circuits of 100 shots: 6 x 0.1 + 600 x 1.112 ms.
    assert PROFILE.request_seconds(3, 2, 100, (1, 2, 1)) == pytest.approx(0.6 + 0.6672, rel=1e-14)
    # Exact requests are costed at exact_shots = 1000 shots per circuit.
    assert PROFILE.request_seconds(3, 2, 0, (1, 2, 1)) == pytest.approx(0.6 + 6.672, rel=1e-14)
    assert PROFILE.request_seconds(3, 0, 100, (1, 2, 1)) == 0.0  # nothing measured, nothing run


def _core(tmp_path: Path) -> NodeCore:
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(PROFILE.to_dict()))
    return NodeCore(NodeConfig(hardware=load_profile(str(path))))


def test_node_replies_report_the_hand_computed_hardware_seconds(tmp_path: Path) -> None:
    core = _core(tmp_path)
    wire = WireCircuit.from_cirq(_circuit())
    observables = [[(1.0, "ZI")], [(0.5, "IZ"), (0.5, "ZZ")]]  # measured terms: ZI, IZ, ZZ
    values = np.random.default_rng(0).uniform(-1, 1, (3, 3))
    evaluation = core.evaluate(
        wire.hash, wire.cirq_json, observables, ["a", "b", "c"], values, shots=100, seed=1
    )
    # 3 rows x 3 terms = 9 circuits: 9 x 0.1 s + 900 shots x 1.112 ms.
    assert (evaluation.executions, evaluation.shots) == (3, 900)
    assert evaluation.hardware_seconds == pytest.approx(0.9 + 900 * SHOT, rel=1e-14)
    gradient = core.shift_gradient(
        wire.hash, wire.cirq_json, observables, ["a", "b", "c"], values, include_values=True, shots=0
    )
    # 3 rows x (2 x 3 angles + 1) = 21 executions x 3 terms = 63 circuits of 1000 (exact) shots.
    assert gradient.shift_rule_executions == 21
    assert gradient.hardware_seconds == pytest.approx(6.3 + 63_000 * SHOT, rel=1e-14)


def test_round_seconds_is_the_slowest_node_with_its_network_time() -> None:
    tasks = [
        TaskTime("a", 1.0, 0.1),
        TaskTime("a", 2.0, 0.3),  # node a runs 3 s of QPU work, its slowest call travels 0.3 s
        TaskTime("b", 2.5, 0.05),
    ]
    assert round_seconds(tasks) == pytest.approx(3.3)
    assert round_seconds([]) == 0.0


def test_profiles_are_chosen_by_preset_or_file_and_bad_ones_are_refused(tmp_path: Path) -> None:
    assert build_config({"hardware": load_profile("trapped-ion")}, {}).node.hardware == PRESETS["trapped-ion"]
    assert build_config({}, {"QPUMESH_HARDWARE": "neutral-atom"}).node.hardware.name == "neutral-atom"
    assert build_config({}, {}).node.hardware.name == "superconducting"
    with pytest.raises(ConfigError, match=r"QPUMESH_HARDWARE.*hardware preset"):
        build_config({}, {"QPUMESH_HARDWARE": "photonic"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "gate_1q_seconds": 1e-6}))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['circuit_seconds', 'gate_2q_seconds'"):
        load_profile(str(bad))
    with pytest.raises(ValueError, match="readout_seconds must be a finite number >= 0"):
        HardwareProfile("x", 0.0, 0.0, 0.0, 0.0, -1.0)
