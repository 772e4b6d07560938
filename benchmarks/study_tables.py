"""Statistics over seeds and the Markdown tables of ``docs/results.md`` (pure functions).

Every number in the tables is the mean ± sample standard deviation (n − 1 in the
denominator) over the seeds that finished; a row with one seed shows the value alone, and
the ``seeds`` column always says how many runs a row holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation; the deviation is NaN for fewer than two values.

    Raises:
        ValueError: for no values.
    """
    if not values:
        raise ValueError("mean_std needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def format_mean_std(mean: float, std: float, digits: int) -> str:
    """``"0.9912 ± 0.0040"``; the mean alone when the deviation is NaN (one seed)."""
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass(frozen=True)
class RowStats:
    """One table row: a configuration trained with several seeds.

    Attributes:
        row: the row's name.
        seeds: the seeds that finished, sorted.
        epochs: epochs per run (the same for every seed of a row).
        r2, convergence, wall_seconds, executions: (mean, std) over the seeds of the final
            test R², the convergence epoch, the wall time and the circuit executions.
        parameters: trainable parameters (the same for every seed).
    """

    row: str
    seeds: tuple[int, ...]
    epochs: int
    r2: tuple[float, float]
    convergence: tuple[float, float]
    parameters: int
    wall_seconds: tuple[float, float]
    executions: tuple[float, float]

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time per epoch."""
        return self.wall_seconds[0] / self.epochs


def aggregate(results: Iterable[Mapping[str, Any]]) -> dict[str, RowStats]:
    """Group finished runs by row and reduce each row over its seeds.

    Each result holds ``run`` (the ``Run`` as a dict) and ``summary`` (``Trainer.summary``
    plus ``total_seconds``).

    Raises:
        ValueError: if two runs of a row differ in epochs or parameters (they are not the
            same configuration), or a row has a seed twice.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["run"]["row"], []).append(result)
    out: dict[str, RowStats] = {}
    for row, runs in groups.items():
        seeds = sorted(r["run"]["seed"] for r in runs)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"row {row!r} has a seed twice: {seeds}")
        epochs = {r["run"]["epochs"] for r in runs}
        parameters = {r["summary"]["parameters"] for r in runs}
        if len(epochs) != 1 or len(parameters) != 1:
            raise ValueError(f"row {row!r} mixes runs of epochs {epochs} / parameters {parameters}")
        summaries = [r["summary"] for r in runs]
        out[row] = RowStats(
            row=row,
            seeds=tuple(seeds),
            epochs=epochs.pop(),
            r2=mean_std([s["test_r2"] for s in summaries]),
            convergence=mean_std([float(s["convergence_epoch"]) for s in summaries]),
            parameters=parameters.pop(),
            wall_seconds=mean_std([s["total_seconds"] for s in summaries]),
            executions=mean_std([float(s["circuit_evaluations"]) for s in summaries]),
        )
    return out


def r2_at_epoch(
    results: Iterable[Mapping[str, Any]], row: str, epoch: int
) -> tuple[tuple[float, float], int] | None:
    """Mean ± std over seeds of ``row``'s test R² after ``epoch`` epochs, and how many seeds.

    Read from each run's per-epoch history (``Trainer.summary()["history"]``), so rows trained
    for different numbers of epochs can be compared at the same epoch. None when no run of
    ``row`` reached ``epoch``.

    Raises:
        ValueError: a history entry whose ``epoch`` is not its position (a malformed run).
    """
    values = []
    for result in results:
        if result["run"]["row"] != row or result["run"]["epochs"] < epoch:
            continue
        entry = result["summary"]["history"][epoch - 1]
        if entry["epoch"] != epoch:
            seed = result["run"]["seed"]
            raise ValueError(f"row {row!r} seed {seed}: history entry {epoch - 1} is epoch {entry['epoch']}")
        values.append(entry["test_r2"])
    return (mean_std(values), len(values)) if values else None


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub Markdown table; every row must have one cell per header.

    Raises:
        ValueError: a row with the wrong number of cells.
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for cells in rows:
        if len(cells) != len(headers):
            raise ValueError(f"row {list(cells)} has {len(cells)} cells for {len(headers)} headers")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paper_cell(value: float | None, digits: int) -> str:
    """The paper's number, or an en dash where the paper has none."""
    return "–" if value is None else f"{value:.{digits}f}"


def per_epoch(results: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Row -> the mean over its seeds of ``summary[key] / epochs`` for each of ``keys``.

    For costs that are the same at every epoch (circuit executions, shots, hardware seconds),
    so a few measured epochs price any number of them.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["run"]["row"], []).append(result)
    return {
        row: {key: mean_std([r["summary"][key] / r["run"]["epochs"] for r in runs])[0] for key in keys}
        for row, runs in groups.items()
    }


def recovered_fraction(
    exact: tuple[float, float], noisy: tuple[float, float], mitigated: tuple[float, float]
) -> tuple[float, bool]:
    """Fraction of the noise-induced R² loss that mitigation recovers, and whether the loss is clear.

    Each argument is a row's (mean, std) R². The fraction is
    (R²_mitigated − R²_noisy) / (R²_exact − R²_noisy): 1 recovers all of the loss, 0 none,
    below 0 makes it worse. The loss is *clear* when it exceeds the two rows' standard
    deviations combined, √(s_exact² + s_noisy²) (a NaN deviation, one seed, counts as 0);
    otherwise the fraction divides by noise and means little. NaN when there is no loss.
    """
    loss = exact[0] - noisy[0]
    spread = math.hypot(*(0.0 if math.isnan(s) else s for s in (exact[1], noisy[1])))
    fraction = (mitigated[0] - noisy[0]) / loss if loss != 0 else math.nan
    return fraction, abs(loss) > spread
