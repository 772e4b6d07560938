"""Trajectories estimate the density-matrix values without bias, reproducibly.

Users of ``--noise-method trajectories`` rely on two things: the estimates scatter around the
exact noisy values with the advertised spread (``≤ 1/sqrt(trajectories)`` per Pauli term),
and a request gives bit-identical numbers on every node and every call -- with its seed, or
without one -- so a retried training step is the same step.
"""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy
from node_engine_helpers import as_request

from qpumesh.node.backends import DensityBackend, TrajectoriesBackend
from qpumesh.node.backends import trajectories as trajectories_module
from qpumesh.node.circuits import compile_circuit
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig

A, B = sympy.symbols("a b")
Q = cirq.LineQubit.range(3)
# Complex (Rz, S, PhasedX) and multi-qubit (CZ**b, CCX) gates, so both channels and the complex path run.
CIRCUIT = cirq.Circuit(
    cirq.H.on_each(*Q),
    cirq.rx(A).on(Q[0]),
    cirq.CNOT(Q[0], Q[1]),
    cirq.rz(B).on(Q[2]),
    cirq.S(Q[1]),
    cirq.CZ(Q[1], Q[2]) ** B,
    cirq.CCX(*Q),
    cirq.PhasedXPowGate(phase_exponent=0.3, exponent=0.6).on(Q[0]),
    cirq.ISWAP(Q[0], Q[2]) ** 0.5,
)
TERMS = ["ZII", "XYZ", "IIZ", "YXI", "III"]
NOISE = {"depolarizing_1q": 0.08, "depolarizing_2q": 0.15}


def test_trajectory_estimates_are_unbiased_with_the_advertised_spread() -> None:
    rows, t = 400, 50
    compiled = compile_circuit(CIRCUIT, 20)
    angles = np.tile(np.random.default_rng(0).uniform(-3, 3, size=(1, len(compiled.slots))), (rows, 1))
    exact = DensityBackend(NoiseConfig(**NOISE)).expectations(compiled, TERMS, angles[:1])[0]
    engine = TrajectoriesBackend(NoiseConfig(**NOISE, method="trajectories", trajectories=t), seed=11)
    estimates = engine.expectations(compiled, TERMS, angles)  # 400 independent estimates per term
    spread = estimates.std(axis=0)
    assert np.all(spread <= 1 / np.sqrt(t) + 0.02), spread
    assert np.all(spread[:-1] > 0.01)  # they really are sampled (the identity term is exact)
    # The mean of 400 estimates lies within 5 standard errors of the exact value.
    bound = 5 * np.maximum(spread, 1e-3) / np.sqrt(rows)
    np.testing.assert_array_less(np.abs(estimates.mean(axis=0) - exact), bound)
    np.testing.assert_allclose(estimates[:, -1], 1.0, atol=1e-12)


def test_two_qubit_channel_samples_each_pauli_with_its_probability() -> None:
    """After CNOT on |00>, 2q depolarizing keeps <ZI>, <IZ>, <ZZ> with probability 1 − 16p/15."""
    p = 0.3
    circuit = cirq.Circuit(cirq.CNOT(*cirq.LineQubit.range(2)))
    compiled = compile_circuit(circuit, 20)
    engine = TrajectoriesBackend(
        NoiseConfig(depolarizing_2q=p, method="trajectories", trajectories=20000), seed=5
    )
    got = engine.expectations(compiled, ["ZI", "IZ", "ZZ", "XX"], np.zeros((1, 0)))[0]
    sigma = 1 / np.sqrt(20000)
    np.testing.assert_allclose(got, [1 - 16 * p / 15] * 3 + [0.0], atol=5 * sigma)


def test_a_run_of_one_qubit_gates_shrinks_the_bloch_vector_once_per_gate() -> None:
    """Five gates on one qubit (fused into one step and one draw) keep <Z> with (1 − 4p/3)^5."""
    p = 0.1
    q = cirq.LineQubit(0)
    circuit = cirq.Circuit(cirq.X(q), cirq.rz(A).on(q), cirq.X(q), cirq.S(q), cirq.X(q))
    compiled = compile_circuit(circuit, 20)
    noise = NoiseConfig(depolarizing_1q=p, method="trajectories", trajectories=20000)
    engine = TrajectoriesBackend(noise, seed=6)
    assert [step.kind for step in engine.program(compiled).steps] == ["run1"]
    got = engine.expectations(compiled, ["Z"], np.array([[0.7]]))[0, 0]
    assert abs(got + (1 - 4 * p / 3) ** 5) < 5 / np.sqrt(20000)


