"""metrics.json / predictions.csv writers, plots and table formatting of the client."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from qpumesh.client.cli_support import format_table
from qpumesh.client.jobs_cli import read_series_csv
from qpumesh.client.outputs import (
    PREDICTION_COLUMNS,
    prediction_rows,
    results_metrics,
    write_metrics,
    write_results,
)
from qpumesh.client.plots import plot_results
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.job_spec import JobSpec


def _results(n: int = 10, train_size: int = 7, epochs: int = 3) -> pb.GetResultsResponse:
    job = pb.Job(
        id="job-1",
        spec=pb.JobSpec(
            name="unit", task="pendulum", model="distributed", qubits=4, partitions=2, epochs=epochs
        ),
        state=pb.JOB_STATE_SUCCEEDED,
        epochs_done=epochs,
        created_at=100.0,
        updated_at=130.5,
        final_test_r2=0.9,
        convergence_epoch=2,
    )
    for e in range(1, epochs + 1):
        job.history.add(
            epoch=e,
            train_loss=0.1 / e,
            test_loss=0.2 / e,
            test_r2=0.3 * e,
            wall_seconds=1.5,
            circuit_evaluations=100,
            rounds=40,
            hardware_seconds=12.5,
        )
    job.nodes.add(address="127.0.0.1:1", node_id="node-0", healthy=True, calls=7)
    job.faults.add(time=110.0, node="node-0", kind="timeout", detail="deadline")
    return pb.GetResultsResponse(
        job=job,
        targets=[math.sin(i) for i in range(n)],
        predictions=[math.sin(i) + 0.01 for i in range(n)],
        train_size=train_size,
    )


def test_metrics_have_required_keys_and_totals() -> None:
    metrics = results_metrics(_results(), client_wall_seconds=31.0)
    assert metrics["test_r2"] == 0.9
    assert metrics["convergence_epoch"] == 2
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert set(metrics["history"][0]) >= {
        "epoch",
        "train_loss",
        "test_loss",
        "test_r2",
        "wall_seconds",
        "rounds",
    }
    assert metrics["rounds"] == 120
    assert metrics["circuit_evaluations"] == 300
    assert metrics["wall_seconds"] == 30.5
    assert metrics["train_wall_seconds"] == 4.5
    assert metrics["hardware_seconds"] == 37.5  # estimated on the nodes' hardware, summed over epochs
    assert metrics["history"][0]["hardware_seconds"] == 12.5
    assert metrics["client_wall_seconds"] == 31.0
    assert metrics["best_test_r2"] == pytest.approx(0.9)
    assert metrics["spec"]["model"] == "distributed"
    # Unset in the message, so the coordinator's default.
    assert metrics["spec"]["layers"] == JobSpec().layers
    assert metrics["nodes"][0]["node_id"] == "node-0"
    assert metrics["faults"][0]["kind"] == "timeout"
    assert (metrics["windows"], metrics["train_windows"], metrics["test_windows"]) == (10, 7, 3)
    assert metrics["state"] == "succeeded"


def test_write_metrics_turns_nan_into_null(tmp_path: Path) -> None:
    path = write_metrics(tmp_path / "m.json", {"a": math.nan, "b": [1.0, math.inf], "c": {"d": 2.0}})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2.0}}


def test_write_results_files(tmp_path: Path) -> None:
    results = _results(n=10, train_size=7)
    paths = write_results(tmp_path / "out", results, extra={"coordinator": "x:1"})
    assert [p.name for p in paths] == ["metrics.json", "predictions.csv"]
    metrics = json.loads(paths[0].read_text())
    assert metrics["coordinator"] == "x:1"
    with paths[1].open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == PREDICTION_COLUMNS
    assert len(rows) == 11
    assert [r[1] for r in rows[1:]].count("train") == 7
    assert rows[8][:2] == ["7", "test"]
    assert float(rows[3][2]) == math.sin(2)  # full precision
    assert float(rows[3][3]) == math.sin(2) + 0.01


def test_prediction_rows_refuse_mismatched_lengths() -> None:
    results = _results()
    results.predictions.append(1.0)
    with pytest.raises(ValueError, match="10 targets but 11 predictions"):
        prediction_rows(results)


def test_plot_results_writes_pngs(tmp_path: Path) -> None:
    paths = plot_results(_results(n=40, train_size=27), tmp_path)
    assert sorted(p.name for p in paths) == ["loss.png", "predictions.png", "r2.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000


def test_format_table_aligns_columns() -> None:
    table = format_table(("ID", "STATE"), [("a", "running"), ("bcd", "ok")])
    assert table.splitlines() == ["ID   STATE", "a    running", "bcd  ok"]


def test_read_series_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("t,y\n0,1.5\n1,2.5\n\n2,3.5\n")
    assert read_series_csv(path) == [1.5, 2.5, 3.5]
    assert read_series_csv(path, "t") == [0.0, 1.0, 2.0]
    assert read_series_csv(path, "1") == [1.5, 2.5, 3.5]
    bare = tmp_path / "bare.csv"
    bare.write_text("0.1\n0.2\n")
    assert read_series_csv(bare) == [0.1, 0.2]
