"""ShiftGradient on a noisy node returns the true derivative of the noisy expectation.

A depolarizing channel does not depend on the angles, so every noisy expectation is still
``a + b cos θ + c sin θ`` in each slot angle and the parameter-shift rule stays exact. The
torch density-matrix engine's Jacobians and VJPs must therefore equal finite differences of
the noisy values and the Jacobians of the Cirq reference node (``--backend cirq``).
"""

from __future__ import annotations

import cirq
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_engine_helpers import SHARED_OBSERVABLES, SHARED_SYMBOLS, as_request, shared_symbol_circuit
from noisy_reference import circuits, reference

from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig

SYMBOLS = SHARED_SYMBOLS
OBSERVABLES = SHARED_OBSERVABLES
NOISE = NoiseConfig(depolarizing_1q=0.04, depolarizing_2q=0.09, readout_error=0.03)


def test_noisy_shift_gradient_equals_finite_differences_and_the_cirq_reference() -> None:
    circuit = shared_symbol_circuit(toffoli=True)
    values = np.random.default_rng(7).uniform(-2, 2, size=(4, 3))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig(noise=NOISE))
    result = core.shift_gradient(circuit_hash, text, OBSERVABLES, SYMBOLS, values, include_values=True)
    assert result.backend == "batched-density"
    p1, p2, readout = NOISE.depolarizing_1q, NOISE.depolarizing_2q, NOISE.readout_error
    assert result.expectations is not None
    np.testing.assert_allclose(
        result.expectations, reference(circuit, OBSERVABLES, SYMBOLS, values, p1, p2, readout), atol=1e-10
    )
    h = 1e-3
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        f = [
            core.evaluate(circuit_hash, None, OBSERVABLES, SYMBOLS, values + m * step).expectations
            for m in (2, 1, -1, -2)
        ]
        fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
        np.testing.assert_allclose(result.jacobian[:, :, k], fd, atol=1e-9, err_msg=f"d/d{SYMBOLS[k]}")
    cirq_core = NodeCore(NodeConfig(backend="cirq", noise=NOISE))
    want = cirq_core.shift_gradient(circuit_hash, text, OBSERVABLES, SYMBOLS, values)
    assert want.backend == "cirq"
    np.testing.assert_allclose(result.jacobian, want.jacobian, atol=1e-10)
    # The VJP is the Jacobian contracted with the cotangents, row by row.
    cotangents = np.random.default_rng(8).normal(size=(4, 3))
    vjp = core.shift_gradient(
        circuit_hash, None, OBSERVABLES, SYMBOLS, values, wrt=["c", "a"], cotangents=cotangents
    )
    np.testing.assert_allclose(
        vjp.jacobian, np.einsum("ro,row->rw", cotangents, result.jacobian[:, :, [2, 0]]), atol=1e-12
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=circuits(max_qubits=3), data=st.data())
def test_noisy_shift_gradient_matches_finite_differences_on_random_circuits(
    circuit: cirq.Circuit, data: st.DataObject
) -> None:
    """Every symbolic gate form obeys the shift rule under noise too."""
    n = len(circuit.all_qubits())
    symbols = sorted(p for p in cirq.parameter_names(circuit))
    terms = [data.draw(st.text(alphabet="IXYZ", min_size=n, max_size=n)) for _ in range(2)]
    observables = [[(1.0, terms[0])], [(0.5, terms[1])]]
    values = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-3, 3, (1, len(symbols)))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig(noise=NOISE))
    result = core.shift_gradient(circuit_hash, text, observables, symbols, values)
    p1, p2, readout = NOISE.depolarizing_1q, NOISE.depolarizing_2q, NOISE.readout_error
    h = 1e-5
    for k in range(len(symbols)):
        step = np.zeros_like(values)
        step[0, k] = h
        fd = (
            reference(circuit, observables, symbols, values + step, p1, p2, readout)
            - reference(circuit, observables, symbols, values - step, p1, p2, readout)
        ) / (2 * h)
        np.testing.assert_allclose(result.jacobian[:, :, k], fd, atol=1e-6, err_msg=f"d/d{symbols[k]}")
