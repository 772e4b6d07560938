"""The node's noise profile: gate depolarizing, readout error and shot sampling.

Three independent effects, applied where they are cheapest and exact:

* **Gate noise** -- ``cirq.depolarize(p1)`` after every one-qubit gate and
  ``cirq.depolarize(p2, n_qubits=2)`` after every two-qubit gate, none after wider gates,
  fixed and parametrised gates alike, in the circuit with sub-circuits inlined
  (`NoiseConfig.depolarizing`; `GateDepolarizingNoise` is the same rule as a Cirq noise model).
  It needs a noisy engine. ``method="density_matrix"`` is exact: the node's ``batched-density``
  engine (Pauli-vector density matrices of the whole batch in torch, up to 10 qubits), or
  `cirq.DensityMatrixSimulator` on a ``--backend cirq``/``qsim`` node. ``method="trajectories"``
  is Monte Carlo (`NoiseConfig.trajectories` trajectories per parameter set, so values carry a
  statistical error of order ``1/sqrt(trajectories)``): the ``batched-trajectories`` engine,
  or qsim's trajectories on a ``--backend cirq``/``qsim`` node.
* **Readout error** -- a symmetric bit flip with probability ``p`` on each measured qubit.
  Measuring a Pauli term rotates each non-identity qubit to the Z basis and multiplies the
  outcomes, so a flip on any of its ``w`` (weight) qubits flips the sign:
  ``<P>_read = (1 − 2p)^w <P>`` exactly (`readout_factors`). It is applied after any engine,
  so the noise-free batched engine stays usable when only readout error is configured.
* **Shots** -- each Pauli term is measured with `shots` shots: the number of +1 outcomes is
  ``Binomial(shots, (1 + <P>)/2)``, the estimate ``2k/shots − 1`` (`sample_terms`). An
  observable ``Σ c_t P_t`` is estimated by ``Σ c_t est_t``; its reported standard error is the
  true standard deviation of that estimator, ``sqrt(Σ c_t² (1 − <P_t>²) / shots)`` computed
  from the exact (noisy) values (`standard_errors`) -- the emulator knows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cirq
import numpy as np

__all__ = [
    "NOISE_METHODS",
    "GateDepolarizingNoise",
    "NoiseConfig",
    "readout_factors",
    "sample_terms",
    "standard_errors",
]

#: Accepted values of `NoiseConfig.method`.
NOISE_METHODS = ("density_matrix", "trajectories")


@dataclass(frozen=True)
class NoiseConfig:
    """A node's noise profile.

    Attributes:
        depolarizing_1q: ``depolarize(p)`` after every one-qubit gate.
        depolarizing_2q: ``depolarize(p, n_qubits=2)`` after every two-qubit gate.
        readout_error: Symmetric bit-flip probability of each measured qubit.
        method: ``"density_matrix"`` (exact) or ``"trajectories"`` (Monte Carlo) for gate
            noise; the engine also depends on the node's backend (see the module docstring).
        trajectories: Monte Carlo trajectories per parameter set for ``"trajectories"``.

    Raises:
        ValueError: A probability outside ``[0, 1)``, an unknown method or a non-positive
            trajectory count.
    """

    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    readout_error: float = 0.0
    method: str = "density_matrix"
    trajectories: int = 200

    def __post_init__(self) -> None:
        for name in ("depolarizing_1q", "depolarizing_2q", "readout_error"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
                raise ValueError(f"NoiseConfig.{name} must be a probability in [0, 1), got {value!r}")
        if self.method not in NOISE_METHODS:
            raise ValueError(
                f"NoiseConfig.method must be one of {', '.join(map(repr, NOISE_METHODS))}, "
                f"got {self.method!r}"
            )
        if (
            isinstance(self.trajectories, bool)
            or not isinstance(self.trajectories, int)
            or self.trajectories < 1
        ):
            raise ValueError(
                f"NoiseConfig.trajectories must be a positive integer, got {self.trajectories!r}"
            )

    @property
    def is_noisy(self) -> bool:
        """True when any noise probability is nonzero."""
        return self.has_gate_noise or self.readout_error > 0.0

    @property
    def has_gate_noise(self) -> bool:
        """True when gate noise needs a noisy engine (density matrix or trajectories)."""
        return self.depolarizing_1q > 0.0 or self.depolarizing_2q > 0.0

    def describe(self) -> str:
        """Return a one-line description of the profile, for logs ("none" without noise)."""
        if not self.is_noisy:
            return "none"
        text = (
            f"depolarizing 1q {self.depolarizing_1q:g}, 2q {self.depolarizing_2q:g}, "
            f"readout {self.readout_error:g}"
        )
        if self.has_gate_noise:
            text += f", simulated by {self.method}"
            if self.method == "trajectories":
                text += f" ({self.trajectories} per parameter set)"
        return text

    def depolarizing(self, n_qubits: int) -> float:
        """Probability of the depolarizing channel after a gate on `n_qubits` qubits.

        ``depolarizing_1q`` after one-qubit gates, ``depolarizing_2q`` after two-qubit gates,
        0 after wider gates (CCX, CCZ, three-qubit matrix gates) -- fixed and parametrised
        gates alike. Every engine places its channels by this rule.
        """
        return {1: self.depolarizing_1q, 2: self.depolarizing_2q}.get(n_qubits, 0.0)

    def noise_model(self) -> GateDepolarizingNoise:
        """Return the Cirq noise model of the gate noise."""
        return GateDepolarizingNoise(self.depolarizing_1q, self.depolarizing_2q)


class GateDepolarizingNoise(cirq.NoiseModel):  # type: ignore[misc]
    """Depolarizing channel after every one- and two-qubit gate.

    Args:
        p1: Probability of ``cirq.depolarize(p1)`` after one-qubit gates.
        p2: Probability of ``cirq.depolarize(p2, n_qubits=2)`` after two-qubit gates.
    """

    def __init__(self, p1: float, p2: float) -> None:
        self.p1 = p1
        self.p2 = p2

    def noisy_operation(self, operation: cirq.Operation) -> cirq.OP_TREE:
        """Return the operation followed by its depolarizing channel."""
        n = len(operation.qubits)
        if n == 1 and self.p1 > 0:
            return [operation, cirq.depolarize(self.p1).on(*operation.qubits)]
        if n == 2 and self.p2 > 0:
            return [operation, cirq.depolarize(self.p2, n_qubits=2).on(*operation.qubits)]
        return operation

    def __repr__(self) -> str:
        return f"GateDepolarizingNoise(p1={self.p1!r}, p2={self.p2!r})"


def readout_factors(terms: Iterable[str], readout_error: float) -> np.ndarray:
    """``(1 − 2p)^weight`` per dense Pauli string: the exact readout-error scaling."""
    weights = np.array([sum(1 for p in term if p != "I") for term in terms], dtype=np.float64)
    return (1.0 - 2.0 * readout_error) ** weights


def sample_terms(values: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Shot estimates of Pauli terms with exact expectations `values`.

    Args:
        values: Exact expectations in ``[-1, 1]``, any shape.
        shots: Shots per term (> 0).
        rng: The sampler.

    Returns:
        ``2 k / shots − 1`` with ``k ~ Binomial(shots, (1 + values) / 2)``, same shape.
    """
    p = np.clip((1.0 + values) * 0.5, 0.0, 1.0)
    k = rng.binomial(shots, p)
    return 2.0 * k / shots - 1.0


def standard_errors(values: np.ndarray, coefficients: np.ndarray, shots: int) -> np.ndarray:
    """Compute standard errors of shot-estimated observables.

    Args:
        values: Exact term expectations ``(rows, n_terms)``.
        coefficients: ``(n_terms, n_obs)`` coefficient of each term in each observable.
        shots: Shots per term.

    Returns:
        ``sqrt(Σ_t c_t² (1 − <P_t>²) / shots)``, shape ``(rows, n_obs)``.
    """
    variance = np.clip(1.0 - values**2, 0.0, None) / shots
    return np.asarray(np.sqrt(variance @ coefficients**2), dtype=np.float64)
