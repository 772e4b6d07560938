"""Hypothesis strategies for hostile requests: valid requests, mutated where an attacker would.

Used by ``test_hostile_node.py`` and ``test_hostile_coordinator.py`` (pytest puts this
directory on ``sys.path``). A node request starts from a valid random circuit (a few qubits,
rotations with symbols and affine or polynomial angles, fixed gates, sometimes a
sub-circuit) and valid observables and parameters, then one part is mutated: the circuit
JSON (a value anywhere replaced by a huge, negative, non-finite, unicode, empty or nested
value, a key dropped, an expression or repetition bomb planted), the observables, the
parameter tensor and symbols, the scalar fields, the hash, or the serialized bytes
(truncated, flipped). Every request is something a client could send.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import cirq
import numpy as np
import sympy
from hypothesis import strategies as st

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire import testing as bombs
from qpumesh.wire.circuits import circuit_hash

SYMBOLS = sympy.symbols("a b c")

SUMMARY: list[str] = []
"""One line per suite run (requests sent, statuses), printed in pytest's terminal summary."""

#: Values planted anywhere in circuit JSON.
HOSTILE_VALUES: list[Any] = [
    10**30,
    -(2**63),
    2**64,
    -1,
    0,
    1e308,
    -1e308,
    5e-324,
    float("nan"),
    float("inf"),
    "",
    "x" * 5000,
    "\u202e\u0000ünïcødé\U0001f4a3",
    None,
    True,
    [],
    {},
    [[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]],
    {"cirq_type": "NoSuchType"},
    {"cirq_type": "sympy.Pow", "args": [bombs.integer(3), bombs.integer(30_000_000)]},
    {"cirq_type": "sympy.Symbol", "name": "s" * 3000},
    {"cirq_type": "LineQubit", "x": 10**12},
    {"cirq_type": "REF", "key": 99},
    bombs.circuit_operation(
        bombs.circuit_json([bombs.gate_op(bombs.x_pow(1.0), 0)], kind="FrozenCircuit"), 10**9
    ),
]

#: (width, gate on the first `width` of the given qubits, angle expression).
GATES: list[tuple[int, Callable[[sympy.Expr, list[cirq.Qid]], cirq.Operation]]] = [
    (1, lambda e, q: cirq.ry(e).on(q[0])),
    (1, lambda e, q: cirq.rz(e).on(q[0])),
    (1, lambda e, q: cirq.rx(e).on(q[0])),
    (1, lambda e, q: cirq.XPowGate(exponent=e).on(q[0])),
    (1, lambda e, q: cirq.PhasedXPowGate(phase_exponent=0.25, exponent=e).on(q[0])),
    (2, lambda e, q: cirq.ZZPowGate(exponent=e).on(q[0], q[1])),
    (2, lambda e, q: cirq.CZPowGate(exponent=e).on(q[0], q[1])),
    (1, lambda e, q: cirq.H(q[0])),
    (2, lambda e, q: cirq.CNOT(q[0], q[1])),
    (2, lambda e, q: cirq.ISWAP(q[0], q[1])),
    (3, lambda e, q: cirq.CCX(q[0], q[1], q[2])),
    (2, lambda e, q: cirq.MatrixGate(cirq.unitary(cirq.SWAP)).on(q[0], q[1])),
    (1, lambda e, q: cirq.T(q[0])),
]

ANGLES = [
    lambda a, b, c: a,
    lambda a, b, c: 2 * a + 1,
    lambda a, b, c: sympy.pi * b / 2,
    lambda a, b, c: a**2,
    lambda a, b, c: a * b,
    lambda a, b, c: (a + c) ** 3,
    lambda a, b, c: -c + 0.25,
]


def random_circuit(rng: random.Random) -> cirq.Circuit:
    """A valid random circuit on 1-4 qubits, sometimes with a repeated sub-circuit."""
    n = rng.randint(1, 4)
    qubits = cirq.LineQubit.range(n)
    ops = []
    for _ in range(rng.randint(1, 8)):
        width, gate = rng.choice(GATES)
        angle = rng.choice(ANGLES)(*SYMBOLS)
        if width <= n:
            ops.append(gate(angle, rng.sample(qubits, width)))
    if not ops:
        ops = [cirq.ry(SYMBOLS[0]).on(qubits[0])]
    circuit = cirq.Circuit(ops)
    if rng.random() < 0.15:
        repeated = cirq.CircuitOperation(circuit.freeze(), repetitions=rng.choice([-3, -1, 2, 3]))
        circuit = cirq.Circuit(repeated, ops[-1])
    return circuit


def _serialised(circuit: cirq.Circuit) -> tuple[str, int, list[str]]:
    text = cirq.to_json(circuit)
    assert isinstance(text, str)
    return text, len(circuit.all_qubits()), sorted(s.name for s in cirq.parameter_symbols(circuit))


