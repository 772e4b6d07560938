"""A node keeps a plan per ShiftGradient request shape: the plan never answers another shape.

`NodeCore` checks a request shape (observables, symbol order, wrt, rows, values, cotangents,
shots, method) once and keeps what it decided (`plans.GradientPlan`). These tests send
many shapes to one core, interleaved so that kept plans are hit, and compare every answer
bit for bit with a fresh core that never saw another request; then they send bad numbers
in a shape that was planned, which must fail exactly as on a fresh core.
"""

from __future__ import annotations

from typing import Any

import cirq
import numpy as np
import pytest
import sympy
from node_engine_helpers import as_request

from qpumesh.node.core import GradResult, InvalidRequest, LimitExceeded, NodeConfig, NodeCore, NodeError
from qpumesh.node.gradients import ChainRule, differentiable_slots
from qpumesh.node.requests import CircuitRequests

A, B, C = sympy.symbols("a b c")
Q = cirq.LineQubit.range(2)
CIRCUIT = cirq.Circuit(
    cirq.H(Q[0]),
    cirq.rx(A).on(Q[0]),
    cirq.CNOT(*Q),
    cirq.ry(2 * B + 0.3).on(Q[1]),
    cirq.rz(C).on(Q[0]),
    cirq.rx(A).on(Q[1]),  # "a" drives two slots
)
HASH, JSON = as_request(CIRCUIT)
# "c" only in a non-affine angle: evaluates, but cannot be differentiated.
NON_AFFINE = cirq.Circuit(cirq.rx(A).on(Q[0]), cirq.ry(C**2).on(Q[1]), cirq.CNOT(*Q))
NON_AFFINE_HASH, NON_AFFINE_JSON = as_request(NON_AFFINE)

RNG = np.random.default_rng(5)
VALUES = RNG.normal(size=(4, 3))
SHAPES: list[dict[str, Any]] = [
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"]},
    {"observables": [[(1.0, "IZ")]], "symbols": ["a", "b", "c"]},  # other observable, same sizes
    {"observables": [[(0.5, "ZZ"), (0.2, "XY")], [(1.0, "ZI")]], "symbols": ["a", "b", "c"]},
    {"observables": [[(1.0, "ZI")]], "symbols": ["c", "a", "b"]},  # other column order
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "wrt": ["b"]},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "wrt": ["c", "a"]},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "rows": 2},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "include_values": True},
    {"observables": [[(0.5, "ZZ")], [(1.0, "ZI")]], "symbols": ["a", "b", "c"], "cotangents": True},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "method": "parameter_shift"},
    {"observables": [[(1.0, "ZI")]], "symbols": ["a", "b", "c"], "shots": 50, "seed": 7},
]


def _request(shape: dict[str, Any], values: np.ndarray) -> dict[str, Any]:
    """The ``shift_gradient`` arguments of a shape, for ``values`` (rows cut to the shape's)."""
    request = {key: value for key, value in shape.items() if key not in ("rows", "symbols", "cotangents")}
    order = [["a", "b", "c"].index(s) for s in shape["symbols"]]
    rows = values[: shape.get("rows", len(values))][:, order]
    request.update(circuit_hash=HASH, cirq_json=JSON, symbols=shape["symbols"], values=rows)
    if shape.get("cotangents"):
        request["cotangents"] = np.linspace(-1.0, 1.0, 2 * len(rows)).reshape(len(rows), 2)
    return request


def _same(first: GradResult, second: GradResult) -> None:
    """Equal bit for bit, and the same accounting."""
    assert first.jacobian.tobytes() == second.jacobian.tobytes()
    assert first.jacobian.shape == second.jacobian.shape
    assert (first.expectations is None) == (second.expectations is None)
    if first.expectations is not None and second.expectations is not None:
        assert first.expectations.tobytes() == second.expectations.tobytes()
    assert (first.wrt, first.method, first.backend) == (second.wrt, second.method, second.backend)
    assert (first.shift_rule_executions, first.shift_rule_shots) == (
        second.shift_rule_executions,
        second.shift_rule_shots,
    )
    assert first.hardware_seconds == second.hardware_seconds


def test_one_core_answers_every_shape_as_a_fresh_core_does() -> None:
    core = NodeCore(NodeConfig())
    # Twice through, and each time with other values: every request after the first round
    # hits a kept plan, and must still answer for its own shape and numbers.
    for values in (VALUES, VALUES + 0.25, VALUES[::-1].copy()):
        for shape in [*SHAPES, *reversed(SHAPES)]:
            request = _request(shape, values)
            _same(core.shift_gradient(**request), NodeCore(NodeConfig()).shift_gradient(**request))


def test_a_planned_shape_still_refuses_bad_numbers() -> None:
    core = NodeCore(NodeConfig())
    vjp = SHAPES[8]
    for shape in (SHAPES[0], vjp):
        core.shift_gradient(**_request(shape, VALUES))  # planned
    nan = VALUES.copy()
    nan[2, 1] = np.nan
    with pytest.raises(InvalidRequest, match=r'params.values row 2, column 1 \(symbol "b"\) is nan'):
        core.shift_gradient(**_request(SHAPES[0], nan))
    huge = VALUES.copy()
    huge[1, 1] = 1e308  # finite, but its angle 2 b + 0.3 is not
    with pytest.raises(InvalidRequest, match=r"row 1: the angle of .* is not a finite real number"):
        core.shift_gradient(**_request(SHAPES[0], huge))
    request = _request(vjp, VALUES)
    request["cotangents"] = request["cotangents"].copy()
    request["cotangents"][0, 0] = np.inf
    with pytest.raises(InvalidRequest, match="cotangents contain NaN or infinite values"):
        core.shift_gradient(**request)
    request["cotangents"] = np.zeros((4, 3))  # the planned shape had (4, 2)
    with pytest.raises(InvalidRequest, match=r"cotangents must have shape .* = \(4, 2\), got \[4, 3\]"):
        core.shift_gradient(**request)
    with pytest.raises(InvalidRequest, match=r"values must have shape \(rows, 3\)"):
        core.shift_gradient(**{**_request(SHAPES[0], VALUES), "values": VALUES.ravel()})
    _same(core.shift_gradient(**_request(SHAPES[0], VALUES)), NodeCore(NodeConfig()).shift_gradient(
        **_request(SHAPES[0], VALUES)
    ))  # fmt: skip


