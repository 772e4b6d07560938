"""Result files of a training job: ``metrics.json`` and ``predictions.csv``.

``qpumesh train --output DIR`` and ``qpumesh results JOB --output DIR`` write the
same two files from the coordinator's ``GetResultsResponse``:

- ``metrics.json``: the final test R², the convergence epoch, the per-epoch
  history, the spec, wall time, network rounds, node statistics and fault
  events. Non-finite numbers are written as ``null`` (JSON has no NaN).
- ``predictions.csv``: one row per window of the series with its split
  (``train``/``test``), the true next value and the model's prediction.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.job_spec import SpecError, spec_from_proto
from qpumesh.wire.job_state import JobState
from qpumesh.wire.records import to_record

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
PREDICTION_COLUMNS = ("window", "split", "target", "prediction")


def _finite(value: Any) -> Any:
    """Replace NaN/inf floats (recursively) by None so the JSON stays standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def spec_dict(spec: pb.JobSpec) -> dict[str, Any]:
    """Return the job's spec as plain values, with the coordinator's defaults filled in."""
    try:
        return spec_from_proto(spec).to_dict()
    except SpecError:
        # A spec the current JobSpec no longer accepts (e.g. from an older
        # coordinator): report the fields that were set, as they are.
        values: dict[str, Any] = {f.name: getattr(spec, f.name) for f, _ in spec.ListFields()}
        values["extra"] = dict(spec.extra)
        return values


def job_metrics(job: pb.Job, *, client_wall_seconds: float | None = None) -> dict[str, Any]:
    """Summarise a job (state, final metrics, history, nodes, faults) as JSON-ready values.

    Args:
        job: the job as returned by GetJob or inside GetResultsResponse.
        client_wall_seconds: wall time measured by the client from submission
            to the end, if known.
    """
    history = [to_record(m) for m in job.history]
    state = JobState.from_proto(job.state)
    best_r2 = max((m.test_r2 for m in job.history if math.isfinite(m.test_r2)), default=math.nan)
    metrics: dict[str, Any] = {
        "job_id": job.id,
        "name": job.spec.name,
        "state": state.label if state else "unspecified",
        "error": job.error,
        "test_r2": job.final_test_r2,
        "best_test_r2": best_r2,
        "convergence_epoch": job.convergence_epoch,
        "epochs_done": job.epochs_done,
        "final_train_loss": job.history[-1].train_loss if job.history else math.nan,
        "final_test_loss": job.history[-1].test_loss if job.history else math.nan,
        "wall_seconds": max(0.0, job.updated_at - job.created_at),
        "train_wall_seconds": sum(m.wall_seconds for m in job.history),
        "hardware_seconds": sum(m.hardware_seconds for m in job.history),
        "rounds": sum(m.rounds for m in job.history),
        "circuit_evaluations": sum(m.circuit_evaluations for m in job.history),
        "shots": sum(m.shots for m in job.history),
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "spec": spec_dict(job.spec),
        "history": history,
        "nodes": [to_record(n) for n in job.nodes],
        "faults": [to_record(f) for f in job.faults],
    }
    if client_wall_seconds is not None:
        metrics["client_wall_seconds"] = client_wall_seconds
    return _finite(metrics)  # type: ignore[no-any-return]


def results_metrics(
    results: pb.GetResultsResponse, *, client_wall_seconds: float | None = None
) -> dict[str, Any]:
    """``job_metrics`` plus the window counts of the results."""
    metrics = job_metrics(results.job, client_wall_seconds=client_wall_seconds)
    metrics["windows"] = len(results.targets)
    metrics["train_windows"] = results.train_size
    metrics["test_windows"] = max(0, len(results.targets) - results.train_size)
    return metrics


def prediction_rows(results: pb.GetResultsResponse) -> list[tuple[int, str, float, float]]:
    """Return ``(window, split, target, prediction)`` for every window.

    Raises:
        ValueError: targets and predictions differ in length.
    """
    targets, predictions = list(results.targets), list(results.predictions)
    if len(targets) != len(predictions):
        raise ValueError(f"results have {len(targets)} targets but {len(predictions)} predictions")
    return [
        (i, "train" if i < results.train_size else "test", target, prediction)
        for i, (target, prediction) in enumerate(zip(targets, predictions, strict=True))
    ]


def write_metrics(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as indented standard JSON (NaN/inf become null); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(metrics), indent=2, allow_nan=False)
    target.write_text(text + "\n", encoding="utf-8")
    return target


def write_predictions(path: str | os.PathLike[str], results: pb.GetResultsResponse) -> Path:
    """Write ``predictions.csv`` (window, split, target, prediction); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for window, split, value, prediction in prediction_rows(results):
            writer.writerow((window, split, value, prediction))
    return target


def write_results(
    directory: str | os.PathLike[str],
    results: pb.GetResultsResponse,
    *,
    client_wall_seconds: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``metrics.json`` and ``predictions.csv`` into ``directory``.

    Args:
        directory: created if missing.
        results: the coordinator's GetResults answer.
        client_wall_seconds: wall time seen by the client, stored in the metrics.
        extra: more top-level entries for ``metrics.json`` (e.g. the coordinator address).
    """
    out = Path(directory)
    metrics = results_metrics(results, client_wall_seconds=client_wall_seconds)
    metrics.update(extra or {})
    return [write_metrics(out / METRICS_FILE, metrics), write_predictions(out / PREDICTIONS_FILE, results)]


def write_files(
    results: pb.GetResultsResponse,
    output: Path | None,
    plot: Path | None,
    *,
    extra: Mapping[str, Any] | None = None,
    client_wall_seconds: float | None = None,
) -> None:
    """Write the result files to ``output`` and the plots to ``plot`` (either may be None), naming each.

    Args:
        results: the coordinator's GetResults answer.
        output: directory for ``metrics.json`` and ``predictions.csv``, or None.
        plot: directory for ``loss.png``, ``r2.png`` and ``predictions.png``, or None.
        extra: more top-level entries for ``metrics.json``.
        client_wall_seconds: wall time seen by the client, stored in the metrics.
    """
    from qpumesh.client.plots import plot_results

    written = []
    if output is not None:
        written += write_results(output, results, client_wall_seconds=client_wall_seconds, extra=extra)
    if plot is not None:
        written += plot_results(results, plot)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