#: Valid circuits (JSON, qubits, symbols) the requests start from: made once, since Cirq's
#: serialisation takes milliseconds and most requests then hit the node's circuit cache.
CIRCUITS = [_serialised(random_circuit(random.Random(seed))) for seed in range(80)]


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*path, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            out += _paths(value, (*path, index))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, text: str) -> str:
    """`text` with one hostile change somewhere in its JSON."""
    data = json.loads(text)
    paths = _paths(data)
    path = draw(st.sampled_from(paths[1:] or paths))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "delete", "duplicate", "text"]))
    if how == "text":
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.sampled_from(["", "}", "]]", ",", "NaN", "\u2028x", "{" * 50]))
    if not path:
        return json.dumps(draw(st.sampled_from(HOSTILE_VALUES)))
    key = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[key]
    elif how == "duplicate" and isinstance(parent, list):
        parent.extend([parent[key]] * draw(st.integers(1, 50)))
    else:
        parent[key] = draw(st.sampled_from(HOSTILE_VALUES))
    return json.dumps(data)


@st.composite
def pauli_strings(draw: st.DrawFn, n: int) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=n + 3))
    return "".join(draw(st.lists(st.sampled_from("IXYZ"), min_size=n, max_size=n)))


def _float_values() -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(-4, 4), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308])
    )


@st.composite
def node_requests(draw: st.DrawFn) -> tuple[str, pb.EvaluateRequest | pb.ShiftGradientRequest | bytes]:
    """A request for Evaluate or ShiftGradient, valid or mutated in one part."""
    text, n, symbols = draw(st.sampled_from(CIRCUITS))
    part = draw(st.sampled_from(["valid", "json", "observables", "params", "fields", "hash", "raw", "bomb"]))
    method = draw(st.sampled_from(["Evaluate", "ShiftGradient"]))
    if part == "bomb":
        bomb = draw(
            st.sampled_from([b for b in bombs.BOMBS if not b.node and b.name != "20 qubits x 3000 rows"])
        )
        return bomb.build()
    if part == "json":
        text = draw(mutated_json(text))
    observables = [
        pb.Observable(terms=[pb.PauliTerm(coefficient=draw(st.floats(-2, 2)), paulis=draw(pauli_strings(n)))])
        for _ in range(draw(st.integers(1, 3)))
    ]
    if part == "observables":
        observables = [
            pb.Observable(
                terms=[
                    pb.PauliTerm(coefficient=draw(_float_values()), paulis=draw(pauli_strings(n)))
                    for _ in range(draw(st.integers(0, 4)))
                ]
            )
            for _ in range(draw(st.integers(0, 4)))
        ]
    rows = draw(st.integers(0, 5))
    values = draw(st.lists(st.floats(-3, 3), min_size=rows * len(symbols), max_size=rows * len(symbols)))
    tensor = pb.Tensor(shape=[rows, len(symbols)], data=np.asarray(values, dtype="<f8").tobytes())
    names = list(symbols)
    if part == "params":
        names = draw(
            st.one_of(
                st.permutations(symbols),
                st.lists(st.sampled_from([*symbols, "zz", "", "é" * 300]), max_size=5),
            )
        )
        shape = draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), max_size=4))
        count = math.prod(shape) if shape and max(shape) < 64 else draw(st.integers(0, 40))
        data = np.asarray(
            draw(st.lists(_float_values(), min_size=min(count, 200), max_size=min(count, 200))), dtype="<f8"
        )
        tensor = pb.Tensor(shape=shape, data=data.tobytes()[: draw(st.integers(0, 8 * max(count, 1)))])
    digest = circuit_hash(text)
    if part == "hash":
        digest = draw(st.sampled_from(["", digest.upper(), "0" * 64, digest[:-1], "é" * 64, digest + "0"]))
        if draw(st.booleans()):
            text = ""  # hash only: unknown circuit (NOT_FOUND) unless sent before
    fields: dict[str, Any] = {
        "circuit": pb.Circuit(hash=digest, cirq_json=text),
        "observables": observables,
        "params": pb.ParameterBatch(symbols=names, values=tensor),
    }
    if part == "fields":
        if draw(st.booleans()):
            fields["shots"] = draw(st.integers(0, 2**32 - 1))
        if draw(st.booleans()):
            fields["seed"] = draw(st.integers(0, 2**64 - 1))
    if method == "Evaluate":
        request: Any = pb.EvaluateRequest(**fields)
    else:
        request = pb.ShiftGradientRequest(**fields)
        if part == "fields":
            request.method = draw(st.integers(0, 5))
            request.include_values = draw(st.booleans())
            request.wrt.extend(draw(st.lists(st.sampled_from([*symbols, "q", "a"]), max_size=4)))
            if draw(st.booleans()):
                cot = draw(
                    st.lists(
                        _float_values(), min_size=rows * len(observables), max_size=rows * len(observables)
                    )
                )
                request.cotangents.CopyFrom(
                    pb.Tensor(
                        shape=[rows, draw(st.integers(0, 4))], data=np.asarray(cot, dtype="<f8").tobytes()
                    )
                )
    if part == "raw":
        raw = request.SerializeToString()
        how = draw(st.sampled_from(["truncate", "flip", "random"]))
        if how == "truncate":
            return method, raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
        if how == "flip" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            return method, raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
        return method, draw(st.binary(max_size=200))
    return method, request