def test_node_trajectories_agree_with_the_density_matrix_within_statistics() -> None:
    values = np.random.default_rng(2).uniform(-3, 3, size=(3, 2))
    circuit_hash, text = as_request(CIRCUIT)
    observables = [[(1.0, "ZII")], [(0.5, "XYZ"), (-0.8, "YXI")], [(2.0, "III"), (1.0, "IIZ")]]
    exact = NodeCore(NodeConfig(noise=NoiseConfig(**NOISE)))
    mc = NodeCore(NodeConfig(noise=NoiseConfig(**NOISE, method="trajectories", trajectories=4000)))
    want = exact.evaluate(circuit_hash, text, observables, ["a", "b"], values).expectations
    got = mc.evaluate(circuit_hash, text, observables, ["a", "b"], values, seed=3)
    assert got.backend == "batched-trajectories"
    # σ ≤ Σ|c| / sqrt(4000): 0.016, 0.021, 0.016; 5σ bounds.
    error, bound = np.abs(got.expectations - want), 5 * np.array([1.0, 1.3, 1.0]) / np.sqrt(4000)
    assert np.all(error < bound), (error, bound)
    grad = mc.shift_gradient(circuit_hash, None, observables, ["a", "b"], values, seed=3)
    want_grad = exact.shift_gradient(circuit_hash, None, observables, ["a", "b"], values)
    # d/ds = Σ_k c_k ½ (est+ − est−) over the slots of s: σ ≤ σ_obs · sqrt(Σ c_k² / 2), where a
    # drives rx(a) (c = 1) and b drives rz(b) (c = 1) and CZ**b (angle π b, c = π).
    sigma = np.array([1.0, 1.3, 1.0])[:, None] / np.sqrt(4000) * np.sqrt([0.5, (1 + np.pi**2) / 2])
    error = np.abs(grad.jacobian - want_grad.jacobian)
    assert np.all(error < 5 * sigma), (error, 5 * sigma)


def test_same_request_same_numbers_on_every_node_with_or_without_a_seed() -> None:
    values = np.random.default_rng(4).uniform(-3, 3, size=(6, 2))
    circuit_hash, text = as_request(CIRCUIT)
    observables = [[(1.0, t)] for t in TERMS]
    config = NodeConfig(noise=NoiseConfig(**NOISE, method="trajectories", trajectories=64))
    node_a, node_b = NodeCore(config), NodeCore(config)
    for seed in (None, 9):
        first = node_a.evaluate(circuit_hash, text, observables, ["a", "b"], values, seed=seed).expectations
        again = node_a.evaluate(circuit_hash, text, observables, ["a", "b"], values, seed=seed).expectations
        other_node = node_b.evaluate(
            circuit_hash, text, observables, ["a", "b"], values, seed=seed
        ).expectations
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(first, other_node)
        grads = [
            node.shift_gradient(circuit_hash, text, observables, ["a", "b"], values, seed=seed).jacobian
            for node in (node_a, node_b)
        ]
        np.testing.assert_array_equal(*grads)
    seeded = node_a.evaluate(circuit_hash, text, observables, ["a", "b"], values, seed=9).expectations
    other_seed = node_a.evaluate(circuit_hash, text, observables, ["a", "b"], values, seed=10).expectations
    assert not np.array_equal(seeded, other_seed)


def test_numbers_do_not_depend_on_how_the_batch_is_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_circuit(CIRCUIT, 20)
    angles = np.random.default_rng(5).uniform(-3, 3, size=(7, len(compiled.slots)))
    noise = NoiseConfig(**NOISE, method="trajectories", trajectories=30)
    whole = TrajectoriesBackend(noise, seed=1).expectations(compiled, TERMS, angles)
    monkeypatch.setattr(trajectories_module, "_CHUNK_AMPLITUDES", 8 * 13)  # 13 columns of 8 amplitudes
    pieces = TrajectoriesBackend(noise, seed=1).expectations(compiled, TERMS, angles)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-15)
