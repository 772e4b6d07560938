"""Adjoint differentiation of observables: Jacobians and vector-Jacobian products.

For an exact (noise-free, shot-free) request the gradient of ``f_o = ⟨ψ(θ)| O_o |ψ(θ)⟩``
needs no shifted circuits: one forward pass gives ``ψ``, one backward sweep that un-computes
``ψ`` gate by gate beside the co-state ``λ = O ψ`` gives every ``∂f/∂θ_k = 2 Re ⟨λ| (−iG_k/2)
|ψ⟩`` (`qpumesh.node.backends.kernels`). The cost is about three circuit passes per row
instead of two per differentiated slot.

* **VJP** (cotangents ``v`` given): one co-state per row, ``λ = Σ_o v_o O_o ψ``, so the
  result ``Σ_o v_o ∂f_o/∂s`` costs the same as a single observable.
* **Jacobian**: one co-state per observable, all swept together (in groups when the state
  memory bound of `CompiledEngine` requires; the grouping never changes the numbers).

Slot derivatives become symbol derivatives by `gradients.ChainRule`,
so shared symbols and affine angles are handled exactly as by the shift rule. The values
(``include_values``) come from the same forward pass as `evaluate` and are bit-identical
to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qpumesh.node.backends import BatchedBackend
from qpumesh.node.circuits import CompiledCircuit
from qpumesh.node.gradients import ChainRule

__all__ = ["adjoint_gradient"]


def adjoint_gradient(  # noqa: PLR0917 (mirrors parameter_shift's arguments)
    engine: BatchedBackend,
    compiled: CompiledCircuit,
    terms: Sequence[str],
    coefficients: np.ndarray,
    angles: np.ndarray,
    chain: ChainRule,
    cotangents: np.ndarray | None,
    include_values: bool,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Jacobian or VJP of weighted Pauli-term observables by adjoint differentiation.

    Args:
        engine: The batched engine (its compiled kernels run the sweeps).
        compiled: The circuit.
        terms: Unique dense Pauli strings of the request.
        coefficients: ``(len(terms), n_obs)``: observable ``o`` is ``Σ_t coefficients[t, o] P_t``.
        angles: Slot angles ``(rows, n_slots)``.
        chain: Slot to symbol derivatives of the differentiated symbols.
        cotangents: ``(rows, n_obs)`` for a VJP, or None for the full Jacobian.
        include_values: Also return the expectations ``(rows, n_obs)``.

    Returns:
        ``(values, result)``: values or None, and the Jacobian ``(rows, n_obs, len(wrt))``
        or, with cotangents, the VJP ``(rows, len(wrt))``.
    """
    if cotangents is None:
        weights = coefficients[np.newaxis]  # one co-state per observable, shared by every row
    else:
        weights = (cotangents @ coefficients.T)[:, :, np.newaxis]  # one co-state per row
    term_values, slot_grads = engine.adjoint(compiled, terms, angles, weights)
    jacobian = chain(slot_grads)
    values = term_values @ coefficients if include_values else None
    return values, (jacobian if cotangents is None else jacobian[:, 0, :])
