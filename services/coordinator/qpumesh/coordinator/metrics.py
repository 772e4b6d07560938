"""Scores of a forecast and of a training run (pure functions).

``convergence_epoch`` gives a precise meaning to the paper's undefined "testing
epoch convergence": the first epoch from which the test R² stays within
``tolerance`` of its final value until the end of training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def mse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def r2_score(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (may be negative; 1 is perfect).

    Invariant under one affine rescaling of both arguments, so it is the same in
    scaled and in raw units. A constant target gives 0.0 for a perfect fit, else -inf.
    """
    t, p = _pair(y_true, y_pred)
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 0.0 if ss_res == 0.0 else float("-inf")
    return 1.0 - ss_res / ss_tot


def convergence_epoch(test_r2: Sequence[float], tolerance: float = 0.01) -> int:
    """Return the first epoch (1-based) after which the test R² stays within ``tolerance`` of the final.

    Formally the smallest e such that |R²_k - R²_final| <= tolerance for every
    epoch k >= e. It is ``len(test_r2)`` when only the last epoch qualifies, and 0
    for an empty history.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    values = [float(v) for v in test_r2]
    if not values:
        return 0
    final = values[-1]
    epoch = len(values)
    for k in range(len(values) - 1, -1, -1):
        if not abs(values[k] - final) <= tolerance:
            break
        epoch = k + 1
    return epoch


def best_epoch(losses: Sequence[float]) -> int:
    """Return the 1-based epoch of the smallest loss (the first one on ties; 0 when empty)."""
    if not losses:
        return 0
    return int(np.argmin(np.asarray(losses, dtype=np.float64))) + 1


def _pair(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"need equally long non-empty arrays, got {t.size} and {p.size} values")
    return t, p
