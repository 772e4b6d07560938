"""Figures of ``docs/results.md`` in the manner of the paper's: predictions and loss curves.

- ``plot_predictions``: target and one-step-ahead predictions over all windows, with the
  train/test split marked (a dashed line), one panel per model (seed 0).
- ``plot_losses``: training and test loss per epoch, mean over the seeds with a band of
  ± one standard deviation, one panel per model.
- ``plot_bars``: final test R² (mean ± std) of the rows of a study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_predictions(panels: Mapping[str, Mapping[str, Any]], title: str, path: Path) -> Path:
    """One panel per model: target, prediction, split. ``panels``: label -> saved predictions."""
    figure, axes_list = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for axes, (label, p) in zip(axes_list[:, 0], panels.items(), strict=True):
        t = np.asarray(p["time_index"])
        axes.plot(t, p["target"], color="0.2", linewidth=1.2, label="target")
        axes.plot(t, p["prediction"], color="tab:red", linewidth=1.0, linestyle="--", label="prediction")
        split = int(np.asarray(p["split"]))
        axes.axvline(t[split], color="tab:blue", linestyle=":", label="train | test")
        axes.set_title(label, fontsize=10)
        axes.set_xlabel("time step")
        axes.legend(fontsize=8, loc="upper right")
    figure.suptitle(title)
    return _save(figure, path)


def plot_losses(panels: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], title: str, path: Path) -> Path:
    """One panel per model: mean train/test loss over seeds per epoch (log y), ± one std band.

    ``panels``: label -> one epoch history (``EpochMetrics`` dicts) per seed.
    """
    figure, axes_list = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for axes, (label, histories) in zip(axes_list[0], panels.items(), strict=True):
        for key, color in (("train_loss", "tab:blue"), ("test_loss", "tab:orange")):
            values = np.array([[m[key] for m in h] for h in histories])
            epochs = np.arange(1, values.shape[1] + 1)
            mean = values.mean(axis=0)
            axes.plot(epochs, mean, color=color, label=key.replace("_", " "))
            if len(values) > 1:
                std = values.std(axis=0, ddof=1)
                axes.fill_between(epochs, np.maximum(mean - std, 1e-12), mean + std, color=color, alpha=0.2)
        axes.set_yscale("log")
        axes.set_title(f"{label} ({len(histories)} seeds)", fontsize=10)
        axes.set_xlabel("epoch")
        axes.set_ylabel("MSE (scaled units)")
        axes.legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def plot_bars(
    labels: Sequence[str], means: Sequence[float], stds: Sequence[float], title: str, path: Path
) -> Path:
    """Horizontal bars of the final test R² per row, with ± one std error bars."""
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    errors = [0.0 if np.isnan(s) else s for s in stds]
    axes.barh(range(len(labels)), means, xerr=errors, color="tab:blue", alpha=0.7, capsize=3)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("final test R²")
    axes.set_xlim(min(0.0, *means), 1.0)
    axes.set_title(title)
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
