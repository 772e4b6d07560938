"""Zero-noise extrapolation (ZNE) at the node, with mitiq.

A noisy node configured with ZNE (`ZneConfig`: scale factors, folding, extrapolation)
answers every request with *mitigated* values: it runs the request's circuit folded to
each scale factor ``λ`` (mitiq's unitary folding, ``G → G (G† G)^n``, which multiplies the
gate noise by about ``λ`` and leaves the ideal circuit unchanged) on its own noisy engine,
and extrapolates the values to ``λ = 0`` with mitiq's factories.

* **Folding** (`fold`): ``global`` (the whole circuit, `mitiq.zne.scaling.fold_global`) or
  ``gates_at_random`` (random gates, `fold_gates_at_random`, seeded with 0 so that a
  circuit folds the same way on every node). Symbolic gates fold to their symbolic
  inverses, so a folded circuit is still a parametrised circuit with the same symbols.
* **Extrapolation** (`Extrapolation`): ``linear`` (least-squares line,
  `mitiq.zne.inference.LinearFactory`), ``richardson`` (the polynomial through all points,
  `RichardsonFactory`) or ``exponential`` (``b e^{-c λ}``, `ExpFactory` with asymptote 0:
  what depolarizing noise does to a traceless observable -- observables with an identity
  term do not decay to 0, use the other two for them). The first two are linear in the
  values: the mitigated value is ``Σ_i w_i E(λ_i)`` with weights fixed by the scale factors
  (found by extrapolating unit vectors with mitiq). The exponential fit is not; its weights
  ``∂E₀/∂E(λ_i)`` are taken at the measured values by central differences of mitiq's fit.

The weights carry everything else through the extrapolation: standard errors
``sqrt(Σ w_i² σ_i²)`` and Jacobians ``Σ w_i ∂E(λ_i)/∂θ`` (each folded circuit differentiated
by the parameter-shift rule, every occurrence of a symbol shifted).

Costs are honest: a request runs once per scale factor, each folded circuit with its own
executions (a folded circuit has more gate angles to shift) and its own hardware time, all
added to the reply's counts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cirq
import numpy as np

from qpumesh.node.config import ZNE_EXTRAPOLATIONS, ZNE_FOLDINGS
from qpumesh.node.errors import PreconditionFailed
from qpumesh.node.noise import NoiseConfig

__all__ = ["ZNE_EXTRAPOLATIONS", "ZNE_FOLDINGS", "Extrapolation", "ZneConfig", "fold", "parse_scale_factors"]

_RANDOM_FOLDING_SEED = 0
"""Seed of ``gates_at_random``: the same circuit folds the same way on every node."""
_EXP_STEP = 1e-6
"""Relative step of the central differences that linearise the exponential fit."""


@dataclass(frozen=True)
class ZneConfig:
    """A node's zero-noise extrapolation settings; no scale factors = off.

    Attributes:
        scale_factors: noise scale factors ``λ >= 1``, distinct, at least two; e.g.
            ``(1.0, 3.0, 5.0)``.
        folding: ``"global"`` or ``"gates_at_random"``.
        extrapolation: ``"linear"``, ``"richardson"`` or ``"exponential"``.

    Raises:
        ValueError: a scale factor below 1 or repeated, too few of them, or an unknown
            folding or extrapolation.
    """

    scale_factors: tuple[float, ...] = ()
    folding: str = "global"
    extrapolation: str = "richardson"

    def __post_init__(self) -> None:
        if self.folding not in ZNE_FOLDINGS:
            raise ValueError(f"ZNE folding must be one of {', '.join(ZNE_FOLDINGS)}, got {self.folding!r}")
        if self.extrapolation not in ZNE_EXTRAPOLATIONS:
            raise ValueError(
                f"ZNE extrapolation must be one of {', '.join(ZNE_EXTRAPOLATIONS)}, "
                f"got {self.extrapolation!r}"
            )
        if not self.scale_factors:
            return
        factors = self.scale_factors
        if any(not math.isfinite(f) or f < 1.0 for f in factors):
            raise ValueError(f"ZNE scale factors must be finite numbers >= 1, got {list(factors)}")
        if len(set(factors)) != len(factors):
            raise ValueError(f"ZNE scale factors must be distinct, got {list(factors)}")
        if len(factors) < 2:
            raise ValueError(f"ZNE extrapolation needs at least 2 scale factors, got {list(factors)}")

    def check_noise(self, noise: NoiseConfig) -> None:
        """Refuse ZNE on a node without gate noise: there is nothing to scale.

        Raises:
            ValueError: scale factors given, and no depolarizing noise configured.
        """
        if self.enabled and not noise.has_gate_noise:
            raise ValueError(
                "zero-noise extrapolation (--zne-scale-factors) needs gate noise to scale; "
                "set --depolarizing-1q/--depolarizing-2q or leave ZNE off"
            )

    def fold(self, circuit: cirq.AbstractCircuit) -> list[cirq.Circuit]:
        """Return ``circuit`` folded to each scale factor (`fold`), what requests run under ZNE."""
        return [fold(circuit, factor, self.folding) for factor in self.scale_factors]

    @property
    def enabled(self) -> bool:
        """True when requests are mitigated."""
        return bool(self.scale_factors)

    def describe(self) -> str:
        """One line for GetInfo and logs, e.g. ``zne richardson global 1,3,5`` (empty when off)."""
        if not self.enabled:
            return ""
        factors = ",".join(f"{f:g}" for f in self.scale_factors)
        return f"zne {self.extrapolation} {self.folding} {factors}"


def parse_scale_factors(text: str) -> tuple[float, ...]:
    """Read ``"1,3,5"`` as scale factors (validated by `ZneConfig`).

    Raises:
        ValueError: an entry that is not a number.
    """
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers >= 1 such as 1,3,5, got {text!r}") from None


def fold(circuit: cirq.AbstractCircuit, scale_factor: float, folding: str) -> cirq.Circuit:
    """Return ``circuit`` folded to ``scale_factor`` by mitiq (see the module docstring)."""
    from mitiq.zne.scaling import fold_gates_at_random, fold_global

    flat = cirq.Circuit(cirq.unroll_circuit_op(circuit, deep=True, tags_to_check=None))
    if folding == "global":
        folded = fold_global(flat, scale_factor)
    else:
        folded = fold_gates_at_random(flat, scale_factor, seed=_RANDOM_FOLDING_SEED)
    return cirq.Circuit(folded)


class Extrapolation:
    """The extrapolation of one `ZneConfig` to zero noise, as weights on the scaled values.

    Args:
        config: the ZNE settings (enabled).
    """

    def __init__(self, config: ZneConfig) -> None:
        from mitiq.zne.inference import ExpFactory, LinearFactory, RichardsonFactory

        self.config = config
        self._factors = list(config.scale_factors)
        self._fit = {
            "linear": LinearFactory.extrapolate,
            "richardson": RichardsonFactory.extrapolate,
            "exponential": functools.partial(ExpFactory.extrapolate, asymptote=0.0),
        }[config.extrapolation]
        self._linear: np.ndarray | None = None
        if config.extrapolation != "exponential":
            unit = np.eye(len(self._factors))
            self._linear = np.array([float(self._fit(self._factors, list(row))) for row in unit])

    def weights(self, values: np.ndarray) -> np.ndarray:
        """Return the weights ``∂E₀/∂E(λ_i)`` at ``values`` ``(k, ...)``, of the same shape.

        Raises:
            PreconditionFailed: the exponential fit does not converge for some value.
        """
        if self._linear is not None:
            shape = (len(self._factors),) + (1,) * (values.ndim - 1)
            return np.broadcast_to(self._linear.reshape(shape), values.shape)
        weights = np.empty_like(values)
        flat_values = values.reshape(len(self._factors), -1)
        flat_weights = weights.reshape(len(self._factors), -1)
        for j in range(flat_values.shape[1]):
            column = flat_values[:, j]
            for i in range(len(self._factors)):
                step = _EXP_STEP * max(1.0, abs(column[i]))
                up, down = column.copy(), column.copy()
                up[i] += step
                down[i] -= step
                flat_weights[i, j] = (self._exp(up, j) - self._exp(down, j)) / (2 * step)
        return weights

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Return the zero-noise values of ``values`` ``(k, ...)`` (one slice per scale factor).

        Raises:
            PreconditionFailed: the exponential fit does not converge for some value.
        """
        if self._linear is not None:
            return np.tensordot(self._linear, values, axes=1)
        flat = values.reshape(len(self._factors), -1)
        out = np.array([self._exp(flat[:, j], j) for j in range(flat.shape[1])])
        return out.reshape(values.shape[1:])

    @property
    def needs_values(self) -> bool:
        """True when the weights depend on the values (the exponential fit), so gradients need them."""
        return self._linear is None

    def combine_values(
        self, values: Sequence[np.ndarray], errors: Sequence[np.ndarray | None]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the zero-noise values of one array per scale factor, and their standard errors.

        Args:
            values: ``(rows, n_obs)`` per scale factor.
            errors: their standard errors (None without shots).
        """
        stacked = np.stack(values)
        if any(e is None for e in errors):
            return self(stacked), None
        weights = self.weights(stacked)
        return self(stacked), combine_errors(weights, np.stack([cast(np.ndarray, e) for e in errors]))

    def combine_jacobians(
        self, jacobians: Sequence[np.ndarray], values: Sequence[np.ndarray | None], include_values: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the Jacobian ``Σ_i w_i J_i`` of the zero-noise values, and those values if asked.

        Args:
            jacobians: ``(rows, n_obs, n_wrt)`` per scale factor.
            values: ``(rows, n_obs)`` per scale factor; needed when `needs_values` or
                `include_values`, else may be None.
            include_values: also return the zero-noise values.
        """
        stacked_jacobians = np.stack(jacobians)
        wanted = include_values or self.needs_values
        stacked = np.stack([cast(np.ndarray, v) for v in values]) if wanted else None
        if stacked is not None and self.needs_values:
            weights = self.weights(stacked)
        else:
            weights = self.weights(np.zeros(stacked_jacobians.shape[:3]))
        jacobian = np.einsum("kro,krow->row", weights, stacked_jacobians)
        return jacobian, (self(stacked) if include_values and stacked is not None else None)

    def _exp(self, column: Sequence[float] | np.ndarray, index: int) -> float:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # mitiq warns about ill-conditioned fits; the values tell
                value = float(self._fit(self._factors, list(map(float, column))))
        except Exception as error:  # mitiq raises ExtrapolationError, scipy RuntimeError
            raise PreconditionFailed(
                f"the exponential zero-noise fit failed for output {index} ({error}); "
                "use --zne-extrapolation linear or richardson on this node"
            ) from None
        if not math.isfinite(value):
            raise PreconditionFailed(
                f"the exponential zero-noise fit diverged for output {index}; "
                "use --zne-extrapolation linear or richardson on this node"
            )
        return value


def combine_errors(weights: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Return the standard errors of ``Σ_i w_i E_i`` from independent ``errors`` ``(k, ...)``."""
    return np.asarray(np.sqrt(np.sum((weights * errors) ** 2, axis=0)), dtype=np.float64)
