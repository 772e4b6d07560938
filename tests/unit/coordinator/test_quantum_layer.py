"""The quantum layer: exact gradients, and one executor round per time step."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import torch
from coordinator_doubles import NumpyExecutor, simulate  # type: ignore[import-not-found]

from qpumesh.coordinator.ansatz import build_ansatz
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
