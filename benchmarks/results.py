"""Regenerate docs/results.md and its figures: Tables I and II over 5 seeds, scale, noise, ZNE, hardware.

One command trains every run that is not in the results directory yet (at most ``--workers``
processes, each niced), then writes ``docs/results.md`` and ``docs/images/results/*.png`` from
all saved runs. Each run's result is saved as one JSON file as soon as it finishes, so a killed
command continues where it stopped; delete the directory to start from scratch.

Usage:
    python benchmarks/results.py                        # every study, then the document
    python benchmarks/results.py --studies tables       # only Tables I and II
    python benchmarks/results.py --render-only          # the document from the saved runs
    python benchmarks/results.py --list                 # the runs and whether they are saved, and
                                                        # the stale files of an earlier budget

The epochs of each study are flags (``--table-epochs``, ``--scale-epochs``, ``--noise-epochs``,
``--hardware-epochs``; the ZNE study trains ``--noise-epochs``);
their defaults are the budget ``docs/results.md`` was produced with, and a changed value
makes new runs (the epochs are part of each run's key).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from study_cache import Run, RunCache
from study_runs import (
    TABLE_TASKS,
    Budget,
    execute,
    hardware_runs,
    jacobian_centric16_runs,
    machine,
    noise_runs,
    scale_runs,
    table_runs,
    zne_runs,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "docs" / "results" / "runs"
DEFAULT_DOC = ROOT / "docs" / "results.md"
DEFAULT_IMAGES = ROOT / "docs" / "images" / "results"
STUDIES = ("tables", "noise", "scale", "long", "zne", "hardware")

_cache: RunCache | None = None


def _init_worker(directory: str, niceness: int) -> None:
    global _cache
    if niceness:
        os.nice(niceness)
    _cache = RunCache(directory)


def _work(run: Run) -> str:
    """Train one run in a worker; a failure is reported as text (some exceptions do not pickle)."""
    assert _cache is not None
    try:
        result = execute(run, _cache)
    except Exception as error:  # one failed run must not stop the others
        return f"{run.file_name}: FAILED {type(error).__name__}: {error}"
    summary = result["summary"]
    return f"{run.file_name}: R2 {summary['test_r2']:.4f}, {summary['total_seconds']:.0f} s"


def select_runs(studies: list[str], budget: Budget) -> list[Run]:
    """The runs of ``studies`` under ``budget``."""
    runs: list[Run] = []
    if "tables" in studies:
        runs += table_runs(budget.tables)
    if "long" in studies and budget.long_tasks:
        runs += table_runs(budget.long_epochs, study="long", tasks=budget.long_tasks)
    if "scale" in studies:
        runs += scale_runs(budget)
    if "noise" in studies:
        runs += noise_runs(budget.noise, budget.noise_series_length)
    if "zne" in studies:
        runs += zne_runs(budget.noise, budget.noise_series_length)
    if "hardware" in studies:
        runs += hardware_runs(budget.hardware)
    return runs


def run_missing(
    runs: list[Run], cache: RunCache, workers: int, niceness: int, first: Sequence[str] = ()
) -> None:
    """Train the runs ``cache`` lacks with ``workers`` processes, and log the session.

    Runs whose file name matches a glob of ``first`` start before the others.
    """
    todo = cache.missing(runs)
    todo.sort(key=lambda r: not any(fnmatch.fnmatch(r.file_name, g) for g in first))  # stable
    print(f"{len(runs) - len(todo)} of {len(runs)} runs saved; {len(todo)} to run", flush=True)
    if not todo:
        return
    started = time.time()
    with multiprocessing.get_context("fork").Pool(
        workers, _init_worker, (str(cache.directory), niceness), maxtasksperchild=None
    ) as pool:
        for done, line in enumerate(pool.imap_unordered(_work, todo, chunksize=1), 1):
            print(f"[{done}/{len(todo)}] {line}", flush=True)
    session = {
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": time.time() - started,
        "runs": len(todo),
        "workers": workers,
        "machine": machine(),
    }
    with (cache.directory / "sessions.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(session) + "\n")


def _widths(text: str) -> dict[int, int]:
    """``"4:8,12:1"`` -> {4: 8, 12: 1}."""
    out = {}
    for item in filter(None, text.split(",")):
        width, _, value = item.partition(":")
        out[int(width)] = int(value)
    return out


def _modes(text: str) -> dict[int, str]:
    """``"16:vjp"`` -> {16: "vjp"}."""
    out = {}
    for item in filter(None, text.split(",")):
        width, _, mode = item.partition(":")
        out[int(width)] = mode
    return out


def earlier_runs(budget: Budget) -> list[Run]:
    """Runs of an earlier budget the document still quotes (never trained, only read).

    The Jacobian-mode centric-16 runs, once VJP-mode rows replace them at width 16.
    """
    if budget.scale_centric_gradient.get(16, "jacobian") == "jacobian":
        return []
    return jacobian_centric16_runs()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--studies", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument(
        "--workers", type=int, default=2, help="parallel runs, at most 2 (default %(default)s)"
    )
    parser.add_argument(
        "--nice", type=int, default=5, help="niceness added to each worker (default %(default)s)"
    )
    parser.add_argument("--results", default=str(DEFAULT_RESULTS), help="directory of the saved runs")
    parser.add_argument("--doc", default=str(DEFAULT_DOC), help="the document to write")
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="directory of the figures")
    parser.add_argument("--table-epochs", type=int, default=20, help="epochs of Tables I and II")
    parser.add_argument("--long-epochs", type=int, default=100, help="epochs of the long tables")
    parser.add_argument(
        "--long-tasks",
        nargs="*",
        default=["pendulum", "narma2-chen", "narma2"],
        choices=list(TABLE_TASKS),
        help="series whose tables also run --long-epochs (default %(default)s)",
    )
    parser.add_argument(
        "--scale-epochs",
        default="4:8,8:8,12:8,16:8,32:8",
        help="width:epochs of the scale study's distributed rows (default %(default)s)",
    )
    parser.add_argument(
        "--scale-centric-epochs",
        default="4:8,8:8,12:8,16:4",
        help="width:epochs of the scale study's centric rows (default %(default)s)",
    )
    parser.add_argument(
        "--scale-centric-seeds",
        default="",
        help="width:seeds of centric rows that run fewer than 3 seeds (default %(default)s)",
    )
    parser.add_argument(
        "--scale-centric-gradient",
        default="16:vjp",
        help="width:gradient_mode of centric rows not in Jacobian mode, e.g. 16:vjp (default %(default)r)",
    )
    parser.add_argument(
        "--vjp-epoch-seconds",
        type=float,
        default=227.0,
        help="measured VJP-mode centric-16 epoch the VJP rows' epochs were decided from (for the document)",
    )
    parser.add_argument("--noise-epochs", type=int, default=10, help="epochs of the noise study")
    parser.add_argument("--noise-series-length", type=int, default=240, help="pendulum points (noise)")
    parser.add_argument(
        "--hardware-epochs", type=int, default=2, help="epochs of the hardware study (default %(default)s)"
    )
    parser.add_argument(
        "--first", nargs="*", default=[], metavar="GLOB", help="run files matching these first"
    )
    parser.add_argument("--render-only", action="store_true", help="only write the document")
    parser.add_argument("--list", action="store_true", help="list the runs and exit")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 2:
        parser.error("--workers must be 1 or 2 (the machine is shared)")
    budget = Budget(
        args.table_epochs,
        args.long_epochs,
        tuple(args.long_tasks),
        _widths(args.scale_epochs),
        _widths(args.scale_centric_epochs),
        _widths(args.scale_centric_seeds),
        args.noise_epochs,
        args.noise_series_length,
        args.hardware_epochs,
        _modes(args.scale_centric_gradient),
        args.vjp_epoch_seconds,
    )
    runs = select_runs(args.studies, budget)
    cache = RunCache(args.results)
    if args.list:
        for run in sorted(runs, key=lambda r: r.priority):
            print(("saved  " if cache.load(run) is not None else "missing"), run.file_name)
        for path in cache.stale(select_runs(list(STUDIES), budget) + earlier_runs(budget)):
            print("stale  ", path.name, "(no run of this budget reads it)")
        return 0
    if not args.render_only:
        run_missing(runs, cache, args.workers, args.nice, args.first)
    from study_report import write_report

    all_runs = select_runs(list(STUDIES), budget)
    results: list[dict[str, Any]] = [r for r in (cache.load(run) for run in all_runs) if r is not None]
    earlier = [r for r in (cache.load(run) for run in earlier_runs(budget)) if r is not None]
    write_report(results, budget, Path(args.doc), Path(args.images), cache.directory, earlier=earlier)
    print(f"wrote {args.doc} from {len(results)} of {len(all_runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
