"""The batched density-matrix engine gives Cirq's noisy numbers, for every gate the node accepts.

A user switching a node from ``--backend cirq`` to the default batched engine must get the
same noisy expectations (to 1e-10), whatever gates their circuit uses: random circuits over
the whole supported gate set -- fixed and symbolic, shared symbols, one- to three-qubit gates
-- with one- and two-qubit depolarizing noise and readout error are compared with an
independent `cirq.DensityMatrixSimulator` reference (`noisy_reference`).
"""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_engine_helpers import as_request
from noisy_reference import GATES, circuits, reference

from qpumesh.node.backends import DensityBackend
from qpumesh.node.backends.density import MAX_QUBITS
from qpumesh.node.circuits import SUPPORTED_GATES, compile_circuit
from qpumesh.node.core import InvalidRequest, NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig

A, B, C = sympy.symbols("a b c")


def pauli_terms(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="IXYZ", min_size=n, max_size=n)


def test_the_random_circuits_cover_every_supported_gate() -> None:
    assert set(SUPPORTED_GATES) <= set(GATES), set(SUPPORTED_GATES) - set(GATES)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    circuit=circuits(),
    noise=st.sampled_from([(0.05, 0.0, 0.0), (0.0, 0.1, 0.0), (0.02, 0.07, 0.04), (0.3, 0.5, 0.2)]),
    data=st.data(),
)
def test_density_engine_matches_cirq_density_matrix_on_random_circuits(
    circuit: cirq.Circuit, noise: tuple[float, float, float], data: st.DataObject
) -> None:
    p1, p2, readout = noise
    n = len(circuit.all_qubits())
    symbols = sorted(p for p in cirq.parameter_names(circuit))
    observables = [
        [
            (data.draw(st.floats(-2, 2)), data.draw(pauli_terms(n)))
            for _ in range(data.draw(st.integers(1, 3)))
        ]
        for _ in range(data.draw(st.integers(1, 3)))
    ]
    values = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-4, 4, (2, len(symbols)))
    config = NodeConfig(noise=NoiseConfig(depolarizing_1q=p1, depolarizing_2q=p2, readout_error=readout))
    core = NodeCore(config)
    circuit_hash, text = as_request(circuit)
    if p1 == p2 == 0:  # pragma: no cover (every profile above has gate noise)
        pytest.skip("no gate noise")
    result = core.evaluate(circuit_hash, text, observables, symbols, values)
    assert result.backend == "batched-density"
    expected = reference(circuit, observables, symbols, values, p1, p2, readout)
    np.testing.assert_allclose(result.expectations, expected, atol=1e-10)


@pytest.mark.parametrize("n", [5, 7])
def test_large_registers_run_gate_by_gate_and_match_cirq(n: int) -> None:
    """Over DENSE_MAX_QUBITS fixed gates are applied one by one; the numbers stay Cirq's."""
    q = cirq.LineQubit.range(n)
    circuit = cirq.Circuit(
        [cirq.H(x) for x in q],
        cirq.T(q[1]),
        cirq.rx(A).on(q[0]),
        cirq.CNOT(q[0], q[n - 1]),
        cirq.CZ(q[2], q[3]),
        cirq.ISWAP(q[1], q[4]) ** 0.3,
        cirq.CCX(q[2], q[0], q[n - 1]),
        cirq.ZZ(q[3], q[n - 1]) ** B,
        cirq.CCZ(q[1], q[3], q[4]) ** C,
        cirq.PhasedXPowGate(phase_exponent=0.2, exponent=A).on(q[n - 2]),
        cirq.ry(C).on(q[4]),
    )
    observables = [[(1.0, "Z" + "I" * (n - 1))], [(0.5, "XY" + "Z" * (n - 2)), (-1.0, "I" * (n - 1) + "X")]]
    values = np.random.default_rng(3).uniform(-3, 3, size=(3, 3))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(
        NodeConfig(noise=NoiseConfig(depolarizing_1q=0.03, depolarizing_2q=0.08, readout_error=0.02))
    )
    result = core.evaluate(circuit_hash, text, observables, ["a", "b", "c"], values)
    expected = reference(circuit, observables, ["a", "b", "c"], values, 0.03, 0.08, 0.02)
    np.testing.assert_allclose(result.expectations, expected, atol=1e-10)


