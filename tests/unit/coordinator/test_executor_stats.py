"""Circuit-execution accounting: the executors count what the node says hardware would run."""

from __future__ import annotations

import cirq
import numpy as np
import sympy

from qpumesh.coordinator.executor import CircuitTask, evaluation_cost
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.wire.circuits import WireCircuit, pauli_terms


def _shared_symbol_task(*, jacobian: bool, shots: int = 0, rows: int = 3) -> CircuitTask:
    """Angle ``a`` drives two gates: 3 gate angles, 2 symbols."""
    q0, q1 = cirq.LineQubit.range(2)
    a, b = sympy.Symbol("a"), sympy.Symbol("b")
    circuit = cirq.Circuit(cirq.rx(a).on(q0), cirq.rx(a).on(q1), cirq.CNOT(q0, q1), cirq.ry(b).on(q1))
    wire = WireCircuit.from_cirq(circuit)
    observables = [pauli_terms(cirq.Z(q0), wire.qubits), pauli_terms(cirq.Z(q0) * cirq.Z(q1), wire.qubits)]
    values = np.random.default_rng(0).normal(size=(rows, 2))
    return CircuitTask(wire, observables, ("a", "b"), values, jacobian=jacobian, shots=shots, seed=1, key="t")


def test_a_jacobian_costs_two_executions_per_gate_angle_not_per_symbol() -> None:
    executor = InProcessExecutor()
    (result,) = executor.run_round([_shared_symbol_task(jacobian=True)])
    # 3 rows x (2 x 3 gate angles + 1 unshifted): the node's shift-rule count.
    assert result.executions == 3 * (2 * 3 + 1) and result.shots == 0
    assert executor.stats.snapshot()["circuit_evaluations"] == 21


def test_shots_are_counted_per_measured_term() -> None:
    executor = InProcessExecutor()
    evaluate, gradient = executor.run_round(
        [_shared_symbol_task(jacobian=False, shots=100), _shared_symbol_task(jacobian=True, shots=100)]
    )
    # Two distinct non-identity terms (Z0 and Z0 Z1), 100 shots each, per execution.
    assert (evaluate.executions, evaluate.shots) == (3, 3 * 100 * 2)
    assert (gradient.executions, gradient.shots) == (21, 21 * 100 * 2)
    stats = executor.stats.snapshot()
    assert stats["circuit_evaluations"] == 24 and stats["shots"] == 24 * 200
    assert stats["rounds"] == 1 and stats["tasks"] == 2


def test_evaluation_cost_ignores_identity_terms() -> None:
    task = _shared_symbol_task(jacobian=False, shots=10, rows=4)
    identity = [(1.0, "II")]
    assert evaluation_cost(CircuitTask(task.circuit, [identity], task.symbols, task.values, shots=10)) == (
        4,
        0,
    )
    assert evaluation_cost(task) == (4, 4 * 10 * 2)


def test_an_evaluation_under_zero_noise_extrapolation_counts_the_folded_circuits() -> None:
    from qpumesh.node.core import NodeConfig
    from qpumesh.node.mitigation import ZneConfig
    from qpumesh.node.noise import NoiseConfig

    config = NodeConfig(
        node_id="zne", noise=NoiseConfig(depolarizing_1q=0.01), zne=ZneConfig((1.0, 3.0), "global", "linear")
    )
    executor = InProcessExecutor(config)
    task = _shared_symbol_task(jacobian=False, shots=100)
    (result,) = executor.run_round([task])
    # Two scale factors: every row runs on the circuit and on its 3x folding.
    plain = evaluation_cost(task)
    assert (result.executions, result.shots) == (2 * plain[0], 2 * plain[1])
    assert executor.stats.snapshot()["circuit_evaluations"] == 2 * 3
