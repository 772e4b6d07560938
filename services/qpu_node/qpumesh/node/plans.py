"""Plans per request shape: what checking a request's shape once decides, kept for the next.

The shape of a request is everything but its numbers: the observables, the symbol order of
the batch, the number of rows, the shots, and for a gradient what is differentiated and
how. Requests of one shape pass or fail the same bounds and cost the same, so `NodeCore`
checks a shape in full once, keeps what it decided on the circuit's `CircuitRequests`
(keyed by the shape, see `evaluate_key` and `gradient_key`), and checks a later request
of that shape only for what it brings anew: its values (shape, rows, finite), its
cotangents, and the finiteness of the angles and results. A shape that fails a check is
not kept, so its error comes again; a kept plan is the answer the full checks would give.

What a plan does not hold is per request: the seed (the shot sampler's and the noise
trajectories' randomness), the engine instance, the values. The node's configuration is
fixed for its life, so it is not part of a key either.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from qpumesh.node.requests import Columns, Differentiation, Observables, Terms

__all__ = ["EvaluatePlan", "GradientPlan", "evaluate_key", "gradient_key"]

#: Most Pauli terms (over all observables) of a request whose plan is kept (the key holds them).
PLAN_KEY_TERMS = 1024


@dataclass(frozen=True)
class EvaluatePlan:
    """What the shape of an Evaluate request decides on one circuit (`evaluate_key`).

    Attributes:
        terms: The observables' unique terms.
        columns: The symbol order of the batch.
        executions: Circuit executions a hardware QPU needs (one per row).
        shots: Their shots (rows x shots x measured terms).
        hardware_seconds: Their time on the node's hardware profile.
    """

    terms: Terms
    columns: Columns
    executions: int
    shots: int
    hardware_seconds: float


@dataclass(frozen=True)
class GradientPlan:
    """What the shape of a ShiftGradient request decides on one circuit (`gradient_key`).

    Attributes:
        terms: The observables' unique terms.
        columns: The symbol order of the batch.
        differentiation: The differentiated symbols and their chain rule.
        method: ``"adjoint"`` or ``"parameter_shift"``: what runs.
        executions: The shift rule's circuit executions (`gradients.shift_rule_executions`).
        shots: Their shots.
        hardware_seconds: Their time on the node's hardware profile.
    """

    terms: Terms
    columns: Columns
    differentiation: Differentiation
    method: str
    executions: int
    shots: int
    hardware_seconds: float


def evaluate_key(
    observables: Observables, symbols: Sequence[str], values: np.ndarray, shots: int
) -> Hashable | None:
    """Return the shape of an Evaluate request (see `EvaluatePlan`), or None when it is not kept."""
    return _shape_key("evaluate", observables, symbols, values, shots)


def gradient_key(  # noqa: PLR0917 (the fields of a request's shape)
    observables: Observables,
    symbols: Sequence[str],
    values: np.ndarray,
    wrt: Sequence[str],
    vjp: bool,
    include_values: bool,
    shots: int,
    method: str,
) -> Hashable | None:
    """Return the shape of a ShiftGradient request (see `GradientPlan`), or None when it is not kept."""
    return _shape_key(
        "gradient", observables, symbols, values, tuple(wrt), vjp, include_values, shots, method
    )


def _shape_key(
    kind: str, observables: Observables, symbols: Sequence[str], values: np.ndarray, *rest: Hashable
) -> Hashable | None:
    """Return the key of a request shape: its kind, observables, symbols, values' shape and `rest`.

    Requests with more than `PLAN_KEY_TERMS` terms in all, or whose values are not an
    array, are not kept.
    """
    try:
        if not isinstance(values, np.ndarray) or sum(map(len, observables)) > PLAN_KEY_TERMS:
            return None
        key = (
            kind,
            tuple(tuple(observable) for observable in observables),
            tuple(symbols),
            values.shape,
            *rest,
        )
        hash(key)
    except TypeError:  # malformed observables: the full checks will say what is wrong
        return None
    return key
