"""Write ``docs/results.md`` and its figures from the saved runs of ``benchmarks/results.py``.

Every number in the document comes from the run files; a row lists the seeds it holds, and
rows that have not run are listed as missing rather than left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from study_plots import plot_bars, plot_losses, plot_predictions
from study_runs import HARDWARE_SHOTS, NOISE_ROWS, PAPER, TABLE_TASKS, ZNE_ROWS, Budget
from study_tables import (
    RowStats,
    aggregate,
    format_mean_std,
    markdown_table,
    paper_cell,
    per_epoch,
    recovered_fraction,
)

from qpumesh.wire.hardware import PRESETS

TASK_TITLES = {
    "pendulum": "Table I — damped pendulum",
    "narma2": "Table II — NARMA-2 as the paper writes it (task `narma2`)",
    "narma2-chen": "Table II on Chen's NARMA-2 (task `narma`, order 2)",
}
MODEL_LABELS = {
    "centric-3": "centric, 3 qubits",
    "centric-4": "**centric, 4 qubits**",
    "centric-5": "centric, 5 qubits",
    "centric-6": "centric, 6 qubits",
    "distributed": "**distributed, 4 qubits (2 × 2)**",
    "classical": "classical LSTM (d_h = 3)",
}


def _ms(stats: tuple[float, float], digits: int) -> str:
    return format_mean_std(stats[0], stats[1], digits)


def _seeds(row: RowStats) -> str:
    return str(len(row.seeds)) if len(row.seeds) > 1 else f"1 (seed {row.seeds[0]})"


def _by_study(results: Sequence[Mapping[str, Any]], study: str) -> list[Mapping[str, Any]]:
    return [r for r in results if r["run"]["study"] == study]


def tables_section(
    results: Sequence[Mapping[str, Any]], images: Path, doc_dir: Path, study: str = "tables"
) -> str:
    """Tables I and II (three series) with the paper's values, and their figures."""
    chosen = _by_study(results, study)
    stats = aggregate(chosen)
    out = []
    suffix = "" if study == "tables" else f", {study}"
    for prefix in TABLE_TASKS:
        if not any(r["run"]["row"].startswith(prefix + "/") for r in chosen):
            continue
        out.append(f"### {TASK_TITLES[prefix]}{suffix}\n")
        paper_prefix = "narma2" if prefix.startswith("narma2") else prefix
        rows = []
        for model, label in MODEL_LABELS.items():
            row = stats.get(f"{prefix}/{model}")
            paper = PAPER.get(f"{paper_prefix}/{model}")
            if row is None:
                rows.append([label, *(["not run"] + ["–"] * 7)])
                continue
            rows.append(
                [
                    label,
                    str(row.parameters),
                    _seeds(row),
                    f"**{_ms(row.r2, 4)}**",
                    paper_cell(paper[0] if paper else None, 4),
                    _ms(row.convergence, 1),
                    paper_cell(paper[1] if paper else None, 0),
                    _ms(row.wall_seconds, 0),
                    f"{row.seconds_per_epoch:.2f}",
                ][: 1 + 8]
            )
        headers = [
            "model",
            "params",
            "seeds",
            "final test R²",
            "paper R²",
            "conv. epoch",
            "paper conv.",
            "wall s",
            "s/epoch",
        ]
        out.append(markdown_table(headers, rows))
        out.append(_task_figures(prefix, chosen, images, doc_dir, "" if study == "tables" else f"-{study}"))
    return "\n".join(out)


def _task_figures(
    prefix: str, results: Sequence[Mapping[str, Any]], images: Path, doc_dir: Path, tag: str
) -> str:
    predictions: dict[str, Any] = {}
    histories: dict[str, list[Any]] = {}
    for model in ("centric-4", "distributed"):
        runs = sorted(
            (r for r in results if r["run"]["row"] == f"{prefix}/{model}"), key=lambda r: r["run"]["seed"]
        )
        if not runs:
            continue
        label = MODEL_LABELS[model].strip("*")
        histories[label] = [r["summary"]["history"] for r in runs]
        if "predictions" in runs[0]:
            r2 = runs[0]["summary"]["test_r2"]
            predictions[f"{label}, seed {runs[0]['run']['seed']} (test R² {r2:.4f})"] = runs[0]["predictions"]
    lines = []
    if predictions:
        path = plot_predictions(
            predictions,
            f"{TASK_TITLES[prefix].split(' — ')[-1]}: predictions",
            images / f"{prefix}{tag}-predictions.png",
        )
        lines.append(f"![{prefix} predictions]({path.relative_to(doc_dir)})")
    if histories:
        path = plot_losses(histories, f"{prefix}: loss per epoch", images / f"{prefix}{tag}-loss.png")
        lines.append(f"![{prefix} loss]({path.relative_to(doc_dir)})")
    return "\n\n".join(lines) + "\n"


