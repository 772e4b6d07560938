"""Benchmark series, scaling, windows; generation stops when told to."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qpumesh.coordinator.data import (
    DataError,
    MinMaxScaler,
    make_dataset,
    make_windows,
    narma2_paper_input,
    narma2_paper_series,
    narma_input,
    narma_series,
    pendulum_series,
)
from qpumesh.coordinator.training import load_series
from qpumesh.wire.job_spec import JobSpec


def test_pendulum_matches_paper_shapes() -> None:
    series = pendulum_series()
    assert series.shape == (240,) and series[0] == 3.0
    data = make_dataset(series, 4, 0.67)
    assert len(data.x_train) + len(data.x_test) == 235
    assert data.split == 157 and data.x_train.shape == (157, 4, 1) and data.y_test.shape == (78, 1)
    x, y = data.all_windows()
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert x.dtype == y.dtype == torch.float64


def test_pendulum_is_accurate() -> None:
    # Halving the step changes nothing visible: RK4 with 100 substeps is converged.
    coarse = pendulum_series(substeps=50)
    fine = pendulum_series(substeps=100)
    assert np.max(np.abs(coarse - fine)) < 1e-8
    # The damped oscillation decays: the late amplitude is below the start.
    assert np.max(np.abs(fine[-40:])) < 0.5 * np.max(np.abs(fine[:40]))


@pytest.mark.parametrize("order", [2, 5, 10])
def test_narma_against_direct_recurrence(order: int) -> None:
    length = 120
    u = narma_input(length + order)
    y = [0.0] * order
    for t in range(order - 1, length + order - 1):
        total = sum(y[t - j] for j in range(order))
        y.append(0.3 * y[t] + 0.05 * y[t] * total + 1.5 * u[t - order + 1] * u[t] + 0.1)
    np.testing.assert_allclose(narma_series(order, length), y[order:], rtol=1e-14)


def test_narma_input_formula() -> None:
    t = 7.0
    waves = [np.sin(2 * np.pi * f * t / 300) for f in (2.11, 3.73, 4.11)]
    expected = 0.1 * (waves[0] * waves[1] * waves[2] + 1)
    assert narma_input(8)[7] == pytest.approx(expected)


def test_windows_and_scaler_round_trip() -> None:
    series = np.arange(10.0)
    x, y = make_windows(series, 3)
    assert x.shape == (6, 3) and list(x[0]) == [0, 1, 2] and y[0] == 3 and y[-1] == 8
    scaler = MinMaxScaler.fit(series)
    np.testing.assert_allclose(scaler.inverse(scaler.transform(series)), series)
    assert scaler.transform(np.array([0.0, 9.0])).tolist() == [-1.0, 1.0]


def test_constant_or_short_series_rejected() -> None:
    with pytest.raises(DataError, match="constant"):
        make_dataset(np.ones(20), 4, 0.67)
    with pytest.raises(DataError, match="too short"):
        make_dataset(np.arange(5.0), 4, 0.67)


class _StopError(Exception):
    pass


def test_narma2_paper_first_values_by_hand() -> None:
    # u_t = 0.5 for every t: y2 = 0.6 * 0.125 + 0.1 = 0.175; y3 = 0.4 * 0.175 + 0 + 0.175 = 0.245;
    # y4 = 0.4 * 0.245 + 0.4 * 0.245 * 0.175 + 0.175 = 0.29015.
    y = narma2_paper_series(3, inputs=np.full(4, 0.5))
    np.testing.assert_allclose(y, [0.175, 0.245, 0.29015], rtol=1e-14)


def test_narma2_paper_uses_u_t_not_a_lagged_input() -> None:
    # Only u_1 is non-zero: it drives y_2 (the first returned point), nothing else directly.
    u = np.array([0.0, 0.5, 0.0, 0.0])
    y = narma2_paper_series(3, inputs=u)
    assert y[0] == pytest.approx(0.175)
    assert y[1] == pytest.approx(0.4 * 0.175 + 0.1)


def test_narma2_paper_input_is_fixed_uniform_and_seeded() -> None:
    u = narma2_paper_input(5000)
    assert u.min() >= 0.0 and u.max() < 0.5
    assert u.mean() == pytest.approx(0.25, abs=0.01)
    np.testing.assert_array_equal(u, narma2_paper_input(5000))
    assert not np.array_equal(u, narma2_paper_input(5000, seed=1))
    np.testing.assert_array_equal(narma2_paper_series(300), narma2_paper_series(300))
    assert len(narma2_paper_series(300)) == 300


def test_narma2_paper_rejects_wrong_input_length() -> None:
    with pytest.raises(DataError, match="needs 4 inputs"):
        narma2_paper_series(3, inputs=np.zeros(3))


def test_narma2_task_loads_the_paper_series() -> None:
    spec = JobSpec(task="narma2", series_length=120)
    np.testing.assert_array_equal(load_series(spec), narma2_paper_series(120))


@pytest.mark.parametrize(
    "generate",
    [lambda check: pendulum_series(20_000, check=check), lambda check: narma_series(10, 20_000, check=check)],
)
def test_generation_calls_check_often_and_stops_when_it_raises(generate) -> None:  # type: ignore[no-untyped-def]
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise _StopError

    with pytest.raises(_StopError):
        generate(check)
    assert calls == 3  # stopped at the third check, long before the end
