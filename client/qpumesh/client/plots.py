"""PNG figures of a training job, in the style of the paper's Figs. 3–6.

- ``loss.png``: training and test loss (MSE) per epoch, log scale;
- ``r2.png``: test R² per epoch, with the convergence epoch marked when known;
- ``predictions.png``: ground truth and the model's prediction over every window
  of the series, with a dashed vertical line where the test windows start.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global
backend switch), so plotting works headless and from any thread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from qpumesh.v1 import coordinator_pb2 as pb

_DPI = 120
_TRAIN_COLOR = "tab:blue"
_TEST_COLOR = "tab:orange"
_TRUTH_COLOR = "black"
_PREDICTION_COLOR = "tab:red"


def _new_figure(width: float = 7.0, height: float = 4.2) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target


def job_title(job: pb.Job) -> str:
    """Return a short figure title: name (or id), model, qubits/partitions, task."""
    spec = job.spec
    model = spec.model or "?"
    if model == "distributed":
        partitions = spec.partitions or "auto"
        model = f"distributed QLSTM, {spec.qubits} qubits / {partitions} partitions"
    elif model == "centric":
        model = f"centric QLSTM, {spec.qubits} qubits"
    elif model == "classical":
        model = "classical LSTM"
    task = spec.task or "?"
    if task == "narma":
        task = f"NARMA-{spec.narma_order}"
    elif task == "csv":
        task = Path(spec.csv_path).name or f"a series of {spec.series.length} values"
    label = spec.name or job.id
    return f"{label}: {model}, {task}"


def plot_loss(history: Sequence[pb.EpochMetrics], path: str | os.PathLike[str], title: str = "") -> Path:
    """Draw training and test loss per epoch on a log y axis."""
    figure = _new_figure()
    axes = figure.add_subplot()
    epochs = [m.epoch for m in history]
    for values, label, color in (
        ([m.train_loss for m in history], "training loss", _TRAIN_COLOR),
        ([m.test_loss for m in history], "test loss", _TEST_COLOR),
    ):
        axes.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, ms=3, label=label, color=color)
    if all(v > 0 for m in history for v in (m.train_loss, m.test_loss) if math.isfinite(v)) and history:
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("loss (MSE)")
    axes.set_title(title or "loss")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_r2(
    history: Sequence[pb.EpochMetrics],
    path: str | os.PathLike[str],
    title: str = "",
    convergence_epoch: int = -1,
) -> Path:
    """Draw test R² per epoch; a dotted line marks the convergence epoch when known (>= 0)."""
    figure = _new_figure()
    axes = figure.add_subplot()
    epochs = [m.epoch for m in history]
    values = [m.test_r2 for m in history]
    marker = "o" if len(epochs) <= 30 else None
    axes.plot(epochs, values, marker=marker, ms=3, color=_TEST_COLOR, label="test R²")
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        # Keep a badly negative early epoch from squashing the interesting part near 1.
        low = max(min(finite), -1.0)
        axes.set_ylim(low - 0.05 * (1.0 - low + 1e-9), 1.0 + 0.05 * (1.0 - low + 1e-9))
    if convergence_epoch >= 0:
        label = f"convergence (epoch {convergence_epoch})"
        axes.axvline(convergence_epoch, color="gray", linestyle=":", label=label)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("test R²")
    axes.set_title(title or "test R²")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_predictions(
    targets: Sequence[float],
    predictions: Sequence[float],
    train_size: int,
    path: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """Draw ground truth and prediction over every window, split marked by a vertical line."""
    figure = _new_figure(8.0, 4.2)
    axes = figure.add_subplot()
    windows = range(len(targets))
    axes.plot(windows, list(targets), color=_TRUTH_COLOR, linewidth=1.4, label="ground truth")
    axes.plot(
        range(len(predictions)),
        list(predictions),
        color=_PREDICTION_COLOR,
        linewidth=1.2,
        linestyle="--",
        label="prediction",
    )
    if 0 < train_size < len(targets):
        axes.axvline(train_size - 0.5, color="gray", linestyle="-.", linewidth=1.0)
        axes.axvspan(train_size - 0.5, len(targets) - 0.5, color="gray", alpha=0.08, label="test windows")
    axes.set_xlabel("window")
    axes.set_ylabel("value")
    axes.set_title(title or "predictions")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best")
    return _save(figure, path)


def plot_results(results: pb.GetResultsResponse, directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``loss.png``, ``r2.png`` and ``predictions.png`` for a job into ``directory``.

    Returns:
        The paths written (the loss and R² plots only when the job has a history,
        the predictions plot only when the results carry predictions).
    """
    out = Path(directory)
    job = results.job
    title = job_title(job)
    written: list[Path] = []
    if job.history:
        written.append(plot_loss(job.history, out / "loss.png", f"{title}: loss"))
        written.append(plot_r2(job.history, out / "r2.png", f"{title}: test R²", job.convergence_epoch))
    if results.predictions:
        written.append(
            plot_predictions(
                results.targets, results.predictions, results.train_size, out / "predictions.png", title
            )
        )
    return written
