"""The benchmark series and how they become training windows (pure numpy).

- ``pendulum_series``: the damped pendulum of Chen's QLSTM code (theta'(t), 240 samples
  on [0, 20]), integrated with classical RK4 on a grid 100x finer than the samples
  (step 8.4e-4 s; the global error, O(h^4), is far below float64 plotting precision
  for these smooth dynamics), so no SciPy is needed.
- ``narma_series``: NARMA-n of Chen's code family with the deterministic sine input.
- ``narma2_paper_series``: NARMA-2 as the paper writes it, driven by u_t ~ U[0, 0.5].
- a user's series arrives with its job (``JobSpec.series``: the client read the file,
  or the coordinator read one under its ``--data-root``: ``data_root``).

The generators take ``check``, called every few thousand steps, which raises to stop a
cancelled job's data generation within a fraction of a second.

``make_dataset`` scales a series to [-1, 1] (min-max over the whole series, as Chen's
code does), cuts windows of ``window`` values predicting the next one, and splits
the first ``train_fraction`` of the windows for training, without shuffling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

FloatArray = npt.NDArray[np.float64]
Check = Callable[[], None]
"""Called now and then by long computations; raises to stop them (a cancelled job)."""
CHECK_EVERY = 2048
"""RK4 substeps or NARMA steps between two calls of ``check``."""


def _never() -> None:
    """Never stop (the default ``check``)."""


class DataError(ValueError):
    """A series cannot be loaded or windowed."""


def pendulum_series(
    points: int = 240,
    *,
    t_end: float = 20.0,
    damping: float = 0.15,
    mass: float = 1.0,
    gravity: float = 9.81,
    length: float = 1.0,
    theta0: float = 0.0,
    omega0: float = 3.0,
    substeps: int = 100,
    check: Check = _never,
) -> FloatArray:
    """Angular velocity theta'(t) of a damped pendulum at ``points`` times on [0, t_end].

    Solves theta'' = -(b/m) theta' - (g/L) sin(theta) with fixed-step RK4,
    ``substeps`` steps between consecutive samples; calls ``check`` every
    ``CHECK_EVERY`` substeps or so.
    """
    if points < 2 or substeps < 1:
        raise DataError(f"need at least 2 points and 1 substep, got {points}, {substeps}")
    h = t_end / (points - 1) / substeps

    def rhs(state: FloatArray) -> FloatArray:
        theta, omega = state
        return np.array([omega, -(damping / mass) * omega - (gravity / length) * math.sin(theta)])

    state = np.array([theta0, omega0], dtype=np.float64)
    out = np.empty(points, dtype=np.float64)
    out[0] = state[1]
    check_every = max(1, CHECK_EVERY // substeps)
    for k in range(1, points):
        if k % check_every == 0:
            check()
        for _ in range(substeps):
            k1 = rhs(state)
            k2 = rhs(state + 0.5 * h * k1)
            k3 = rhs(state + 0.5 * h * k2)
            k4 = rhs(state + h * k3)
            state = state + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        out[k] = state[1]
    return out


def narma_input(length: int, period: float = 300.0) -> FloatArray:
    """u_t = 0.1 [sin(2 pi 2.11 t/T) sin(2 pi 3.73 t/T) sin(2 pi 4.11 t/T) + 1], t = 0..length-1."""
    t = np.arange(length, dtype=np.float64)
    waves = [np.sin(2 * np.pi * f * t / period) for f in (2.11, 3.73, 4.11)]
    return 0.1 * (waves[0] * waves[1] * waves[2] + 1.0)


def narma_series(order: int, length: int, period: float = 300.0, check: Check = _never) -> FloatArray:
    """NARMA-n series y_0..y_{length-1} of Chen's code family.

    y_{t+1} = 0.3 y_t + 0.05 y_t sum_{j=0}^{n-1} y_{t-j} + 1.5 u_{t-n+1} u_t + 0.1,
    starting from y_0 = ... = y_{n-1} = 0 (terms with negative indices are 0).
    The first ``order`` (all-zero) values are the washout and are dropped, so the
    returned series has ``length`` points. ``check`` is called every ``CHECK_EVERY`` steps.
    """
    if order < 1 or length < 1:
        raise DataError(f"need order >= 1 and length >= 1, got {order}, {length}")
    total = length + order
    u = narma_input(total, period)
    y = np.zeros(total, dtype=np.float64)
    for t in range(order - 1, total - 1):
        if t % CHECK_EVERY == 0:
            check()
        memory = y[max(0, t - order + 1) : t + 1].sum()
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * memory + 1.5 * u[t - order + 1] * u[t] + 0.1
    return y[order:]


NARMA2_INPUT_SEED = 2025
"""Seed of the NARMA-2 (paper) input: one fixed series for every training seed."""


def narma2_paper_input(length: int, seed: int = NARMA2_INPUT_SEED) -> FloatArray:
    """u_t ~ U[0, 0.5] i.i.d., t = 0..length-1, from ``numpy.random.default_rng(seed)``.

    The paper does not state its NARMA input; U[0, 0.5] is the reservoir-computing
    convention (Atiya and Parlos 2000) for NARMA systems of this form.
    """
    return np.random.default_rng(seed).uniform(0.0, 0.5, size=length)


def narma2_paper_series(
    length: int, *, seed: int = NARMA2_INPUT_SEED, inputs: FloatArray | None = None, check: Check = _never
) -> FloatArray:
    """NARMA-2 of the paper: y_{t+1} = 0.4 y_t + 0.4 y_t y_{t-1} + 0.6 u_t^3 + 0.1.

    Starts from y_0 = y_1 = 0 and drops those two values (washout), so the returned
    series is y_2..y_{length+1}. ``inputs`` (length + 1 values u_0..u_length) replaces
    the random input, e.g. in tests; otherwise ``narma2_paper_input(length + 1, seed)``.
    Only u_1..u_length drive the returned points. ``check`` is called every
    ``CHECK_EVERY`` steps.

    Raises:
        DataError: if ``length`` < 1 or ``inputs`` has the wrong length.
    """
    if length < 1:
        raise DataError(f"need length >= 1, got {length}")
    total = length + 2
    u = narma2_paper_input(total - 1, seed) if inputs is None else np.asarray(inputs, dtype=np.float64)
    if u.shape != (total - 1,):
        raise DataError(f"NARMA-2 of {length} points needs {total - 1} inputs, got shape {u.shape}")
    y = np.zeros(total, dtype=np.float64)
    for t in range(1, total - 1):
        if t % CHECK_EVERY == 0:
            check()
        y[t + 1] = 0.4 * y[t] + 0.4 * y[t] * y[t - 1] + 0.6 * u[t] ** 3 + 0.1
    return y[2:]


@dataclass(frozen=True)
class MinMaxScaler:
    """Affine map of [low, high] onto [-1, 1], and back."""

    low: float
    high: float

    @classmethod
    def fit(cls, series: FloatArray) -> MinMaxScaler:
        """Fit to the range of ``series``; a constant series is rejected."""
        low, high = float(np.min(series)), float(np.max(series))
        if not high > low:
            raise DataError(f"the series is constant ({low}); nothing to learn")
        return cls(low, high)

    def transform(self, values: FloatArray) -> FloatArray:
        """Scale raw values to [-1, 1] (for the fitted range)."""
        return 2.0 * (np.asarray(values, dtype=np.float64) - self.low) / (self.high - self.low) - 1.0

    def inverse(self, values: FloatArray) -> FloatArray:
        """Map scaled values back to raw units."""
        return (np.asarray(values, dtype=np.float64) + 1.0) * (self.high - self.low) / 2.0 + self.low


def make_windows(series: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Cut ``series`` into inputs (n, window) and next-value targets (n,).

    As in Chen's code, ``n = len(series) - window - 1`` (the last possible window is
    not used), which gives the paper's 235 windows for the 240-point pendulum.
    """
    n = len(series) - window - 1
    if n < 2:
        raise DataError(f"a series of {len(series)} points is too short for windows of {window}")
    index = np.arange(n)[:, None] + np.arange(window)[None, :]
    return series[index], series[np.arange(n) + window]