def scale_section(results: Sequence[Mapping[str, Any]], images: Path, doc_dir: Path) -> str:
    """The scale study's table (both series) and a bar chart of its R²."""
    runs = _by_study(results, "scale")
    stats = aggregate(runs)
    spec_of = {r["run"]["row"]: r for r in runs}
    order = sorted(stats, key=lambda row: (row.split("/")[0], int(row.rsplit("-", 1)[1]), row))
    rows = []
    for name in order:
        row, example = stats[name], spec_of[name]
        fields = example["run"]["fields"]
        plan = example["summary"].get("plan") or {}
        task, model = name.split("/")
        shape = _shape(plan.get("input_sizes") or [fields["qubits"]])
        rows.append(
            [
                task,
                model.split("-")[0] + (" (VJP rounds)" if fields.get("gradient_mode") == "vjp" else ""),
                str(fields["qubits"]),
                shape,
                str(row.parameters),
                _seeds(row),
                str(row.epochs),
                f"**{_ms(row.r2, 4)}**",
                _ms(row.convergence, 1),
                f"{row.executions[0] / row.epochs:,.0f}",
                _ms(row.wall_seconds, 0),
                f"{row.seconds_per_epoch:.2f}",
            ]
        )
    headers = [
        "series",
        "model",
        "width",
        "qubits per circuit",
        "params",
        "seeds",
        "epochs",
        "final test R²",
        "conv. epoch",
        "circuit executions / epoch",
        "wall s",
        "s/epoch",
    ]
    return _table_and_bars("scale", headers, rows, stats=stats, names=order, images=images, doc_dir=doc_dir)


def _table_and_bars(
    study: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    stats: Mapping[str, RowStats],
    names: Sequence[str],
    images: Path,
    doc_dir: Path,
) -> str:
    """A study's table, then a bar chart of the final test R² of its rows ``names`` (if any ran)."""
    text = markdown_table(headers, rows)
    if names:
        path = plot_bars(
            names,
            [stats[n].r2[0] for n in names],
            [stats[n].r2[1] for n in names],
            f"{study} study: final test R²",
            images / f"{study}-r2.png",
        )
        text += f"\n![{study} study R²]({path.relative_to(doc_dir)})\n"
    return text


def _shape(sizes: Sequence[int]) -> str:
    """[4, 4, 4] -> "3 × 4"; unequal parts are listed."""
    if len(set(sizes)) == 1:
        return f"{len(sizes)} × {sizes[0]}"
    return " + ".join(map(str, sizes))


def noise_section(results: Sequence[Mapping[str, Any]], images: Path, doc_dir: Path) -> str:
    """The noise study's table and a bar chart of its R²."""
    runs = _by_study(results, "noise")
    stats = aggregate(runs)
    rows = []
    for name in NOISE_ROWS:
        row = stats.get(name)
        if row is None:
            rows.append([name, "not run", *["–"] * 5])
            continue
        rows.append(
            [
                name,
                _seeds(row),
                str(row.epochs),
                f"**{_ms(row.r2, 4)}**",
                _ms(row.convergence, 1),
                f"{row.executions[0] / row.epochs:,.0f}",
                f"{row.seconds_per_epoch:.2f}",
            ]
        )
    headers = [
        "condition",
        "seeds",
        "epochs",
        "final test R²",
        "conv. epoch",
        "circuit executions / epoch",
        "s/epoch",
    ]
    done = [n for n in NOISE_ROWS if n in stats]
    return _table_and_bars("noise", headers, rows, stats=stats, names=done, images=images, doc_dir=doc_dir)


COSTS = ("circuit_evaluations", "shots", "total_seconds", "hardware_seconds")
"""Summary fields the ZNE and hardware tables show per epoch."""


def zne_section(results: Sequence[Mapping[str, Any]]) -> str:
    """The ZNE study's table: R², the share of the noise's R² loss recovered, and the cost."""
    runs = _by_study(results, "zne")
    stats, costs = aggregate(runs), per_epoch(runs, COSTS)
    exact, noisy = stats.get("exact"), stats.get("depolarizing 0.02 / 0.04")
    rows = []
    for name in ZNE_ROWS:
        row = stats.get(name)
        if row is None:
            rows.append([name, "not run", *["–"] * 5])
            continue
        recovered = "–"
        if name.startswith("+") and exact is not None and noisy is not None:
            fraction, clear = recovered_fraction(exact.r2, noisy.r2, row.r2)
            recovered = f"{fraction:.0%}" + ("" if clear else " (loss within noise)")
        cost = costs[name]
        rows.append(
            [
                name,
                _seeds(row),
                f"**{_ms(row.r2, 4)}**",
                recovered,
                f"{cost['circuit_evaluations']:,.0f}",
                f"{cost['total_seconds']:.2f}",
                f"{cost['hardware_seconds']:,.0f}",
            ]
        )
    headers = [
        "condition",
        "seeds",
        "final test R²",
        "R² loss recovered",
        "circuit executions / epoch",
        "emulation s / epoch",
        "hardware s / epoch (superconducting)",
    ]
    return markdown_table(headers, rows)


