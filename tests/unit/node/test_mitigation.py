"""Zero-noise extrapolation at the node (qpumesh.node.mitigation) on the noisy engines."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from qpumesh.node.config import ConfigError, build_config
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.errors import PreconditionFailed
from qpumesh.node.mitigation import Extrapolation, ZneConfig, fold
from qpumesh.node.noise import NoiseConfig
from qpumesh.wire.circuits import WireCircuit

NOISE = NoiseConfig(depolarizing_1q=0.01, depolarizing_2q=0.03)
SYMBOLS = ["a", "b", "c"]
OBSERVABLES = [[(1.0, "ZZ")], [(1.0, "XI")], [(0.5, "IZ"), (0.5, "ZI")]]


def _circuit() -> cirq.Circuit:
    a, b, c = sympy.symbols(SYMBOLS)
    q0, q1 = cirq.LineQubit.range(2)
    return cirq.Circuit(
        cirq.ry(a).on(q0), cirq.ry(b).on(q1), cirq.CNOT(q0, q1), cirq.rx(c).on(q1),
        cirq.CNOT(q1, q0), cirq.ry(0.5 * a + 0.2).on(q0), cirq.CZ(q0, q1), cirq.ry(b).on(q1),
    )  # fmt: skip


def _values(rows: int = 6) -> np.ndarray:
    return np.random.default_rng(3).uniform(-np.pi, np.pi, (rows, len(SYMBOLS)))


def _evaluate(config: NodeConfig, values: np.ndarray, shots: int = 0):  # type: ignore[no-untyped-def]
    wire = WireCircuit.from_cirq(_circuit())
    return NodeCore(config).evaluate(
        wire.hash, wire.cirq_json, OBSERVABLES, SYMBOLS, values, shots=shots, seed=5
    )


def test_zne_reduces_the_bias_of_noisy_expectations() -> None:
    values = _values()
    ideal = _evaluate(NodeConfig(), values).expectations
    noisy = _evaluate(NodeConfig(noise=NOISE), values).expectations
    zne = NodeConfig(noise=NOISE, zne=ZneConfig((1.0, 3.0, 5.0), "global", "richardson"))
    mitigated = _evaluate(zne, values)
    noisy_bias = np.abs(noisy - ideal).mean()
    mitigated_bias = np.abs(mitigated.expectations - ideal).mean()
    assert noisy_bias > 0.02  # the noise matters ...
    assert mitigated_bias < noisy_bias / 5  # ... and ZNE removes most of its bias
    for method, folding in [
        ("linear", "global"),
        ("exponential", "global"),
        ("richardson", "gates_at_random"),
    ]:
        config = NodeConfig(noise=NOISE, zne=ZneConfig((1.0, 2.0, 3.0), folding, method))
        assert np.abs(_evaluate(config, values).expectations - ideal).mean() < noisy_bias, method


def test_zne_accounts_for_every_folded_execution() -> None:
    values = _values(4)
    config = NodeConfig(noise=NOISE, zne=ZneConfig((1.0, 3.0), "global", "linear"))
    result = _evaluate(config, values, shots=100)
    plain = _evaluate(NodeConfig(noise=NOISE), values, shots=100)
    assert (plain.executions, plain.shots) == (4, 4 * 100 * 4)  # 4 measured terms: ZZ, XI, IZ, ZI
    assert (result.executions, result.shots) == (8, 2 * 4 * 100 * 4)
    # The folded circuit is three times as deep, so it costs more than the plain one.
    folded = NodeConfig(noise=NOISE).hardware.request_seconds(
        4, 4, 100, _arities(fold(_circuit(), 3.0, "global"))
    )
    assert result.hardware_seconds == pytest.approx(plain.hardware_seconds + folded, rel=1e-12)
    assert result.standard_errors is not None and (result.standard_errors > plain.standard_errors).all()


def _arities(circuit: cirq.Circuit) -> tuple[int, ...]:
    from qpumesh.wire.hardware import moment_arities

    return moment_arities(circuit)


@pytest.mark.parametrize("extrapolation", ["richardson", "exponential"])
def test_zne_gradients_are_the_derivatives_of_the_mitigated_values(extrapolation: str) -> None:
    config = NodeConfig(noise=NOISE, zne=ZneConfig((1.0, 2.0, 3.0), "global", extrapolation))
    core = NodeCore(config)
    wire = WireCircuit.from_cirq(_circuit())
    values = _values(3)
    grad = core.shift_gradient(wire.hash, wire.cirq_json, OBSERVABLES, SYMBOLS, values, include_values=True)
    assert grad.method == "parameter_shift"
    step = 1e-5
    for s in range(len(SYMBOLS)):
        up, down = values.copy(), values.copy()
        up[:, s] += step
        down[:, s] -= step
        numeric = (
            core.evaluate(wire.hash, None, OBSERVABLES, SYMBOLS, up).expectations
            - core.evaluate(wire.hash, None, OBSERVABLES, SYMBOLS, down).expectations
        ) / (2 * step)
        np.testing.assert_allclose(grad.jacobian[:, :, s], numeric, atol=1e-6)
    np.testing.assert_allclose(
        grad.expectations,
        core.evaluate(wire.hash, None, OBSERVABLES, SYMBOLS, values).expectations,
        atol=1e-12,
    )
    # Every folded circuit is differentiated by the shift rule: more angles, more executions.
    assert grad.shift_rule_executions > 3 * 3 * (2 * 6 + 1)


def test_richardson_weights_come_from_mitiq_and_sum_to_one() -> None:
    extrapolation = Extrapolation(ZneConfig((1.0, 3.0, 5.0)))
    weights = extrapolation.weights(np.zeros((3, 1)))[:, 0]
    np.testing.assert_allclose(weights, [15 / 8, -10 / 8, 3 / 8], atol=1e-12)  # Lagrange at 0 through 1, 3, 5
    assert extrapolation(np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)


def test_bad_zne_settings_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="at least 2 scale factors"):
        ZneConfig((1.0,))
    with pytest.raises(ValueError, match="distinct"):
        ZneConfig((1.0, 1.0), extrapolation="exponential")
    with pytest.raises(ValueError, match=">= 1"):
        ZneConfig((0.5, 1.0))
    with pytest.raises(ConfigError, match="needs gate noise"):
        build_config({}, {"QPUMESH_ZNE_SCALE_FACTORS": "1,3"})
    with pytest.raises(ConfigError, match="QPUMESH_ZNE_SCALE_FACTORS: expected comma-separated numbers"):
        build_config({}, {"QPUMESH_ZNE_SCALE_FACTORS": "one,three"})
    config = build_config(
        {},
        {
            "QPUMESH_DEPOLARIZING_2Q": "0.01",
            "QPUMESH_ZNE_SCALE_FACTORS": "1,2,3",
            "QPUMESH_ZNE_EXTRAPOLATION": "linear",
        },
    )
    assert NodeCore(config.node).info().mitigation == "zne linear global 1,2,3"


def test_a_diverging_exponential_fit_is_a_precondition_failure() -> None:
    extrapolation = Extrapolation(ZneConfig((1.0, 2.0, 3.0), extrapolation="exponential"))
    with pytest.raises(PreconditionFailed, match="use --zne-extrapolation linear or richardson"):
        extrapolation(np.array([[np.nan], [0.1], [0.2]]))