@dataclass(frozen=True)
class Dataset:
    """Scaled windows split into train and test, plus the scaler to undo the scaling.

    Attributes:
        series: the raw (unscaled) series.
        scaler: the min-max scaler fitted to the series.
        x_train, y_train, x_test, y_test: float64 tensors, x of shape (n, window, 1),
            y of shape (n, 1), in scaled units.
        split: index of the first test window.
    """

    series: FloatArray
    scaler: MinMaxScaler
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    split: int

    @property
    def window(self) -> int:
        """Number of time steps the model reads per prediction."""
        return int(self.x_train.shape[1])

    def all_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and test windows together, in time order."""
        return torch.cat([self.x_train, self.x_test]), torch.cat([self.y_train, self.y_test])


def make_dataset(series: FloatArray, window: int, train_fraction: float) -> Dataset:
    """Scale ``series`` to [-1, 1], window it and split off the first windows for training.

    Raises:
        DataError: if the series is too short, constant or non-finite, or the split
            leaves no train or no test window.
    """
    raw = np.asarray(series, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(raw)):
        raise DataError("the series contains NaN or infinite values")
    scaler = MinMaxScaler.fit(raw)
    x, y = make_windows(scaler.transform(raw), window)
    split = int(len(x) * train_fraction)
    if not 0 < split < len(x):
        raise DataError(f"train_fraction {train_fraction} leaves no train or no test windows of {len(x)}")
    xt = torch.from_numpy(x).unsqueeze(-1)
    yt = torch.from_numpy(y).unsqueeze(-1)
    return Dataset(raw, scaler, xt[:split], yt[:split], xt[split:], yt[split:], split)
