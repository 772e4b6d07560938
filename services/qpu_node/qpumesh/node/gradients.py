"""Parameter-shift gradients over any engine.

Every slot of a `CompiledCircuit` is a gate ``exp(-i θ G / 2)`` with ``G² = I``, for which
the expectation of any observable satisfies the exact shift rule

    ∂f/∂θ = ½ [f(θ + π/2) − f(θ − π/2)].

A symbol ``s`` may drive several slots, each affinely (``θ_k = c_k s + b_k``), so by the
chain rule ``∂f/∂s = Σ_k c_k · ½[f(θ_k + π/2) − f(θ_k − π/2)]`` -- every occurrence is
shifted on its own (one angle column at a time) and the results are summed. Slots whose
angle is not affine in one symbol are refused (`GradientError` naming the symbol) rather
than differentiated wrongly.

`parameter_shift` is engine-agnostic: it stacks the unshifted rows (optionally) and the
``±π/2`` rows of every needed slot into as few calls of an ``evaluate(angles) -> outputs``
function as memory allows, so vectorised engines see big batches and noisy or shot-sampled
evaluations are shifted exactly like exact ones. With shots (or qsim trajectories) every
shifted evaluation is sampled independently, so the Jacobian is an unbiased estimate whose
variance is ``¼ Σ c_k² (σ₊² + σ₋²)`` per symbol -- it is not smoothed or reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qpumesh.node.cancellation import checkpoint
from qpumesh.node.circuits import CompiledCircuit

__all__ = [
    "GRADIENT_METHODS",
    "ChainRule",
    "GradientError",
    "differentiable_slots",
    "parameter_shift",
    "shift_rule_executions",
]

#: Accepted gradient methods: ``auto`` (adjoint when the request is exact, else the shift
#: rule), ``parameter_shift`` and ``adjoint``.
GRADIENT_METHODS = ("auto", "parameter_shift", "adjoint")

#: Upper bound on stacked rows per `evaluate` call (bounds the angle and result arrays).
MAX_STACKED_ROWS = 1 << 17

_SHIFT = np.pi / 2


class GradientError(ValueError):
    """A requested gradient cannot be computed exactly by the shift rule."""


def differentiable_slots(compiled: CompiledCircuit, wrt: Sequence[str]) -> list[list[int]]:
    """Return the slots of each symbol in `wrt`, checking that the shift rule applies.

    Args:
        compiled: The circuit.
        wrt: Symbols to differentiate with respect to.

    Returns:
        For each symbol, the indices of the slots that depend on it (possibly empty).

    Raises:
        GradientError: A slot depends on the symbol non-affinely or together with other
            symbols; the message names the symbol and the operation.
    """
    index: dict[str, list[int]] = {}
    for k, slot in enumerate(compiled.slots):
        for name in slot.symbols:
            index.setdefault(name, []).append(k)
    out = []
    for symbol in wrt:
        slots = index.get(symbol, [])
        for k in slots:
            slot = compiled.slots[k]
            if not slot.affine:
                raise GradientError(
                    f"cannot differentiate with respect to symbol {symbol!r}: in {slot.description} its "
                    f"angle depends on {list(slot.symbols)} non-affinely; the parameter-shift rule needs "
                    "each gate angle to be coeff*symbol + offset of a single symbol"
                )
        out.append(slots)
    return out


def parameter_shift(
    evaluate: Callable[[np.ndarray], np.ndarray],
    compiled: CompiledCircuit,
    angles: np.ndarray,
    wrt_slots: Sequence[Sequence[int]],
    include_values: bool = False,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Jacobians of `evaluate` with respect to symbols, by the parameter-shift rule.

    Args:
        evaluate: Maps slot angles ``(R, n_slots)`` to outputs ``(R, n_out)``; rows are
            independent (it may add noise or shot sampling per row).
        compiled: The circuit (for the slot coefficients).
        angles: Unshifted slot angles ``(rows, n_slots)``.
        wrt_slots: For each differentiated symbol, its slots (see `differentiable_slots`).
        include_values: Also evaluate the unshifted angles (in the same engine call).

    Returns:
        ``(values, jacobian)``: values ``(rows, n_out)`` or None, and jacobian
        ``(rows, n_out, len(wrt_slots))``.
    """
    rows = angles.shape[0]
    needed = sorted({k for slots in wrt_slots for k in slots})
    # Blocks of rows: None is the unshifted block, (k, sign) a shifted one.
    blocks: list[tuple[int, float] | None] = [None] if include_values else []
    blocks += [(k, sign) for k in needed for sign in (1.0, -1.0)]
    per_call = max(1, MAX_STACKED_ROWS // max(rows, 1))
    results: dict[tuple[int, float] | None, np.ndarray] = {}
    for start in range(0, len(blocks), per_call):
        checkpoint()
        group = blocks[start : start + per_call]
        stacked = np.empty((len(group) * rows, angles.shape[1]), dtype=np.float64)
        for b, block in enumerate(group):
            part = stacked[b * rows : (b + 1) * rows]
            part[:] = angles
            if block is not None:
                k, sign = block
                part[:, k] += sign * _SHIFT
        outputs = evaluate(stacked)
        for b, block in enumerate(group):
            results[block] = outputs[b * rows : (b + 1) * rows]
    n_out = _output_width(results, evaluate, angles)
    jacobian = np.zeros((rows, n_out, len(wrt_slots)), dtype=np.float64)
    for w, slots in enumerate(wrt_slots):
        for k in slots:
            coeff = compiled.slots[k].coeff
            jacobian[:, :, w] += (0.5 * coeff) * (results[(k, 1.0)] - results[(k, -1.0)])
    values = results[None] if include_values else None
    return values, jacobian


class ChainRule:
    """Symbol derivatives from slot-angle derivatives: ``∂f/∂s = Σ_k c_k ∂f/∂θ_k``.

    Built once per (circuit, differentiated symbols): the slots are applied in *layers* --
    the first slot of every symbol, then the second slot of the symbols that have one... --
    so each layer is three vectorised numpy operations, and every entry is still summed
    slot by slot in ascending order (the same arithmetic as a plain loop).

    Args:
        compiled: The circuit (for the slot coefficients ``c_k``).
        wrt_slots: For each symbol, its slots (see `differentiable_slots`).
    """

    def __init__(self, compiled: CompiledCircuit, wrt_slots: Sequence[Sequence[int]]) -> None:
        self.width = len(wrt_slots)
        depth = max((len(slots) for slots in wrt_slots), default=0)
        self.layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for layer in range(depth):
            pairs = [(w, slots[layer]) for w, slots in enumerate(wrt_slots) if len(slots) > layer]
            ws = np.array([w for w, _ in pairs], dtype=np.int64)
            ks = np.array([k for _, k in pairs], dtype=np.int64)
            coeffs = np.array([compiled.slots[k].coeff for k in ks], dtype=np.float64)
            self.layers.append((ws, ks, coeffs))
        self._one_slot_each: tuple[np.ndarray, np.ndarray] | None = None
        if len(self.layers) == 1 and np.array_equal(self.layers[0][0], np.arange(self.width)):
            self._one_slot_each = (self.layers[0][1], self.layers[0][2])

    def __call__(self, slot_grads: np.ndarray) -> np.ndarray:
        """Map ``(rows, n_out, n_slots)`` slot derivatives to ``(rows, n_out, len(wrt))``."""
        if self._one_slot_each is not None:
            # Each symbol drives one slot: zeros + c * g written out as c * g + 0.0, the same
            # numbers (0.0 + x is x, and -0.0 becomes 0.0 either way), without the scatter;
            # C-ordered like the zeros (``take``, not fancy indexing, whose result is not):
            # callers in process sum over it, and the order of a sum is part of its numbers.
            ks, coeffs = self._one_slot_each
            product: np.ndarray = slot_grads.take(ks, axis=2) * coeffs
            product += 0.0
            return product
        rows, n_out = slot_grads.shape[:2]
        jacobian = np.zeros((rows, n_out, self.width), dtype=np.float64)
        for ws, ks, coeffs in self.layers:
            jacobian[:, :, ws] += coeffs * slot_grads[:, :, ks]
        return jacobian


def shift_rule_executions(wrt_slots: Sequence[Sequence[int]], rows: int, include_values: bool) -> int:
    """Circuit executions the parameter-shift rule takes on hardware for this request.

    Two shifted executions per parameter set and differentiated slot (every occurrence of a
    shared symbol is shifted on its own), plus the unshifted one when values are asked for.
    This is what a request costs a real QPU, whichever method the emulator used.
    """
    needed = len({k for slots in wrt_slots for k in slots})
    return rows * (2 * needed + (1 if include_values else 0))


def _output_width(
    results: dict[tuple[int, float] | None, np.ndarray],
    evaluate: Callable[[np.ndarray], np.ndarray],
    angles: np.ndarray,
) -> int:
    """Return the number of outputs, evaluating an empty batch if nothing was evaluated."""
    for value in results.values():
        return int(value.shape[1])
    return int(evaluate(angles[:0]).shape[1])