# --------------------------------------------------------------------------- coordinator

from qpumesh.v1 import coordinator_pb2 as cpb  # noqa: E402 (the coordinator's half of this module)

#: Texts planted in string fields: empty, long, control and bidirectional characters, emoji.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "x" * 10_000, "\u202e\u0000ünïcødé\U0001f4a3", "../../etc/passwd", "pendulum"]),
)

KNOWN_JOB = "@known-job:"
"""Prefix of a placeholder job id, replaced by a real one before sending."""

SPEC_INTEGERS = [
    "narma_order",
    "qubits",
    "partitions",
    "layers",
    "epochs",
    "batch_size",
    "window",
    "shots",
    "series_length",
]


@st.composite
def job_specs(draw: st.DrawFn, csv_files: list[str]) -> cpb.JobSpec:
    """A job spec: valid defaults with a few fields set to hostile or ordinary values."""
    spec = cpb.JobSpec(epochs=1)
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    *SPEC_INTEGERS,
                    "lr",
                    "train_fraction",
                    "seed",
                    "task",
                    "model",
                    "ansatz",
                    "optimizer",
                    "name",
                    "csv_path",
                    "csv_column",
                    "extra",
                ]
            ),
            max_size=4,
            unique=True,
        )
    ):
        if name in SPEC_INTEGERS:
            setattr(
                spec,
                name,
                draw(st.one_of(st.integers(0, 12), st.sampled_from([2**32 - 1, 2**31, 10**7 + 1]))),
            )
        elif name in ("lr", "train_fraction"):
            setattr(spec, name, draw(_float_values()))
        elif name == "seed":
            spec.seed = draw(st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1]))
        elif name == "task":
            spec.task = draw(st.sampled_from(["pendulum", "narma", "csv", "nope"]) | HOSTILE_TEXT)
        elif name == "csv_path":
            spec.task = "csv"
            spec.csv_path = draw(st.sampled_from(csv_files) | HOSTILE_TEXT)
        elif name == "extra":
            spec.extra.update(draw(st.dictionaries(st.text(max_size=10), HOSTILE_TEXT, max_size=3)))
        else:
            setattr(spec, name, draw(HOSTILE_TEXT))
    return spec


@st.composite
def coordinator_requests(draw: st.DrawFn, csv_files: list[str]) -> tuple[str, Any]:
    """A Coordinator request: (method, message or raw bytes).

    Job ids are hostile texts or ``KNOWN_JOB`` + k: the sender puts the id of one of the jobs
    it has submitted there (a strategy must not depend on what earlier examples did).
    """
    job_id = draw(HOSTILE_TEXT | st.integers(0, 49).map(lambda k: f"{KNOWN_JOB}{k}"))
    method = draw(
        st.sampled_from(
            [
                "SubmitJob",
                "SubmitJob",
                "WatchJob",
                "GetJob",
                "ListJobs",
                "CancelJob",
                "Predict",
                "GetResults",
                "ListNodes",
            ]
        )
    )
    message: Any
    if method == "SubmitJob":
        message = cpb.SubmitJobRequest(spec=draw(job_specs(csv_files)))
    elif method == "WatchJob":
        message = cpb.WatchJobRequest(job_id=job_id, after_seq=draw(st.integers(0, 2**64 - 1)))
    elif method == "ListJobs":
        message = cpb.ListJobsRequest(page_size=draw(st.integers(1, 3) | st.sampled_from([0, 2**32 - 1])))
        message.page_token = draw(st.just("") | HOSTILE_TEXT)
        message.state = draw(st.integers(0, 9))  # unknown enum values travel as numbers
    elif method == "Predict":
        series = draw(st.lists(_float_values(), max_size=30) | st.just([0.5] * 50_000))
        message = cpb.PredictRequest(job_id=job_id, series=series)
    elif method == "ListNodes":
        message = cpb.ListNodesRequest()
    else:
        message = getattr(cpb, f"{method}Request")(job_id=job_id)
    if draw(st.integers(0, 7)) == 0:
        raw = message.SerializeToString()
        if draw(st.booleans()) and raw:
            return method, raw[: draw(st.integers(0, len(raw) - 1))] + draw(st.binary(max_size=8))
        return method, draw(st.binary(max_size=100))
    return method, message