BAD_AFTER_GOOD: list[tuple[str, dict[str, Any], type[NodeError], str]] = [
    ("wrt unknown", {"wrt": ["d"]}, InvalidRequest, r'wrt symbol "d" is not a column'),
    ("wrt twice", {"wrt": ["a", "a"]}, InvalidRequest, 'duplicate wrt symbol "a"'),
    ("symbol unknown", {"symbols": ["a", "b", "d"]}, InvalidRequest, 'unknown symbol "d"'),
    ("observable", {"observables": [[(1.0, "ZQ")]]}, InvalidRequest, "invalid letters"),
    ("too many rows", {"values": np.zeros((11, 3))}, LimitExceeded, "max_batch_rows=10"),
    (
        "adjoint with shots",
        {"shots": 10, "method": "adjoint"},
        InvalidRequest,
        "method 'adjoint' needs exact",
    ),
    ("method", {"method": "finite_differences"}, InvalidRequest, "unknown gradient method"),
]


@pytest.mark.parametrize(
    ("case", "change", "error", "message"), BAD_AFTER_GOOD, ids=[c[0] for c in BAD_AFTER_GOOD]
)
def test_a_shape_next_to_a_planned_one_gets_its_own_error(
    case: str, change: dict[str, Any], error: type[NodeError], message: str
) -> None:
    core = NodeCore(NodeConfig(max_batch_rows=10))
    good = _request(SHAPES[0], VALUES)
    core.shift_gradient(**good)
    core.shift_gradient(**good)
    with pytest.raises(error, match=message):
        core.shift_gradient(**{**good, **change})
    with pytest.raises(error, match=message):  # the failure is not kept as a plan either
        core.shift_gradient(**{**good, **change})
    _same(core.shift_gradient(**good), NodeCore(NodeConfig()).shift_gradient(**good))


def test_a_symbol_that_cannot_be_differentiated_is_refused_beside_one_that_can() -> None:
    core = NodeCore(NodeConfig())
    request: dict[str, Any] = {
        "circuit_hash": NON_AFFINE_HASH,
        "cirq_json": NON_AFFINE_JSON,
        "observables": [[(1.0, "ZZ")]],
        "symbols": ["a", "c"],
        "values": VALUES[:, :2],
    }
    for _ in range(2):
        assert core.shift_gradient(**request, wrt=["a"]).jacobian.shape == (4, 1, 1)
        with pytest.raises(InvalidRequest, match="cannot differentiate with respect to symbol 'c'"):
            core.shift_gradient(**request, wrt=["c"])


def test_a_jacobian_is_bounded_on_its_own_beside_a_planned_vjp_of_the_same_rows() -> None:
    # 4 rows x 3 symbols: the VJP's reply is 96 bytes, the Jacobian's of 2 observables 192.
    core = NodeCore(NodeConfig(max_message_bytes=100))
    vjp = _request(SHAPES[8], VALUES)
    jacobian = {key: value for key, value in vjp.items() if key != "cotangents"}
    for _ in range(2):
        assert core.shift_gradient(**vjp).jacobian.shape == (4, 3)
        with pytest.raises(
            LimitExceeded, match="the reply would be 192 bytes, over this node's max_message_bytes=100"
        ):
            core.shift_gradient(**jacobian)


def test_chain_rule_and_angles_give_the_layered_sum_bits_in_c_order() -> None:
    """The one-slot-per-symbol chain rule and all-affine angles: the general path's bits and layout.

    In process the coordinator sums over the Jacobian as returned, and a sum's order is part
    of its numbers: a differently strided array of equal entries changes the losses.
    """
    compiled = NodeCore(NodeConfig()).load_circuit(NON_AFFINE_HASH, NON_AFFINE_JSON)
    plain = NodeCore(NodeConfig()).load_circuit(*as_request(cirq.Circuit(
        cirq.rx(-0.5 * A).on(Q[0]), cirq.ry(B).on(Q[1]), cirq.rz(2 * C + 1).on(Q[0]), cirq.CNOT(*Q)
    )))  # fmt: skip
    slots = differentiable_slots(plain, ["c", "a", "b"])
    rule = ChainRule(plain, slots)
    assert rule._one_slot_each is not None  # the fast path
    grads = RNG.normal(size=(5, 2, len(plain.slots)))
    grads[0, 0, :] = -0.0
    expected = np.zeros((5, 2, 3))
    for w, symbol_slots in enumerate(slots):
        for k in symbol_slots:
            expected[:, :, w] += plain.slots[k].coeff * grads[:, :, k]
    result = rule(grads)
    assert result.flags.c_contiguous and result.shape == expected.shape
    assert result.tobytes() == expected.tobytes()  # -0.0 entries became 0.0 in both

    requests = CircuitRequests(plain)
    columns = requests.columns(["b", "c", "a"])
    assert columns.all_affine
    table = RNG.normal(size=(6, 3))
    general = columns._general_angles(plain, table)
    angles = columns.angles(plain, table)
    assert angles.flags.c_contiguous and angles.tobytes() == general.tobytes()
    assert not CircuitRequests(compiled).columns(["a", "c"]).all_affine
