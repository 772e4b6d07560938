"""Statistics over seeds and the Markdown tables of docs/results.md."""

from __future__ import annotations

import math
from typing import Any

import pytest
from study_tables import (
    aggregate,
    format_mean_std,
    markdown_table,
    mean_std,
    paper_cell,
    per_epoch,
    recovered_fraction,
)


def _result(
    row: str, seed: int, r2: float, conv: int, *, epochs: int = 20, params: int = 148
) -> dict[str, Any]:
    return {
        "run": {"row": row, "seed": seed, "epochs": epochs},
        "summary": {
            "test_r2": r2,
            "convergence_epoch": conv,
            "parameters": params,
            "total_seconds": 10.0 * (seed + 1),
            "circuit_evaluations": 1000 * (seed + 1),
        },
    }


def test_mean_std_is_the_sample_deviation() -> None:
    # values 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; / (n - 1) = 5/3.
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert std == pytest.approx(math.sqrt(5 / 3), rel=1e-15)


def test_one_value_has_no_deviation_and_none_is_refused() -> None:
    mean, std = mean_std([0.9])
    assert mean == 0.9 and math.isnan(std)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


def test_format_mean_std() -> None:
    assert format_mean_std(0.99123, 0.00404, 4) == "0.9912 ± 0.0040"
    assert format_mean_std(0.99123, math.nan, 4) == "0.9912"
    assert format_mean_std(31.0, 2.5, 1) == "31.0 ± 2.5"


def test_aggregate_groups_rows_and_reduces_over_seeds() -> None:
    stats = aggregate(
        [
            _result("pendulum/distributed", 1, 0.98, 30),
            _result("pendulum/distributed", 0, 0.96, 20),
            _result("pendulum/centric-4", 0, 0.90, 10, params=148),
        ]
    )
    row = stats["pendulum/distributed"]
    assert row.seeds == (0, 1)
    assert row.r2[0] == pytest.approx(0.97)
    assert row.r2[1] == pytest.approx(math.sqrt(2) * 0.01)
    assert row.convergence == pytest.approx((25.0, math.sqrt(50.0)))
    assert row.wall_seconds[0] == pytest.approx(15.0) and row.seconds_per_epoch == pytest.approx(0.75)
    assert row.executions[0] == pytest.approx(1500.0)
    assert stats["pendulum/centric-4"].seeds == (0,) and math.isnan(stats["pendulum/centric-4"].r2[1])


def test_aggregate_refuses_mixed_configurations_and_repeated_seeds() -> None:
    with pytest.raises(ValueError, match="mixes runs of epochs"):
        aggregate([_result("r", 0, 0.9, 1, epochs=20), _result("r", 1, 0.9, 1, epochs=100)])
    with pytest.raises(ValueError, match="mixes runs"):
        aggregate([_result("r", 0, 0.9, 1, params=148), _result("r", 1, 0.9, 1, params=111)])
    with pytest.raises(ValueError, match="seed twice"):
        aggregate([_result("r", 0, 0.9, 1), _result("r", 0, 0.8, 1)])


def test_markdown_table_renders_and_checks_cells() -> None:
    text = markdown_table(["model", "R²"], [["distributed", "0.9912 ± 0.0040"], ["centric", "0.99"]])
    assert text == ("| model | R² |\n|---|---|\n| distributed | 0.9912 ± 0.0040 |\n| centric | 0.99 |\n")
    with pytest.raises(ValueError, match="has 1 cells for 2 headers"):
        markdown_table(["a", "b"], [["only one"]])


def test_paper_cell() -> None:
    assert paper_cell(0.9936, 4) == "0.9936"
    assert paper_cell(31, 0) == "31"
    assert paper_cell(None, 4) == "–"


def test_per_epoch_divides_by_each_runs_epochs_and_averages_the_seeds() -> None:
    runs = [
        {"run": {"row": "a", "epochs": 2}, "summary": {"shots": 100, "hardware_seconds": 4.0}},
        {"run": {"row": "a", "epochs": 4}, "summary": {"shots": 400, "hardware_seconds": 4.0}},
        {"run": {"row": "b", "epochs": 1}, "summary": {"shots": 7, "hardware_seconds": 0.5}},
    ]
    # a: shots 50 and 100 per epoch -> 75; hardware 2.0 and 1.0 -> 1.5.
    assert per_epoch(runs, ["shots", "hardware_seconds"]) == {
        "a": {"shots": 75.0, "hardware_seconds": 1.5},
        "b": {"shots": 7.0, "hardware_seconds": 0.5},
    }


def test_recovered_fraction_of_a_clear_loss() -> None:
    # exact 0.90, noisy 0.80: loss 0.10; mitigated 0.86 recovers 0.06 / 0.10 = 60 %.
    fraction, clear = recovered_fraction((0.90, 0.01), (0.80, 0.01), (0.86, 0.02))
    assert fraction == pytest.approx(0.6, rel=1e-12)
    assert clear
    # Mitigation that makes it worse is a negative fraction.
    assert recovered_fraction((0.90, 0.01), (0.80, 0.01), (0.75, 0.0))[0] == pytest.approx(-0.5, rel=1e-12)


def test_recovered_fraction_says_when_the_loss_is_within_noise() -> None:
    # loss 0.01 against a combined deviation √(0.01² + 0.01²) ≈ 0.014: not clear.
    fraction, clear = recovered_fraction((0.88, 0.01), (0.87, 0.01), (0.875, 0.01))
    assert fraction == pytest.approx(0.5, rel=1e-9)
    assert not clear
    # One seed (NaN deviation) counts as no spread; no loss at all gives NaN.
    assert recovered_fraction((0.88, math.nan), (0.87, math.nan), (0.88, math.nan))[1]
    assert math.isnan(recovered_fraction((0.88, 0.0), (0.88, 0.0), (0.9, 0.0))[0])
