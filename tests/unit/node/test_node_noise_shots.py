"""Noise and shots behave like the physics they emulate, reproducibly."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy
from node_engine_helpers import as_request, cirq_reference

from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig, readout_factors, sample_terms, standard_errors

A, B = sympy.symbols("a b")
Q = cirq.LineQubit.range(2)
CIRCUIT = cirq.Circuit(cirq.H(Q[0]), cirq.rx(A).on(Q[0]), cirq.CNOT(*Q), cirq.ry(B).on(Q[1]))
OBSERVABLES = [[(1.0, "ZI")], [(0.5, "ZZ"), (-0.8, "XY")], [(2.0, "II"), (1.0, "IZ")]]
SYMBOLS = ["a", "b"]


def test_noise_config_validates_with_precise_messages() -> None:
    with pytest.raises(ValueError, match=r"depolarizing_1q must be a probability in \[0, 1\), got 1.0"):
        NoiseConfig(depolarizing_1q=1.0)
    with pytest.raises(ValueError, match="readout_error"):
        NoiseConfig(readout_error=-0.1)
    with pytest.raises(
        ValueError, match="method must be one of 'density_matrix', 'trajectories', got 'exact'"
    ):
        NoiseConfig(method="exact")
    with pytest.raises(ValueError, match="trajectories must be a positive integer"):
        NoiseConfig(trajectories=0)
    assert not NoiseConfig().is_noisy
    assert NoiseConfig(readout_error=0.01).is_noisy
    assert not NoiseConfig(readout_error=0.01).has_gate_noise


def test_shot_means_are_unbiased_and_standard_errors_are_honest() -> None:
    rows, shots = 4000, 50
    values = np.tile([[0.7, -1.1]], (rows, 1))
    circuit_hash, text = as_request(CIRCUIT)
    core = NodeCore(NodeConfig())
    exact = core.evaluate(circuit_hash, text, OBSERVABLES, SYMBOLS, values[:1]).expectations[0]
    result = core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values, shots=shots, seed=123)
    assert result.standard_errors is not None
    se = result.standard_errors[0]
    assert np.allclose(result.standard_errors, se)  # same parameters, same error
    # Every observable's mean over the rows lies within 5 standard errors of the mean.
    mean = result.expectations.mean(axis=0)
    assert np.all(np.abs(mean - exact) < 5 * se / np.sqrt(rows) + 1e-12), (mean, exact, se)
    # The reported error is the spread of the estimates (identity terms add no noise).
    np.testing.assert_allclose(result.expectations.std(axis=0), se, rtol=0.1)
    term = {
        t: cirq_reference(CIRCUIT, [[(1.0, t)]], SYMBOLS, values[:1])[0, 0] for t in ("ZI", "ZZ", "XY", "IZ")
    }
    want = np.sqrt(
        np.array(
            [
                1 - term["ZI"] ** 2,
                0.25 * (1 - term["ZZ"] ** 2) + 0.64 * (1 - term["XY"] ** 2),
                1 - term["IZ"] ** 2,  # the identity term is exact
            ]
        )
        / shots
    )
    np.testing.assert_allclose(se, want, rtol=1e-9)
    # Estimates are what a device returns: sums of ±1/shots steps.
    zi = result.expectations[:, 0]
    np.testing.assert_allclose(np.round((zi + 1) * shots / 2), (zi + 1) * shots / 2, atol=1e-9)


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    values = np.random.default_rng(0).normal(size=(20, 2))
    circuit_hash, text = as_request(CIRCUIT)
    core = NodeCore(NodeConfig(default_shots=100))
    first = core.evaluate(circuit_hash, text, OBSERVABLES, SYMBOLS, values, seed=42)
    again = core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values, seed=42)
    other = core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values, seed=43)
    np.testing.assert_array_equal(first.expectations, again.expectations)
    assert not np.array_equal(first.expectations, other.expectations)
    exact = core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values, shots=0)
    assert exact.standard_errors is None
    grad = core.shift_gradient(circuit_hash, None, OBSERVABLES, SYMBOLS, values, seed=7, include_values=True)
    grad_again = core.shift_gradient(
        circuit_hash, None, OBSERVABLES, SYMBOLS, values, seed=7, include_values=True
    )
    np.testing.assert_array_equal(grad.jacobian, grad_again.jacobian)


def test_shot_sampled_shift_gradient_is_unbiased() -> None:
    rows, shots = 3000, 100
    values = np.tile([[0.4, 0.9]], (rows, 1))
    circuit_hash, text = as_request(CIRCUIT)
    core = NodeCore(NodeConfig())
    exact = core.shift_gradient(circuit_hash, text, [[(1.0, "ZZ")]], SYMBOLS, values[:1]).jacobian[0, 0]
    sampled = core.shift_gradient(circuit_hash, None, [[(1.0, "ZZ")]], SYMBOLS, values, shots=shots, seed=3)
    # One slot per symbol: J = ½(est+ − est−), so Var J = ¼ (σ+² + σ−²) ≤ ½ / shots.
    sigma_of_mean = np.sqrt(0.5 / shots / rows)
    assert np.all(np.abs(sampled.jacobian[:, 0, :].mean(axis=0) - exact) < 5 * sigma_of_mean)
    assert sampled.jacobian.std(axis=0).min() > 0  # it really was sampled


def test_readout_error_scales_each_term_by_its_weight() -> None:
    p = 0.1
    values = np.random.default_rng(1).normal(size=(5, 2))
    circuit_hash, text = as_request(CIRCUIT)
    observables = [[(1.0, "ZI")], [(1.0, "ZZ")], [(1.0, "II")], [(1.0, "XY"), (2.0, "IZ")]]
    ideal = NodeCore(NodeConfig()).evaluate(circuit_hash, text, observables, SYMBOLS, values).expectations
    noisy = NodeCore(NodeConfig(noise=NoiseConfig(readout_error=p)))
    result = noisy.evaluate(circuit_hash, text, observables, SYMBOLS, values)
    assert result.backend == "batched"  # readout error alone needs no noisy engine
    np.testing.assert_allclose(result.expectations[:, 0], 0.8 * ideal[:, 0], atol=1e-12)
    np.testing.assert_allclose(result.expectations[:, 1], 0.64 * ideal[:, 1], atol=1e-12)
    np.testing.assert_allclose(result.expectations[:, 2], 1.0, atol=1e-12)
    xy = cirq_reference(CIRCUIT, [[(1.0, "XY")]], SYMBOLS, values)[:, 0]
    iz = cirq_reference(CIRCUIT, [[(1.0, "IZ")]], SYMBOLS, values)[:, 0]
    np.testing.assert_allclose(result.expectations[:, 3], 0.64 * xy + 2 * 0.8 * iz, atol=1e-12)
    np.testing.assert_allclose(readout_factors(["IZZX", "IIII"], 0.25), [0.125, 1.0])


@pytest.mark.parametrize("p", [0.03, 0.2])
def test_depolarizing_density_matrix_matches_the_analytic_bloch_shrinkage(p: float) -> None:
    theta = sympy.Symbol("t")
    q = cirq.LineQubit(0)
    values = np.array([[0.0], [0.8], [2.5]])
    core = NodeCore(NodeConfig(noise=NoiseConfig(depolarizing_1q=p)))
    one_gate = cirq.Circuit(cirq.rx(theta).on(q))
    circuit_hash, text = as_request(one_gate)
    result = core.evaluate(circuit_hash, text, [[(1.0, "Z")]], ["t"], values)
    assert result.backend == "batched-density"
    shrink = 1 - 4 * p / 3
    np.testing.assert_allclose(result.expectations[:, 0], shrink * np.cos(values[:, 0]), atol=1e-12)
    two_gates = cirq.Circuit(cirq.rx(theta).on(q), cirq.ry(theta / 2).on(q))
    circuit_hash, text = as_request(two_gates)
    result = core.evaluate(circuit_hash, text, [[(1.0, "Z")]], ["t"], values)
    np.testing.assert_allclose(
        result.expectations[:, 0], shrink**2 * np.cos(values[:, 0]) * np.cos(values[:, 0] / 2), atol=1e-12
    )


def test_two_qubit_depolarizing_and_readout_compose() -> None:
    p2, r = 0.1, 0.05
    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.X(q[0]), cirq.CNOT(*q))  # |11>, <ZZ> = 1 ideally
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig(noise=NoiseConfig(depolarizing_2q=p2, readout_error=r)))
    result = core.evaluate(circuit_hash, text, [[(1.0, "ZZ")], [(1.0, "ZI")]], [], np.zeros((1, 0)))
    # Two-qubit depolarizing keeps a Pauli with probability 1 − 16p/15 of its weight.
    shrink = 1 - 16 * p2 / 15
    np.testing.assert_allclose(
        result.expectations[0], [shrink * (1 - 2 * r) ** 2, -shrink * (1 - 2 * r)], atol=1e-12
    )


def test_qsim_trajectories_approach_the_exact_density_matrix() -> None:
    values = np.array([[0.3, 1.2], [2.0, -0.4]])
    circuit_hash, text = as_request(CIRCUIT)
    noise = {"depolarizing_1q": 0.05, "depolarizing_2q": 0.1}
    exact = NodeCore(NodeConfig(noise=NoiseConfig(**noise)))
    qsim = NoiseConfig(**noise, method="trajectories", trajectories=2000)
    mc = NodeCore(NodeConfig(backend="qsim", noise=qsim))
    want = exact.evaluate(circuit_hash, text, OBSERVABLES, SYMBOLS, values).expectations
    got = mc.evaluate(circuit_hash, text, OBSERVABLES, SYMBOLS, values, seed=5)
    assert got.backend == "qsim"
    # Each observable is bounded by Σ|c| ≤ 3; 2000 trajectories give σ ≲ 3/sqrt(2000) ≈ 0.067.
    np.testing.assert_allclose(got.expectations, want, atol=0.2)
    ideal = NodeCore(NodeConfig()).evaluate(circuit_hash, text, OBSERVABLES, SYMBOLS, values).expectations
    assert np.abs(want - ideal).max() > 0.05  # the noise is visible at this strength
    again = mc.evaluate(circuit_hash, text, OBSERVABLES, SYMBOLS, values, seed=5)
    np.testing.assert_array_equal(got.expectations, again.expectations)


def test_noise_helpers() -> None:
    rng = np.random.default_rng(0)
    est = sample_terms(np.array([1.0, -1.0, 0.0]), 10, rng)
    assert est[0] == 1.0 and est[1] == -1.0
    se = standard_errors(np.array([[0.6, 1.0]]), np.array([[2.0], [3.0]]), 100)
    np.testing.assert_allclose(se, [[np.sqrt(4 * 0.64 / 100)]])
