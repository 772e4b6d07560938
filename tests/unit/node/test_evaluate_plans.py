"""A node keeps a plan per Evaluate request shape: the plan never answers another shape.

`NodeCore` checks an Evaluate request's shape (observables, symbol order, rows, shots)
once and keeps what it decided (`plans.EvaluatePlan`), beside the ShiftGradient plans of
the same circuit. These tests send many shapes to one core, interleaved so that kept plans
are hit, and compare every answer bit for bit (and its accounting) with a fresh core that
never saw another request -- exact, shot-sampled, noisy and mitigated nodes alike; then they
send bad numbers in a shape that was planned, which must fail exactly as on a fresh core.
Each field of the key left out makes a test here fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_gradient_plans import HASH, JSON, SHAPES, VALUES

from qpumesh.node.core import EvalResult, InvalidRequest, LimitExceeded, NodeConfig, NodeCore, NodeError
from qpumesh.node.mitigation import ZneConfig
from qpumesh.node.noise import NoiseConfig

EVALUATE_SHAPES: list[dict[str, Any]] = [
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"]},
    {"observables": [[(1.0, "IZ")]], "symbols": ["a", "b", "c"]},  # other observable, same sizes
    {"observables": [[(0.5, "ZZ"), (0.2, "XY")], [(1.0, "ZI")]], "symbols": ["a", "b", "c"]},
    {"observables": [[(0.5, "ZZ"), (0.2, "XY")]], "symbols": ["a", "b", "c"]},  # same terms, one output
    {"observables": [[(1.0, "ZI")]], "symbols": ["c", "a", "b"]},  # other column order
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "rows": 2},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "shots": 50, "seed": 7},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "shots": 80, "seed": 7},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "shots": 50, "seed": 8},
]

CONFIGS = {
    "exact": NodeConfig(),
    "default shots": NodeConfig(default_shots=40),
    "readout error": NodeConfig(noise=NoiseConfig(readout_error=0.05)),
    "density matrix": NodeConfig(noise=NoiseConfig(depolarizing_1q=0.02, depolarizing_2q=0.05)),
    "trajectories": NodeConfig(
        noise=NoiseConfig(depolarizing_1q=0.05, method="trajectories", trajectories=20)
    ),
    "zne": NodeConfig(
        noise=NoiseConfig(depolarizing_1q=0.02, depolarizing_2q=0.05), zne=ZneConfig(scale_factors=(1.0, 3.0))
    ),
}


def _request(shape: dict[str, Any], values: np.ndarray) -> dict[str, Any]:
    """The ``evaluate`` arguments of a shape, for ``values`` (rows cut to the shape's)."""
    request = {key: value for key, value in shape.items() if key not in ("rows", "symbols")}
    order = [["a", "b", "c"].index(s) for s in shape["symbols"]]
    rows = values[: shape.get("rows", len(values))][:, order]
    request.update(circuit_hash=HASH, cirq_json=JSON, symbols=shape["symbols"], values=rows)
    return request


def _same(first: EvalResult, second: EvalResult) -> None:
    """Equal bit for bit, and the same accounting."""
    assert first.expectations.shape == second.expectations.shape
    assert first.expectations.tobytes() == second.expectations.tobytes()
    assert (first.standard_errors is None) == (second.standard_errors is None)
    if first.standard_errors is not None and second.standard_errors is not None:
        assert first.standard_errors.tobytes() == second.standard_errors.tobytes()
    assert (first.backend, first.executions, first.shots) == (second.backend, second.executions, second.shots)
    assert first.hardware_seconds == second.hardware_seconds


@pytest.mark.parametrize("config", CONFIGS.values(), ids=list(CONFIGS))
def test_one_core_answers_every_shape_as_a_fresh_core_does(config: NodeConfig) -> None:
    core = NodeCore(config)
    # Twice through, and each time with other values: every request after the first round
    # hits a kept plan, and must still answer for its own shape and numbers.
    for values in (VALUES, VALUES + 0.25, VALUES[::-1].copy()):
        for shape in [*EVALUATE_SHAPES, *reversed(EVALUATE_SHAPES)]:
            request = _request(shape, values)
            if config.default_shots:  # sampled: seeded, to compare
                request.setdefault("seed", 3)
            _same(core.evaluate(**request), NodeCore(config).evaluate(**request))


def test_evaluate_and_gradient_plans_of_one_shape_stay_apart() -> None:
    """vjp mode's rounds: an Evaluate and a ShiftGradient of the same observables, symbols and rows."""
    core = NodeCore(NodeConfig())
    gradient_shapes = [shape for shape in SHAPES if "cotangents" not in shape]
    for values in (VALUES, VALUES + 0.5):
        for evaluate, gradient in zip(EVALUATE_SHAPES, gradient_shapes, strict=False):
            request = _request(evaluate, values)
            _same(core.evaluate(**request), NodeCore(NodeConfig()).evaluate(**request))
            grad = _request(gradient, values)
            first, second = core.shift_gradient(**grad), NodeCore(NodeConfig()).shift_gradient(**grad)
            assert first.jacobian.tobytes() == second.jacobian.tobytes()
            assert (first.shift_rule_executions, first.shift_rule_shots) == (
                second.shift_rule_executions,
                second.shift_rule_shots,
            )


def test_a_planned_shape_still_refuses_bad_numbers() -> None:
    core = NodeCore(NodeConfig(max_batch_rows=4))
    shape = EVALUATE_SHAPES[0]
    core.evaluate(**_request(shape, VALUES))  # planned
    nan = VALUES.copy()
    nan[2, 1] = np.nan
    with pytest.raises(InvalidRequest, match=r'params.values row 2, column 1 \(symbol "b"\) is nan'):
        core.evaluate(**_request(shape, nan))
    huge = VALUES.copy()
    huge[1, 1] = 1e308  # finite, but its angle 2 b + 0.3 is not
    with pytest.raises(InvalidRequest, match=r"row 1: the angle of .* is not a finite real number"):
        core.evaluate(**_request(shape, huge))
    with pytest.raises(InvalidRequest, match=r"values must have shape \(rows, 3\)"):
        core.evaluate(**{**_request(shape, VALUES), "values": VALUES.ravel()})
    with pytest.raises(LimitExceeded, match="max_batch_rows=4"):
        core.evaluate(**{**_request(shape, VALUES), "values": np.zeros((5, 3))})
    _same(
        core.evaluate(**_request(shape, VALUES)), NodeCore(NodeConfig()).evaluate(**_request(shape, VALUES))
    )


BAD_AFTER_GOOD: list[tuple[str, dict[str, Any], type[NodeError], str]] = [
    ("symbol unknown", {"symbols": ["a", "b", "d"]}, InvalidRequest, 'unknown symbol "d"'),
    ("symbol missing", {"symbols": ["a", "b"], "values": VALUES[:, :2]}, InvalidRequest, "lacks the circuit"),
    ("observable", {"observables": [[(1.0, "ZQ")]]}, InvalidRequest, "invalid letters"),
    ("no observables", {"observables": []}, InvalidRequest, "no observables"),
    ("shots", {"shots": -1}, InvalidRequest, "shots must be a non-negative integer"),
    ("reply size", {"shots": 10}, LimitExceeded, "the reply would be 64 bytes"),
    ("more rows", {"values": np.zeros((6, 3))}, LimitExceeded, "the reply would be 48 bytes"),
]


@pytest.mark.parametrize(
    ("case", "change", "error", "message"), BAD_AFTER_GOOD, ids=[c[0] for c in BAD_AFTER_GOOD]
)
def test_a_shape_next_to_a_planned_one_gets_its_own_error(
    case: str, change: dict[str, Any], error: type[NodeError], message: str
) -> None:
    # 4 rows x 1 observable: 32 bytes exact, 64 with standard errors.
    core = NodeCore(NodeConfig(max_message_bytes=40))
    good = _request(EVALUATE_SHAPES[0], VALUES)
    core.evaluate(**good)
    core.evaluate(**good)
    with pytest.raises(error, match=message):
        core.evaluate(**{**good, **change})
    with pytest.raises(error, match=message):  # the failure is not kept as a plan either
        core.evaluate(**{**good, **change})
    _same(core.evaluate(**good), NodeCore(NodeConfig()).evaluate(**good))


def test_a_repeated_shape_is_planned_once_beside_its_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    """vjp mode sends Evaluates and VJPs of one shape by turns: both plans are kept and hit."""
    core = NodeCore(NodeConfig())
    planned: list[str] = []
    for name in ("_plan_evaluation", "_plan_gradient"):
        original = getattr(core, name)

        def counting(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            planned.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(core, name, counting)
    shape = EVALUATE_SHAPES[2]
    cotangents = np.ones((len(VALUES), 2))
    for values in (VALUES, VALUES + 0.5, VALUES - 0.5):
        core.evaluate(**_request(shape, values))
        core.shift_gradient(**_request(shape, values), cotangents=cotangents)
    assert planned == ["_plan_evaluation", "_plan_gradient"]
    core.evaluate(**{**_request(shape, VALUES), "shots": 10, "seed": 1})  # a new shape: planned
    assert planned[-1] == "_plan_evaluation" and len(planned) == 3