def hardware_section(results: Sequence[Mapping[str, Any]], long_epochs: int) -> str:
    """The hardware study's table: each preset, exact and 1,000 shots, per epoch and per ``long_epochs``."""
    runs = _by_study(results, "hardware")
    costs = per_epoch(runs, COSTS)
    epochs = {r["run"]["row"]: r["run"]["epochs"] for r in runs}
    rows = []
    for preset in PRESETS:
        for column in HARDWARE_SHOTS:
            name = f"{preset} / {column}"
            cost = costs.get(name)
            if cost is None:
                rows.append([f"`{preset}`", column, "not run", *["–"] * 5])
                continue
            shots = f"{cost['shots']:,.0f}" if cost["shots"] else "0 (costed at 1,000 per circuit)"
            rows.append(
                [
                    f"`{preset}`",
                    column,
                    str(epochs[name]),
                    f"{cost['hardware_seconds']:,.0f} ({_duration(cost['hardware_seconds'])})",
                    _duration(cost["hardware_seconds"] * long_epochs),
                    f"{cost['total_seconds']:.2f}",
                    f"{cost['circuit_evaluations']:,.0f}",
                    shots,
                ]
            )
    headers = [
        "preset",
        "mode",
        "epochs measured",
        "hardware s / epoch",
        f"hardware time, {long_epochs} epochs",
        "emulation s / epoch",
        "circuit executions / epoch",
        "shots / epoch",
    ]
    return markdown_table(headers, rows)


def _duration(seconds: float) -> str:
    """A readable length of time: "4.8 h", "104 h", "159 days"."""
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 5 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:,.0f} days"
    return f"{seconds / (365 * 86400):,.1f} years"


def timing_section(results: Sequence[Mapping[str, Any]], results_dir: Path) -> str:
    """How long the runs took, on what machine, under what load."""
    worker_seconds = math.fsum(r["summary"]["total_seconds"] for r in results)
    sessions = []
    log = results_dir / "sessions.jsonl"
    if log.is_file():
        sessions = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    stamps = sorted((r["started"], r["finished"]) for r in results)
    first = min((a for a, _ in stamps), default="–")
    last = max((b for _, b in stamps), default="–")
    span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds() if stamps else 0.0
    machines = {(r["machine"]["cpu"], r["machine"]["cpus"]) for r in results}
    loads = [r["machine"]["load"][0] for r in results]
    by_study = {}
    for study in ("tables", "long", "scale", "noise", "zne", "hardware"):
        chosen = [r["summary"]["total_seconds"] for r in results if r["run"]["study"] == study]
        by_study[study] = (len(chosen), math.fsum(chosen))
    lines = [
        f"- Runs saved: {len(results)}; training time summed over runs: {worker_seconds / 3600:.2f} h "
        + "("
        + ", ".join(f"{s}: {n} runs, {t / 3600:.2f} h" for s, (n, t) in by_study.items())
        + ").",
        f"- Wall clock: first run started {first}, last finished {last} UTC: {span / 60:.0f} min "
        f"with at most 2 worker processes, including any gaps between restarts of the command (each "
        f"continues from the saved runs; {len(sessions)} session(s) ran to their end).",
        "- Machine: " + "; ".join(f"{cpu}, {n} CPUs" for cpu, n in sorted(machines)) + ", shared with other "
        f"engineers' jobs: 1-minute load average at the start of a run {min(loads, default=0):.1f}–"
        f"{max(loads, default=0):.1f} (median {sorted(loads)[len(loads) // 2] if loads else 0:.1f}). "
        "Wall times are therefore upper bounds and vary with the load, not only with the model.",
    ]
    return "\n".join(lines) + "\n"


def write_report(
    results: Sequence[Mapping[str, Any]],
    budget: Budget,
    doc: Path,
    images: Path,
    results_dir: Path,
    *,
    earlier: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Render the whole document (and figures) from ``results``.

    ``earlier``: saved runs of an earlier budget that the prose quotes (not in any table).
    """
    from study_text import render

    doc_dir = doc.parent
    sections = {
        "tables": tables_section(results, images, doc_dir),
        "long": tables_section(results, images, doc_dir, "long"),
        "scale": scale_section(results, images, doc_dir),
        "noise": noise_section(results, images, doc_dir),
        "zne": zne_section(results),
        "hardware": hardware_section(results, budget.long_epochs),
        "timing": timing_section(results, results_dir),
    }
    doc.write_text(render(sections, budget, results, earlier), encoding="utf-8")
