"""The scale study's budget: the one command's defaults, the run order, one table row per run group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import results
from study_report import scale_section
from study_runs import SEEDS_STUDIES, Budget, scale_runs, vjp_budget_epochs


def _default_budget(**changes: Any) -> Budget:
    """The budget the lead decided for sessions 3 and 4: what ``results.py``'s defaults must build.

    Session 4: the centric-16 rows in VJP mode, 3 seeds, E = 4 epochs from the measured
    227 s VJP-mode epoch (6 · 4 · 227 s = 91 worker-minutes <= 100; 5 epochs would be 114).
    """
    fields: dict[str, Any] = {
        "tables": 20,
        "long_epochs": 100,
        "long_tasks": ("pendulum", "narma2-chen", "narma2"),
        "scale": {4: 8, 8: 8, 12: 8, 16: 8, 32: 8},
        "scale_centric": {4: 8, 8: 8, 12: 8, 16: 4},
        "scale_centric_seeds": {},
        "noise": 10,
        "noise_series_length": 240,
        "scale_centric_gradient": {16: "vjp"},
        "vjp_seconds_per_epoch": 227.0,
    }
    fields.update(changes)
    return Budget(**fields)


def test_the_command_defaults_are_the_documented_budget(capsys: Any, tmp_path: Path) -> None:
    """``--list`` with the defaults selects exactly the runs of the lead's budget."""
    results.main(["--studies", "scale", "--list", "--results", str(tmp_path)])
    listed = {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("missing")}
    assert listed == {run.file_name for run in scale_runs(_default_budget())}


def test_the_vjp_rows_epochs_follow_the_rule_from_the_measured_epoch() -> None:
    budget = _default_budget()
    assert budget.vjp_seconds_per_epoch is not None
    runs = 2 * len(SEEDS_STUDIES)
    assert budget.scale_centric[16] == vjp_budget_epochs(budget.vjp_seconds_per_epoch, runs) == 4


def test_scale_budget_rows_seeds_and_epochs() -> None:
    runs = scale_runs(_default_budget())
    by_row: dict[str, list[int]] = {}
    for run in runs:
        by_row.setdefault(run.row, []).append(run.seed)
        expected_epochs = 4 if run.row.endswith("centric-16") else 8
        assert run.epochs == expected_epochs, run.row
        assert run.fields.get("gradient_mode") == ("vjp" if run.row.endswith("centric-16") else None)
    for task in ("pendulum", "narma2"):
        for width in (4, 8, 12, 16, 32):
            assert by_row[f"{task}/distributed-{width}"] == list(SEEDS_STUDIES)
        for width in (4, 8, 12, 16):
            assert by_row[f"{task}/centric-{width}"] == list(SEEDS_STUDIES)
        assert f"{task}/centric-32" not in by_row


def test_scale_runs_go_cheapest_first() -> None:
    """Distributed and narrow centric rows first, then centric 12 (seed-major), then centric 16."""
    ordered = sorted(scale_runs(_default_budget()), key=lambda r: r.priority)  # stable, as RunCache.missing
    kinds = [
        2 if run.row.endswith("centric-16") else 1 if run.row.endswith("centric-12") else 0 for run in ordered
    ]
    assert kinds == sorted(kinds)
    wide = [(run.seed, run.row) for run in ordered if run.row.endswith("centric-12")]
    assert [seed for seed, _ in wide] == sorted(seed for seed, _ in wide)


def _saved(run: Any, r2: float) -> dict[str, Any]:
    parts = run.fields.get("partitions", 1)
    return {
        "run": {
            "study": run.study,
            "row": run.row,
            "seed": run.seed,
            "epochs": run.epochs,
            "fields": run.fields,
        },
        "summary": {
            "test_r2": r2,
            "convergence_epoch": run.epochs,
            "parameters": 100 + run.fields["qubits"],
            "total_seconds": 2.0 * run.epochs,
            "circuit_evaluations": 1000 * run.epochs,
            "plan": {"input_sizes": [run.fields["qubits"] // parts] * parts},
        },
    }


def test_scale_table_has_one_row_per_series_model_and_width(tmp_path: Path) -> None:
    runs = scale_runs(_default_budget())
    text = scale_section([_saved(run, 0.5 + 0.01 * run.seed) for run in runs], tmp_path, tmp_path)
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| series")]
    keys = [tuple(cell.strip() for cell in line.split("|")[1:4]) for line in table]
    assert len(keys) == len(set(keys)) == len({run.row for run in runs}) == 18
    assert (tmp_path / "scale-r2.png").is_file()
