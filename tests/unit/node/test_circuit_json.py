"""The bounded look at circuit JSON: what it counts agrees with Cirq, what it refuses is cheap to refuse."""

from __future__ import annotations

import json

import cirq
import pytest
import sympy

from qpumesh.node.circuit_json import scan_circuit_json
from qpumesh.node.errors import InvalidRequest, LimitExceeded
from qpumesh.node.limits import MAX_EXPONENT, MAX_SUBCIRCUIT_DEPTH
from qpumesh.wire import testing as bombs
from qpumesh.wire.circuits import WireCircuit

A, B, C = sympy.symbols("a b c")
Q = cirq.LineQubit.range(4)
LIMITS = {"max_bytes": 4 * 2**20, "max_operations": 10_000}


def scan(circuit: cirq.AbstractCircuit | str, **limits: int) -> tuple[int, int, int]:
    text = circuit if isinstance(circuit, str) else cirq.to_json(circuit)
    assert isinstance(text, str)
    shape = scan_circuit_json(text, **{**LIMITS, **limits})
    return shape.operations, shape.moments, shape.qubits


def unrolled(circuit: cirq.AbstractCircuit) -> tuple[int, int, int]:
    flat = cirq.unroll_circuit_op(circuit, deep=True, tags_to_check=None)
    return len(list(flat.all_operations())), len(flat), len(flat.all_qubits())


def test_a_plain_circuit_is_counted_as_cirq_counts_it() -> None:
    circuit = cirq.Circuit(
        cirq.H.on_each(*Q), cirq.CNOT(Q[0], Q[1]), cirq.ry(A).on(Q[2]), cirq.rz(2 * B + 1).on(Q[3])
    )
    assert scan(circuit) == unrolled(circuit)


def test_sub_circuits_count_their_repetitions_without_being_unrolled() -> None:
    inner = cirq.FrozenCircuit(cirq.ry(A).on(Q[0]), cirq.CNOT(Q[0], Q[1]))
    middle = cirq.FrozenCircuit(cirq.CircuitOperation(inner, repetitions=3), cirq.X(Q[2]))
    circuit = cirq.Circuit(
        cirq.CircuitOperation(middle, repetitions=4), cirq.CircuitOperation(inner, repetitions=-2)
    )
    operations, moments, qubits = scan(circuit)
    expected = unrolled(circuit)
    assert operations == expected[0] and qubits == expected[2]
    assert moments >= expected[1]  # an upper bound: inlined moments may merge


def test_repetitions_multiply_through_references_and_are_refused_before_any_unrolling() -> None:
    for build in (lambda: bombs.repetitions(10**9), bombs.nested_repetitions):
        _, request = build()
        with pytest.raises(LimitExceeded, match="operations once its sub-circuits are inlined"):
            scan(request.circuit.cirq_json)  # the scan only counts: nothing is unrolled


def test_moments_are_bounded_like_operations() -> None:
    circuit = cirq.Circuit([cirq.Moment()] * 50 + [cirq.Moment([cirq.X(Q[0])])])
    with pytest.raises(LimitExceeded, match="51 moments"):
        scan(circuit, max_operations=50)
    assert scan(circuit, max_operations=51) == (1, 51, 1)


