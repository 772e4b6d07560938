"""Session 4's budget: the VJP-mode centric-16 rows (the lead's epoch rule, their own run keys)
and the same-epoch comparison of the scale study's rows."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import results
from study_runs import Budget, jacobian_centric16_runs, scale_runs, vjp_budget_epochs
from study_tables import r2_at_epoch


def _budget(**changes: Any) -> Budget:
    fields: dict[str, Any] = {
        "tables": 20,
        "long_epochs": 100,
        "long_tasks": ("pendulum", "narma2-chen", "narma2"),
        "scale": {4: 8, 16: 8},
        "scale_centric": {4: 8, 16: 1},
        "scale_centric_seeds": {16: 1},
        "noise": 10,
        "noise_series_length": 240,
    }
    fields.update(changes)
    return Budget(**fields)


@pytest.mark.parametrize(
    ("seconds", "epochs"),
    [
        # 6 runs x E epochs x t <= 6000 worker-seconds (100 min).
        (300.0, 3),  # 6 * 3 * 300 = 5400 <= 6000 < 6 * 4 * 300 = 7200
        (250.0, 4),  # 6 * 4 * 250 = 6000: the bound itself is allowed
        (250.001, 3),  # just over it at 4
        (100.0, 8),  # 10 would fit: capped at 8
        (1500.0, 2),  # not even 1 fits: at least 2
        (700.0, 2),  # 6 * 1 * 700 = 4200 fits one epoch only: still 2
    ],
)
def test_vjp_epochs_follow_the_leads_rule(seconds: float, epochs: int) -> None:
    assert vjp_budget_epochs(seconds, runs=6) == epochs


def test_vjp_epochs_refuse_a_meaningless_time() -> None:
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(ValueError, match="positive epoch time"):
            vjp_budget_epochs(bad, runs=6)
    with pytest.raises(ValueError, match="runs=0"):
        vjp_budget_epochs(300.0, runs=0)


def test_vjp_rows_carry_the_gradient_mode_and_get_their_own_keys() -> None:
    jacobian = {r.row: r for r in scale_runs(_budget()) if r.row.endswith("centric-16")}
    vjp_budget = _budget(
        scale_centric={4: 8, 16: 3}, scale_centric_seeds={}, scale_centric_gradient={16: "vjp"}
    )
    vjp = [r for r in scale_runs(vjp_budget) if r.row.endswith("centric-16")]
    assert sorted((r.row, r.seed) for r in vjp) == sorted(
        (f"{task}/centric-16", seed) for task in ("pendulum", "narma2") for seed in (0, 1, 2)
    )
    for run in vjp:
        assert run.fields["gradient_mode"] == "vjp" and run.epochs == 3
        assert run.key != jacobian[run.row].key
    # Jacobian rows keep the keys (and files) they were saved under: the default stays out.
    others = [r for r in scale_runs(vjp_budget) if not r.row.endswith("centric-16")]
    assert all("gradient_mode" not in r.fields for r in others)
    without = scale_runs(replace(vjp_budget, scale_centric_gradient={}))
    assert {r.key for r in others} <= {r.key for r in without}


def test_the_replaced_jacobian_runs_are_the_session_3_budget() -> None:
    """The runs quoted for their time are exactly what the session-3 budget ran at width 16."""
    old = {r.file_name for r in scale_runs(_budget()) if r.row.endswith("centric-16")}
    assert {r.file_name for r in jacobian_centric16_runs()} == old


def test_list_does_not_call_the_quoted_jacobian_runs_stale(capsys: Any, tmp_path: Path) -> None:
    from study_cache import RunCache

    cache = RunCache(tmp_path)
    for run in jacobian_centric16_runs():
        cache.save(run, {"run": {}})
    listing = ["--studies", "scale", "--list", "--results", str(tmp_path)]
    results.main([*listing, "--scale-centric-gradient", "16:vjp"])
    assert "stale" not in capsys.readouterr().out
    results.main(listing)
    assert "stale" not in capsys.readouterr().out  # still the budget's own rows without VJP


def _run(row: str, seed: int, r2s: list[float]) -> dict[str, Any]:
    history = [{"epoch": i + 1, "test_r2": v} for i, v in enumerate(r2s)]
    return {"run": {"row": row, "seed": seed, "epochs": len(r2s)}, "summary": {"history": history}}


def test_r2_at_epoch_reads_the_histories_of_the_runs_that_reached_it() -> None:
    runs = [
        _run("a/centric-16", 0, [0.1, 0.5]),
        _run("a/centric-16", 1, [0.3, 0.7]),
        _run("a/distributed-16", 0, [0.2, 0.4, 0.9]),
        _run("a/distributed-16", 1, [0.4]),  # did not reach epoch 2
    ]
    (mean, std), seeds = r2_at_epoch(runs, "a/centric-16", 2) or ((0.0, 0.0), 0)
    assert (mean, seeds) == (pytest.approx(0.6), 2) and std == pytest.approx(math.sqrt(0.02))
    assert r2_at_epoch(runs, "a/distributed-16", 2) == ((0.4, pytest.approx(math.nan, nan_ok=True)), 1)
    assert r2_at_epoch(runs, "a/centric-16", 3) is None
    assert r2_at_epoch(runs, "b/centric-16", 1) is None


def test_r2_at_epoch_refuses_a_history_out_of_order() -> None:
    bad = _run("a/x", 0, [0.1, 0.2])
    bad["summary"]["history"].reverse()
    with pytest.raises(ValueError, match="history entry 1 is epoch 1"):
        r2_at_epoch([bad], "a/x", 2)


def test_the_document_says_where_the_vjp_rows_gradients_come_from() -> None:
    """The VJP rows are named as such, with the old Jacobian-mode epoch beside theirs."""
    from study_tables import aggregate
    from study_text import _session4_budget, _vjp_note

    def saved(
        fields: dict[str, Any], seed: int, epochs: int, seconds: float, loss: float = 0.1
    ) -> dict[str, Any]:
        summary = {
            "history": [{"epoch": 1, "train_loss": loss, "test_loss": 2 * loss}],
            "test_r2": 0.5,
            "convergence_epoch": epochs,
            "parameters": 592,
            "total_seconds": seconds,
            "circuit_evaluations": 10,
        }
        row = "pendulum/centric-16"
        run = {"study": "scale", "row": row, "seed": seed, "epochs": epochs, "fields": fields}
        return {"run": run, "summary": summary}

    vjp = {"task": "pendulum", "model": "centric", "qubits": 16, "gradient_mode": "vjp"}
    runs = [saved(vjp, seed, 4, 4 * 240.0, 0.1 * (1 + 1e-12)) for seed in (0, 1, 2)]
    old = [saved({"task": "pendulum", "model": "centric", "qubits": 16}, 0, 1, 1842.0)]
    note = _vjp_note(aggregate(runs), runs, old)
    assert "VJP rounds" in note and "~1e-10, not bit-identical" in note
    assert "pendulum/centric-16: 4.0 min per epoch (Jacobian mode, session 3: 30.7 min)" in note
    assert "first epoch in the two modes" in note and "pendulum/centric-16 seed 0: 1.0e-12." in note
    assert _vjp_note(aggregate(old), old, []) == ""  # no VJP row, no claim

    budget = _budget(
        scale_centric={4: 8, 16: 4},
        scale_centric_seeds={},
        scale_centric_gradient={16: "vjp"},
        vjp_seconds_per_epoch=227.0,
    )
    text = _session4_budget(budget, runs, old)
    assert "6 · E · t ≤ 100 worker-minutes" in text and "E = 4" in text
    assert "width 16: 4 epochs × 3 seeds per series" in text
    assert "31 min for pendulum/centric-16" in text
    assert "not on main in time" in _session4_budget(_budget(), runs, old)
