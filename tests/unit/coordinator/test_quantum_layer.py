"""The quantum layer: exact gradients, and one executor round per time step."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import torch
from coordinator_doubles import NumpyExecutor, simulate  # type: ignore[import-not-found]

from qpumesh.coordinator.ansatz import build_ansatz
from qpumesh.coordinator.executor import CircuitTask
from qpumesh.coordinator.model import QLSTM
from qpumesh.coordinator.planner import plan_partitions
from qpumesh.coordinator.quantum_layer import quantum_gates

ANSATZES = ["v0", "chen2020"]


@pytest.mark.parametrize("name", ANSATZES)
def test_double_matches_cirq_simulator(name: str) -> None:
    ansatz = build_ansatz(name, 3, 2, 2)
    values = np.random.default_rng(1).normal(size=(2, len(ansatz.symbols)))
    mine = simulate(ansatz.circuit.cirq_json, ansatz.observables, ansatz.symbols, values)
    circuit = cirq.read_json(json_text=ansatz.circuit.cirq_json)
    qubits = sorted(circuit.all_qubits())
    for row, expected in zip(values, mine, strict=True):
        resolver = cirq.ParamResolver(dict(zip(ansatz.symbols, row, strict=True)))
        state = cirq.final_state_vector(
            cirq.resolve_parameters(circuit, resolver), qubit_order=qubits, dtype=np.complex128
        )
        order = {q: i for i, q in enumerate(qubits)}
        reference = [cirq.Z(qubits[i]).expectation_from_state_vector(state, order).real for i in range(2)]
        np.testing.assert_allclose(expected, reference, atol=1e-10)


@pytest.mark.parametrize("name", ANSATZES)
@pytest.mark.parametrize("partitions", [1, 2])
def test_gradients_match_finite_differences(name: str, partitions: int) -> None:
    torch.manual_seed(0)
    plan = plan_partitions(1, 3, partitions)
    executor = NumpyExecutor()
    model = QLSTM(1, plan, name, 2, executor)
    for p in model.cell.weights:
        p.data.normal_(0, 1.0)  # away from the near-identity start, so every term matters
    x = torch.randn(3, 2, 1, dtype=torch.float64, requires_grad=True)
    params = [x, *model.parameters()]

    def loss() -> torch.Tensor:
        out: torch.Tensor = model(x)
        return (out**2).sum() + out.sum()

    grads = torch.autograd.grad(loss(), params)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for param, grad in zip(params, grads, strict=True):
        flat = param.data.view(-1)
        for j in rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False):
            old = float(flat[j])
            with torch.no_grad():
                flat[j] = old + eps
                up = float(loss())
                flat[j] = old - eps
                down = float(loss())
                flat[j] = old
            assert float(grad.view(-1)[j]) == pytest.approx((up - down) / (2 * eps), abs=1e-7, rel=1e-6)


@pytest.mark.parametrize("partitions", [1, 3])
def test_one_round_per_time_step_and_none_in_backward(partitions: int) -> None:
    torch.manual_seed(0)
    executor = NumpyExecutor()
    model = QLSTM(1, plan_partitions(1, 3, partitions), "v0", 1, executor)
    x = torch.randn(5, 4, 1, dtype=torch.float64)
    out = model(x)
    assert executor.stats.rounds == 4
    # One request per part, carrying the 4 gates' rows (5 windows each).
    assert all(len(r) == partitions for r in executor.rounds)
    assert [t.key for t in executor.rounds[0]] == [f"part/{m}" for m in range(partitions)]
    assert all(t.jacobian and t.values.shape[0] == 4 * 5 for r in executor.rounds for t in r)
    out.sum().backward()
    assert executor.stats.rounds == 4
    assert all(p.grad is not None for p in model.parameters())


def test_no_jacobians_without_grad() -> None:
    executor = NumpyExecutor()
    model = QLSTM(1, plan_partitions(1, 3, 2), "v0", 1, executor)
    with torch.no_grad():
        model(torch.zeros(2, 3, 1, dtype=torch.float64))
    assert executor.stats.rounds == 3
    assert not any(t.jacobian for r in executor.rounds for t in r)


def test_task_rows_are_the_inputs_once_per_gate_with_that_gates_weights() -> None:
    executor = NumpyExecutor()
    ansatz = build_ansatz("v0", 2, 1, 1)
    inputs = torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=torch.float64)
    gate_f = torch.tensor([0.5, 0.6], dtype=torch.float64)
    gate_i = torch.tensor([0.7, 0.8], dtype=torch.float64)
    out = quantum_gates(executor, ["part/0"], [ansatz], [inputs], [[gate_f, gate_i]])
    (task,) = executor.rounds[0]
    np.testing.assert_array_equal(
        task.values,
        [[0.1, 0.2, 0.5, 0.6], [0.3, 0.4, 0.5, 0.6], [0.1, 0.2, 0.7, 0.8], [0.3, 0.4, 0.7, 0.8]],
    )
    assert task.symbols == ("x0", "x1", "w0_0", "w0_1") and not task.jacobian
    assert out.shape == (2, 2) and out.dtype == torch.float64


def test_stacked_gates_give_what_one_request_per_gate_gives() -> None:
    """Outputs are gate-major, then part; values and gradients equal per-gate requests'."""
    torch.manual_seed(3)
    parts = [build_ansatz("chen2020", 2, 2, 1), build_ansatz("chen2020", 3, 2, 2)]
    inputs = [torch.randn(4, 2 * a.qubits, dtype=torch.float64, requires_grad=True) for a in parts]
    weights = [
        [torch.randn(a.num_weights, dtype=torch.float64, requires_grad=True) for _ in "figo"] for a in parts
    ]
    stacked = quantum_gates(NumpyExecutor(), ["part/0", "part/1"], parts, inputs, weights)
    single = torch.cat(
        [
            quantum_gates(NumpyExecutor(), [f"{gate}/{m}"], [a], [inputs[m]], [[weights[m][g]]])
            for g, gate in enumerate("figo")
            for m, a in enumerate(parts)
        ],
        dim=1,
    )
    torch.testing.assert_close(stacked, single, rtol=0, atol=1e-12)
    upstream = torch.randn_like(stacked)
    leaves = [*inputs, *(w for part in weights for w in part)]
    got = torch.autograd.grad((stacked * upstream).sum(), leaves)
    expected = torch.autograd.grad((single * upstream).sum(), leaves)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_weights_must_be_given_per_gate() -> None:
    ansatz = build_ansatz("v0", 2, 1, 1)
    inputs = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="per part, a sequence of gate weight tensors"):
        quantum_gates(NumpyExecutor(), ["part/0"], [ansatz], [inputs], [torch.zeros(2, dtype=torch.float64)])


