"""A job's own ansatz: the symbol convention, its checks, and training with it."""

from __future__ import annotations

import json
from typing import Any

import cirq
import pytest
import sympy

from qpumesh.coordinator.custom_ansatz import export_circuits, parse_circuits
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.job_spec import JobSpec, SpecError


def _spec(**overrides: Any) -> JobSpec:
    values: dict[str, Any] = {
        "series_length": 30,
        "layers": 2,
        "model": "distributed",
        "partitions": 2,
        "epochs": 2,
    }
    values.update(overrides)
    return JobSpec(**values)


def _losses(spec: JobSpec) -> list[tuple[float, float, float]]:
    trainer = Trainer(spec, InProcessExecutor())
    return [
        (m.train_loss, m.test_loss, m.test_r2) for m in (trainer.train_epoch() for _ in range(spec.epochs))
    ]


@pytest.mark.parametrize("name", ["chen2020", "v0"])
def test_an_exported_built_in_ansatz_trains_exactly_like_the_built_in(name: str) -> None:
    # qubits 4 over 2 partitions: two 2-qubit sub-circuits (and the centric model's 4 below).
    exported = export_circuits(name, [2, 4], layers=2)
    built_in = _losses(_spec(ansatz=name))
    custom = _losses(_spec(ansatz="custom", ansatz_circuit=exported))
    assert custom == built_in  # bit for bit: same gates, same weight order, same encoding arithmetic
    centric = _spec(ansatz=name, model="centric")
    assert _losses(
        JobSpec(**{**centric.to_dict(), "ansatz": "custom", "ansatz_circuit": exported})
    ) == _losses(centric)


def _one(circuit: cirq.Circuit) -> str:
    return cirq.to_json(circuit)


Q = cirq.LineQubit.range(2)
X0, W0, W1 = sympy.symbols("x_0 w_0 w_1")


@pytest.mark.parametrize(
    ("circuit", "message"),
    [
        (cirq.Circuit(cirq.ry(sympy.Symbol("theta")).on(Q[0]), cirq.CNOT(*Q)), "unknown symbol 'theta'"),
        (cirq.Circuit(cirq.ry(X0).on(Q[0]), cirq.ry(W1).on(Q[1])), r"missing \[0\]"),
        (cirq.Circuit(cirq.ry(X0 * W0).on(Q[0]), cirq.X(Q[1])), "not affine in one symbol"),
        (cirq.Circuit(cirq.ry(W0**2).on(Q[0]), cirq.X(Q[1])), "not affine in one symbol"),
        (
            cirq.Circuit(cirq.ry(sympy.Symbol("x_5")).on(Q[0]), cirq.X(Q[1])),
            "names qubit 5 of a 2-qubit circuit",
        ),
        (cirq.Circuit(cirq.ry(X0).on(Q[0]), cirq.measure(Q[1])), "has measurements"),
        (cirq.Circuit(cirq.X.on_each(*cirq.LineQubit.range(31))), "acts on 31 qubits; use 1 to 30"),
        (cirq.Circuit(cirq.ry(X0).on(cirq.GridQubit(0, 0))), "must act on cirq.LineQubit"),
    ],
)
def test_bad_circuits_are_refused_naming_the_problem(circuit: cirq.Circuit, message: str) -> None:
    with pytest.raises(SpecError, match=message) as raised:
        parse_circuits(_one(circuit))
    assert raised.value.field == "ansatz_circuit"


def test_the_spec_ties_the_circuit_to_ansatz_custom() -> None:
    good = _one(cirq.Circuit(cirq.ry(X0).on(Q[0]), cirq.ry(W0).on(Q[1]), cirq.CNOT(*Q)))
    with pytest.raises(SpecError, match="ansatz_circuit: ansatz 'custom' needs its circuit"):
        JobSpec(ansatz="custom")
    with pytest.raises(SpecError, match="ansatz: a job with ansatz_circuit uses ansatz 'custom'"):
        JobSpec(ansatz_circuit=good)
    with pytest.raises(SpecError, match="not JSON"):
        parse_circuits("{")
    circuits = parse_circuits(json.dumps({"circuits": [json.loads(good)]}))
    assert list(circuits) == [2]
    # A width the model needs and the circuits lack is named when the model is built.
    with pytest.raises(SpecError, match=r"a 3-qubit sub-circuit, but the circuits given act on \[2\] qubits"):
        Trainer(_spec(ansatz="custom", ansatz_circuit=good, qubits=6), InProcessExecutor())
