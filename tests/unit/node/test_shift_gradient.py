"""ShiftGradient returns true derivatives: finite differences, torch autograd, VJPs."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy
import torch
from node_engine_helpers import (
    SHARED_OBSERVABLES,
    SHARED_SYMBOLS,
    as_request,
    cirq_reference,
    shared_symbol_circuit,
    vqc,
)

from qpumesh.node.backends import BatchedBackend
from qpumesh.node.core import InvalidRequest, NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig

A, B, C = sympy.symbols(SHARED_SYMBOLS)
SYMBOLS = SHARED_SYMBOLS
OBSERVABLES = SHARED_OBSERVABLES


def finite_differences(
    circuit: cirq.Circuit, observables: list[list[tuple[float, str]]], values: np.ndarray, h: float
) -> np.ndarray:
    """Fourth-order central differences of the Cirq reference, (rows, n_obs, n_symbols)."""
    out = np.zeros((values.shape[0], len(observables), values.shape[1]))
    for k in range(values.shape[1]):
        e = np.zeros(values.shape[1])
        e[k] = h
        f = [cirq_reference(circuit, observables, SYMBOLS, values + m * e) for m in (2, 1, -1, -2)]
        out[:, :, k] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
    return out


@pytest.mark.parametrize("backend", ["batched", "cirq", "qsim"])
def test_shift_gradient_equals_finite_differences(backend: str) -> None:
    circuit = shared_symbol_circuit()
    values = np.random.default_rng(7).uniform(-2, 2, size=(3, 3))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig(backend=backend))
    result = core.shift_gradient(circuit_hash, text, OBSERVABLES, SYMBOLS, values, include_values=True)
    assert result.backend == backend
    assert result.wrt == ("a", "b", "c")
    assert result.jacobian.shape == (3, 3, 3)
    np.testing.assert_allclose(
        result.jacobian, finite_differences(circuit, OBSERVABLES, values, 1e-3), atol=1e-4
    )
    assert result.expectations is not None
    np.testing.assert_allclose(
        result.expectations, cirq_reference(circuit, OBSERVABLES, SYMBOLS, values), atol=1e-5
    )


def test_shift_gradient_equals_torch_autograd_in_float64() -> None:
    circuit, symbols = vqc(4, 2, rz=True)
    circuit += cirq.CZ(*cirq.LineQubit.range(2)) ** sympy.Symbol("w1")  # a symbol shared with a 2-qubit gate
    observables = [[(1.0, "ZIII")], [(1.0, "IZII"), (0.5, "XXII")], [(0.7, "IIYZ")]]
    values = np.random.default_rng(11).normal(size=(4, len(symbols)))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    result = core.shift_gradient(circuit_hash, text, observables, symbols, values)
    assert result.backend == "batched"

    compiled = core.load_circuit(circuit_hash, None)
    column = {s: j for j, s in enumerate(symbols)}
    index = torch.tensor([column[slot.symbol] for slot in compiled.slots])
    coeff = torch.tensor([slot.coeff for slot in compiled.slots], dtype=torch.float64)
    offset = torch.tensor([slot.offset for slot in compiled.slots], dtype=torch.float64)
    terms = ["ZIII", "IZII", "XXII", "IIYZ"]
    weights = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0.5, 0], [0, 0, 0.7]], dtype=torch.float64)
    engine = BatchedBackend()

    def f(row: torch.Tensor) -> torch.Tensor:
        angles = (coeff * row[index] + offset).unsqueeze(0)
        return (engine.expectations_torch(compiled, terms, angles) @ weights)[0]

    for r in range(values.shape[0]):
        jac = torch.autograd.functional.jacobian(f, torch.from_numpy(values[r]))
        np.testing.assert_allclose(result.jacobian[r], jac.numpy(), atol=1e-8, rtol=0)


def test_vjp_equals_cotangent_contracted_jacobian_and_wrt_selects_columns() -> None:
    circuit = shared_symbol_circuit()
    values = np.random.default_rng(5).uniform(-2, 2, size=(4, 3))
    cotangents = np.random.default_rng(6).normal(size=(4, 3))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    full = core.shift_gradient(circuit_hash, text, OBSERVABLES, SYMBOLS, values).jacobian
    vjp = core.shift_gradient(
        circuit_hash, None, OBSERVABLES, SYMBOLS, values, wrt=["c", "a"], cotangents=cotangents
    )
    assert vjp.wrt == ("c", "a")
    assert vjp.jacobian.shape == (4, 2)
    np.testing.assert_allclose(
        vjp.jacobian, np.einsum("ro,rok->rk", cotangents, full[:, :, [2, 0]]), atol=1e-12
    )
    assert vjp.expectations is None


def test_symbol_order_of_the_batch_is_respected() -> None:
    circuit = shared_symbol_circuit()
    values = np.random.default_rng(8).uniform(-2, 2, size=(2, 3))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    direct = core.shift_gradient(circuit_hash, text, OBSERVABLES, SYMBOLS, values).jacobian
    permuted = core.shift_gradient(circuit_hash, None, OBSERVABLES, ["c", "a", "b"], values[:, [2, 0, 1]])
    assert permuted.wrt == ("c", "a", "b")
    np.testing.assert_allclose(permuted.jacobian, direct[:, :, [2, 0, 1]], atol=1e-12)


def test_non_affine_symbol_is_refused_for_gradients_but_evaluates() -> None:
    q = cirq.LineQubit.range(2)
    d = sympy.Symbol("d")
    circuit = cirq.Circuit(
        cirq.rx(A).on(q[0]), cirq.ry(B**2).on(q[1]), cirq.rz(A * C).on(q[0]), cirq.ry(3 * d).on(q[0])
    )
    symbols = ["a", "b", "c", "d"]
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    values = np.array([[0.3, 0.4, 0.5, 0.6]])
    observables = [[(1.0, "ZZ")], [(1.0, "YI")]]
    evaluated = core.evaluate(circuit_hash, text, observables, symbols, values)
    np.testing.assert_allclose(
        evaluated.expectations, cirq_reference(circuit, observables, symbols, values), atol=1e-12
    )
    with pytest.raises(InvalidRequest, match=r"symbol 'b'.*b\*\*2.*non-affinely"):
        core.shift_gradient(circuit_hash, None, observables, symbols, values, wrt=["b"])
    with pytest.raises(InvalidRequest, match="symbol 'a'"):
        core.shift_gradient(circuit_hash, None, observables, symbols, values)
    # The affine symbol is still differentiable, and the node keeps answering.
    ok = core.shift_gradient(circuit_hash, None, observables, symbols, values, wrt=["d"])
    h = 1e-6
    step = np.array([[0, 0, 0, h]])
    fd = (
        cirq_reference(circuit, observables, symbols, values + step)
        - cirq_reference(circuit, observables, symbols, values - step)
    ) / (2 * h)
    np.testing.assert_allclose(ok.jacobian[:, :, 0], fd, atol=1e-7)


def test_noisy_density_matrix_gradient_equals_finite_differences() -> None:
    """The shift rule also holds with depolarizing noise after each gate (exact engine)."""
    circuit = shared_symbol_circuit()
    values = np.random.default_rng(9).uniform(-2, 2, size=(2, 3))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig(noise=NoiseConfig(depolarizing_1q=0.02, depolarizing_2q=0.05)))
    result = core.shift_gradient(circuit_hash, text, OBSERVABLES, SYMBOLS, values)
    assert result.backend == "batched-density"
    h = 1e-4
    fd = np.zeros_like(result.jacobian)
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        plus = core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values + e).expectations
        minus = core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values - e).expectations
        fd[:, :, k] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(result.jacobian, fd, atol=1e-6)