def test_no_grad_output_is_detached() -> None:
    executor = NumpyExecutor()
    ansatz = build_ansatz("v0", 2, 1, 1)
    weights = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        out = quantum_gates(
            executor, ["part/0"], [ansatz], [torch.zeros(1, 2, dtype=torch.float64)], [[weights]]
        )
    assert not out.requires_grad


# ------------------------------------------------------------------ gradient mode "vjp"


def _model_gradients(
    mode: str, name: str, partitions: int
) -> tuple[NumpyExecutor, torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    executor = NumpyExecutor()
    model = QLSTM(1, plan_partitions(1, 3, partitions), name, 2, executor, gradient_mode=mode)
    for p in model.cell.weights:
        p.data.normal_(0, 1.0)  # away from the near-identity start, so every term matters
    x = torch.randn(3, 2, 1, dtype=torch.float64, requires_grad=True)
    out: torch.Tensor = model(x)
    loss = (out**2).sum() + out.sum()
    return executor, loss.detach(), list(torch.autograd.grad(loss, [x, *model.parameters()]))


@pytest.mark.parametrize("name", ANSATZES)
@pytest.mark.parametrize("partitions", [1, 2])
def test_vjp_mode_gives_the_jacobian_modes_loss_and_gradients(name: str, partitions: int) -> None:
    _, jacobian_loss, jacobian_grads = _model_gradients("jacobian", name, partitions)
    _, vjp_loss, vjp_grads = _model_gradients("vjp", name, partitions)
    assert vjp_loss == jacobian_loss  # the forward values are the same evaluations
    for got, expected in zip(vjp_grads, jacobian_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
        assert float(expected.abs().max()) > 1e-3  # a real gradient, not zeros on both sides


@pytest.mark.parametrize("partitions", [1, 3])
def test_vjp_mode_evaluates_forward_and_sends_cotangents_in_backward(partitions: int) -> None:
    torch.manual_seed(0)
    executor = NumpyExecutor()
    model = QLSTM(1, plan_partitions(1, 3, partitions), "v0", 1, executor, gradient_mode="vjp")
    x = torch.randn(5, 4, 1, dtype=torch.float64)
    out = model(x)
    assert executor.stats.rounds == 4  # forward: one round per time step, values only
    assert not any(t.jacobian or t.cotangents is not None for r in executor.rounds for t in r)
    forward = executor.rounds[:]
    out.sum().backward()
    assert executor.stats.rounds == 8  # backward: one VJP round per time step, last step first
    backward = executor.rounds[4:]
    for step, vjp_round in enumerate(backward):
        evaluated = forward[3 - step]
        assert [t.key for t in vjp_round] == [t.key for t in evaluated]
        for vjp_task, task in zip(vjp_round, evaluated, strict=True):
            assert vjp_task.cotangents is not None and not vjp_task.jacobian
            assert vjp_task.cotangents.shape == (4 * 5, len(task.observables))
            np.testing.assert_array_equal(vjp_task.values, task.values)
    assert all(p.grad is not None for p in model.parameters())


def test_vjp_mode_counts_the_same_executions_as_jacobian_mode() -> None:
    counts = []
    for mode in ("jacobian", "vjp"):
        executor, _, _ = _model_gradients(mode, "chen2020", 2)
        counts.append(executor.stats.circuit_evaluations)
    assert counts[0] == counts[1] > 0


def test_vjp_mode_without_grad_is_one_evaluation_round() -> None:
    executor = NumpyExecutor()
    model = QLSTM(1, plan_partitions(1, 3, 2), "v0", 1, executor, gradient_mode="vjp")
    with torch.no_grad():
        model(torch.zeros(2, 3, 1, dtype=torch.float64))
    assert executor.stats.rounds == 3


def test_unknown_gradient_mode_is_refused() -> None:
    ansatz = build_ansatz("v0", 2, 1, 1)
    weights = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="gradient_mode must be one of jacobian, vjp; got 'adjoint'"):
        quantum_gates(
            NumpyExecutor(), ["part/0"], [ansatz], [torch.zeros(1, 2, dtype=torch.float64)], [[weights]],
            gradient_mode="adjoint",
        )  # fmt: skip


def test_a_task_asks_for_a_jacobian_or_a_vjp_with_cotangents_of_its_shape() -> None:
    ansatz = build_ansatz("v0", 2, 1, 1)
    parts = (ansatz.circuit, ansatz.observables, ansatz.symbols, np.zeros((3, len(ansatz.symbols))))
    assert CircuitTask(*parts).method == "Evaluate"
    assert CircuitTask(*parts, jacobian=True).method == "ShiftGradient"
    assert CircuitTask(*parts, cotangents=np.ones((3, 1))).method == "ShiftGradient"
    with pytest.raises(ValueError, match="a Jacobian or a VJP"):
        CircuitTask(*parts, jacobian=True, cotangents=np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"cotangents of shape \(3, 2\), expected \(3, 1\)"):
        CircuitTask(*parts, cotangents=np.ones((3, 2)))