def test_channels_are_free_clifford_runs_become_gathers() -> None:
    """A CNOT ring with its channels is one monomial step (a gather), not a dense matrix."""
    q = cirq.LineQubit.range(3)
    circuit = cirq.Circuit(
        cirq.H.on_each(*q), cirq.rx(A).on(q[0]), cirq.CNOT(q[0], q[1]), cirq.CNOT(q[1], q[2])
    )
    program = DensityBackend(NoiseConfig(depolarizing_1q=0.01, depolarizing_2q=0.02)).program(
        compile_circuit(circuit, 20)
    )
    kinds = [type(step).__name__ for step in program.steps]
    assert kinds == ["_Gather", "_Rot1", "_Gather"]
    assert program.skip_first  # the leading H layer is folded into the initial state
    assert program.steps[1].shifts == (0, 1)  # type: ignore[union-attr]  # Rx: two XOR-diagonals


def test_density_matrix_bound_is_enforced_with_a_message_naming_it() -> None:
    q = cirq.LineQubit.range(MAX_QUBITS + 1)
    circuit = cirq.Circuit(cirq.H.on_each(*q))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig(noise=NoiseConfig(depolarizing_1q=0.01)))
    with pytest.raises(InvalidRequest, match=rf"at most {MAX_QUBITS} qubits.*--noise-method trajectories"):
        core.evaluate(circuit_hash, text, [[(1.0, "Z" * (MAX_QUBITS + 1))]], [], np.zeros((1, 0)))
    noise = NoiseConfig(depolarizing_1q=0.01, method="trajectories", trajectories=2000)
    wide = NodeCore(NodeConfig(noise=noise))
    result = wide.evaluate(circuit_hash, text, [[(1.0, "X" * (MAX_QUBITS + 1))]], [], np.zeros((1, 0)))
    assert result.backend == "batched-trajectories"
    # Every H is followed by depolarize(0.01): <X> = 1 − 4p/3 per qubit; σ ≤ 1/sqrt(2000) ≈ 0.022.
    assert result.expectations[0, 0] == pytest.approx((1 - 4 * 0.01 / 3) ** (MAX_QUBITS + 1), abs=0.12)


@pytest.mark.parametrize(
    ("backend", "method", "engine"),
    [
        ("batched", "density_matrix", "batched-density"),
        ("batched", "trajectories", "batched-trajectories"),
        ("cirq", "density_matrix", "cirq"),
        ("qsim", "density_matrix", "cirq"),
        ("cirq", "trajectories", "qsim"),
        ("qsim", "trajectories", "qsim"),
    ],
)
def test_the_configured_backend_picks_the_noisy_engine(backend: str, method: str, engine: str) -> None:
    """The batched backend runs gate noise in torch; cirq and qsim keep the reference engines."""
    circuit = cirq.Circuit(cirq.rx(A).on(cirq.LineQubit(0)))
    circuit_hash, text = as_request(circuit)
    noise = NoiseConfig(depolarizing_1q=0.1, method=method, trajectories=2000)
    result = NodeCore(NodeConfig(backend=backend, noise=noise)).evaluate(
        circuit_hash, text, [[(1.0, "Z")]], ["a"], np.array([[0.4]]), seed=1
    )
    assert result.backend == engine
    atol = 1e-12 if method == "density_matrix" else 0.1
    np.testing.assert_allclose(result.expectations[0, 0], (1 - 0.4 / 3) * np.cos(0.4), atol=atol)


def test_chunked_batches_give_the_same_numbers_as_one_chunk() -> None:
    """Thousands of rows are split into chunks; each row's numbers do not depend on the split."""
    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.H.on_each(*q), cirq.ry(A).on(q[0]), cirq.CNOT(*q), cirq.rz(B).on(q[1]))
    compiled = compile_circuit(circuit, 20)
    engine = DensityBackend(NoiseConfig(depolarizing_1q=0.05, depolarizing_2q=0.1))
    angles = np.random.default_rng(0).uniform(-3, 3, size=(5000, 2))
    terms = ["ZI", "XY", "IZ"]
    many = engine.expectations(compiled, terms, angles)
    for row in (0, 1023, 1024, 4999):
        np.testing.assert_array_equal(
            many[row], engine.expectations(compiled, terms, angles[row : row + 1])[0]
        )