def test_json_over_the_size_bound_is_not_parsed() -> None:
    with pytest.raises(LimitExceeded, match="max_circuit_bytes=100"):
        scan("[" * 200, max_bytes=100)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", r"not valid JSON \(line 1"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("[" * 150 + "]" * 150, "nested more than 100 levels"),
        ('{"cirq_type": "Circuit", "moments": [], "x": NaN}', "non-finite number NaN"),
        ('{"cirq_type": "Circuit", "moments": [], "x": 1e999}', "non-finite number inf"),
        ('{"cirq_type": "REF", "key": 3}', "undefined value 3"),
        ('{"x": ' + "9" * 5000 + "}", "not acceptable JSON"),
    ],
    ids=["syntax", "parser depth", "depth", "nan", "overflow", "dangling ref", "huge integer"],
)
def test_malformed_json_is_an_invalid_request(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        scan(text)


@pytest.mark.parametrize(
    "angle",
    [
        A,
        2 * A + 1,
        sympy.pi * A / 2,
        A**2,
        A * B,
        (A + B + C + 1) ** 4,
        A**-2,
        sympy.sqrt(A),
        0.5 * A + sympy.E,
    ],
    ids=str,
)
def test_ordinary_expressions_are_accepted(angle: sympy.Expr) -> None:
    scan(cirq.Circuit(cirq.ry(angle).on(Q[0])))


@pytest.mark.parametrize(
    ("angle_json", "message"),
    [
        ({"cirq_type": "sympy.Pow", "args": [bombs.integer(3), bombs.integer(30_000_000)]}, "exponent"),
        (
            {"cirq_type": "sympy.Pow", "args": [bombs.symbol("a"), bombs.integer(MAX_EXPONENT + 1)]},
            "exponent",
        ),
        (
            {
                "cirq_type": "sympy.Pow",
                "args": [
                    {"cirq_type": "sympy.Pow", "args": [bombs.symbol("a"), bombs.integer(8)]},
                    bombs.integer(4),
                ],
            },
            r"exponent 8 \(times 4",
        ),
        ({"cirq_type": "sympy.Pow", "args": [bombs.integer(2), bombs.symbol("a")]}, "non-numeric exponent"),
        (
            {
                "cirq_type": "sympy.Pow",
                "args": [
                    {"cirq_type": "sympy.Add", "args": [bombs.symbol(s) for s in "abcdefgh"]},
                    bombs.integer(16),
                ],
            },
            "expands to more than",
        ),
        (
            {"cirq_type": "sympy.Add", "args": [bombs.symbol(f"s{k}") for k in range(500)]},
            "more than 200 nodes",
        ),
        ({"cirq_type": "sympy.Indexed", "args": [bombs.symbol("a")]}, "unsupported symbolic expression"),
        ({"cirq_type": "sympy.Add", "args": []}, "non-empty list of args"),
        (  # found by the hostile suite: a type name that is a list was INTERNAL (unhashable)
            {"cirq_type": "sympy.Mul", "args": [{"cirq_type": [], "name": "a"}, bombs.symbol("b")]},
            "unsupported symbolic expression",
        ),
    ],
    ids=["3**3e7", "a**17", "(a**8)**4", "2**a", "expansion", "nodes", "indexed", "empty add", "list type"],
)
def test_expensive_or_unsupported_expressions_are_refused_before_sympy(
    angle_json: dict[str, object], message: str
) -> None:
    text = json.dumps(bombs.circuit_json([bombs.gate_op(bombs.ry(angle_json), 0)]))
    with pytest.raises(InvalidRequest, match=message):
        scan(text)


def test_matrices_are_bounded_before_numpy_and_matrix_gates_to_three_qubits() -> None:
    _, request = bombs.matrix_gate(4096)
    with pytest.raises(LimitExceeded):
        scan(request.circuit.cirq_json, max_bytes=64 * 2**20)
    _, request = bombs.matrix_gate(16)
    with pytest.raises(LimitExceeded, match="MatrixGate on 4 qubits"):
        scan(request.circuit.cirq_json)
    gate = cirq.MatrixGate(cirq.unitary(cirq.CCX))
    assert scan(cirq.Circuit(gate.on(*Q[:3])))[0] == 1


def test_sub_circuits_nest_a_bounded_number_of_levels() -> None:
    body: cirq.FrozenCircuit = cirq.FrozenCircuit(cirq.X(Q[0]))
    for _ in range(MAX_SUBCIRCUIT_DEPTH + 1):
        body = cirq.FrozenCircuit(cirq.CircuitOperation(body))
    with pytest.raises(InvalidRequest, match="nested"):
        scan(cirq.Circuit(cirq.CircuitOperation(body)))


def test_resolvers_of_sub_circuits_take_numbers_or_symbols_only() -> None:
    inner = cirq.FrozenCircuit(cirq.ry(A).on(Q[0]))
    assert scan(cirq.Circuit(cirq.CircuitOperation(inner, param_resolver={A: B})))[0] == 1
    assert scan(cirq.Circuit(cirq.CircuitOperation(inner, param_resolver={A: 0.5})))[0] == 1
    with pytest.raises(InvalidRequest, match="param_resolver values must be numbers or symbols"):
        scan(cirq.Circuit(cirq.CircuitOperation(inner, param_resolver={A: (B + C) ** 2})))
    op = bombs.circuit_operation({"cirq_type": "VAL", "key": 0, "val": json.loads(cirq.to_json(inner))}, 1)
    op["param_resolver"]["param_dict"] = [[bombs.symbol("a"), {"cirq_type": []}]]  # a list: unhashable
    with pytest.raises(InvalidRequest, match="param_resolver values must be numbers or symbols"):
        scan(json.dumps(bombs.circuit_json([op])))


def test_expanded_angles_are_counted_for_the_cost_of_compiling() -> None:
    circuit = cirq.Circuit(cirq.ry((A + B + C + 1) ** 16).on(Q[0]), cirq.rz(2 * A).on(Q[1]))
    text = cirq.to_json(circuit)
    assert isinstance(text, str)
    assert scan_circuit_json(text, **LIMITS).expression_terms == 969 + 1  # C(16 + 3, 3), then 2*a
    repeated = cirq.Circuit(cirq.CircuitOperation(circuit.freeze(), repetitions=5))
    text = cirq.to_json(repeated)
    assert isinstance(text, str)
    assert scan_circuit_json(text, **LIMITS).expression_terms == 5 * 970


def test_a_circuit_too_costly_to_compile_is_refused_before_cirq_sees_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qpumesh.node.core import NodeConfig, NodeCore

    # 60 angles of 969 terms each: each within the expansion bound, ~20 s of sympy together.
    wire = WireCircuit.from_cirq(cirq.Circuit(cirq.ry((A + B + C + 1) ** 16).on(Q[k % 4]) for k in range(60)))

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("cirq.read_json was called: the bound was checked after the work")

    monkeypatch.setattr(cirq, "read_json", never)
    with pytest.raises(LimitExceeded, match="58140 terms in its expanded angles"):
        NodeCore(NodeConfig()).load_circuit(wire.hash, wire.cirq_json)
