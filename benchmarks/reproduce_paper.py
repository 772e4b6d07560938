"""Reproduce the paper's Tables I (damped pendulum) and II (NARMA) in process.

Each experiment trains one model from the JobSpec defaults (paper settings: 100
epochs, batch 10, window 4, RMSprop 0.01, float64, exact expectations) through an
``InProcessExecutor`` running the node's batched engine, and reports the FINAL test
R² (no model selection on the test set), the convergence epoch (first epoch after
which the test R² stays within 0.01 of its final value) and the wall time, next to
the paper's numbers. Torch uses one thread.

Usage:
    python benchmarks/reproduce_paper.py                      # every experiment, 100 epochs
    python benchmarks/reproduce_paper.py --only pendulum-centric-4 pendulum-distributed
    python benchmarks/reproduce_paper.py --only 'narma2-*' --epochs 20 --json /tmp/narma.json
    python benchmarks/reproduce_paper.py --only pendulum-distributed --set layers=3 --set partitions=3

``--list`` prints the experiment names; ``--set FIELD=VALUE`` overrides a JobSpec
field in every selected experiment (ablations); ``--log`` prints every epoch;
``--from-json A.json B.json`` prints one table from runs made in separate processes.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.job_spec import JobSpec


@dataclass(frozen=True)
class Experiment:
    name: str
    fields: dict[str, Any]
    paper_r2: float | None
    paper_convergence: int | None


def _experiments() -> list[Experiment]:
    table_i = {3: (0.9898, 81), 4: (0.9913, 68), 5: (0.9938, 38), 6: (0.9903, 27)}
    table_ii = {3: (0.5477, 2), 4: (0.8611, 2), 5: (0.2651, 2), 6: (0.7799, 2)}
    out: list[Experiment] = []
    for task, prefix, table, distributed in (
        ({"task": "pendulum"}, "pendulum", table_i, (0.9936, 31)),
        ({"task": "narma", "narma_order": 2, "series_length": 300}, "narma2", table_ii, (0.7523, 2)),
        ({"task": "narma", "narma_order": 5, "series_length": 300}, "narma5", {}, None),
    ):
        for qubits in (3, 4, 5, 6):
            paper = table.get(qubits)
            out.append(
                Experiment(
                    f"{prefix}-centric-{qubits}",
                    {**task, "model": "centric", "qubits": qubits},
                    paper[0] if paper else None,
                    paper[1] if paper else None,
                )
            )
        out.append(
            Experiment(
                f"{prefix}-distributed",
                {**task, "model": "distributed", "qubits": 4},
                distributed[0] if distributed else None,
                distributed[1] if distributed else None,
            )
        )
        out.append(Experiment(f"{prefix}-classical", {**task, "model": "classical", "qubits": 4}, None, None))
    return out


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(experiment: Experiment, epochs: int, overrides: dict[str, Any], log: bool) -> dict[str, Any]:
    spec = JobSpec.from_dict({**experiment.fields, **overrides, "epochs": epochs, "name": experiment.name})
    executor = None if spec.model == "classical" else InProcessExecutor()
    trainer = Trainer(spec, executor)
    start = time.perf_counter()
    for _ in range(spec.epochs):
        m = trainer.train_epoch()
        if log:
            print(
                f"  {experiment.name} epoch {m.epoch:3d} train {m.train_loss:.5f} test {m.test_loss:.5f} "
                f"R2 {m.test_r2:.4f} {m.wall_seconds:.2f}s",
                flush=True,
            )
    summary = trainer.summary()
    summary.update(
        name=experiment.name,
        spec=spec.to_dict(),
        paper_r2=experiment.paper_r2,
        paper_convergence=experiment.paper_convergence,
        total_seconds=time.perf_counter() - start,
        seconds_per_epoch=summary["wall_seconds"] / max(1, summary["epochs"]),
    )
    return summary


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'experiment':<22} {'ansatz':<8} {'L':>2} {'M':>2} {'seed':>4} {'params':>6} "
        f"{'R2 final':>9} {'conv':>4} "
        f"{'paper R2':>8} {'paper conv':>10} {'s/epoch':>7} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        spec = r["spec"]
        quantum = spec["model"] != "classical"
        partitions = (r["plan"] or {}).get("partitions", "-") if quantum else "-"
        ansatz, layers = (spec["ansatz"], spec["layers"]) if quantum else ("-", "-")
        print(
            f"{r['name']:<22} {ansatz:<8} {layers:>2} "
            f"{partitions:>2} {spec['seed']:>4} {r['parameters']:>6} "
            f"{r['test_r2']:>9.4f} {r['convergence_epoch']:>4} "
            f"{_fmt(r['paper_r2'], '.4f'):>8} {_fmt(r['paper_convergence'], 'd'):>10} "
            f"{r['seconds_per_epoch']:>7.2f} {r['total_seconds']:>7.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=["*"], metavar="NAME", help="experiment names or globs")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per experiment (default %(default)s)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a spec field"
    )
    parser.add_argument("--json", default="", metavar="PATH", help="also write every summary to PATH")
    parser.add_argument("--log", action="store_true", help="print every epoch")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument(
        "--from-json", nargs="+", default=[], metavar="PATH", help="print the table of earlier --json files"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    experiments = _experiments()
    if args.list:
        for e in experiments:
            print(e.name, json.dumps(e.fields))
        return 0
    if args.from_json:
        saved: list[dict[str, Any]] = []
        for path in args.from_json:
            with open(path, encoding="utf-8") as handle:
                saved.extend(json.load(handle))
        print_table(saved)
        return 0
    # In the order of --only, so the experiments that matter most can go first.
    selected = [e for pattern in args.only for e in experiments if fnmatch.fnmatch(e.name, pattern)]
    selected = list({e.name: e for e in selected}.values())
    if not selected:
        print(f"no experiment matches {args.only}; see --list", file=sys.stderr)
        return 2
    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = _parse_value(value)
    rows = []
    for experiment in selected:
        rows.append(run(experiment, args.epochs, overrides, args.log))
        print(
            f"{experiment.name}: R2 {rows[-1]['test_r2']:.4f} after {args.epochs} epochs, "
            f"{rows[-1]['seconds_per_epoch']:.2f} s/epoch",
            flush=True,
        )
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(rows, handle, indent=1)
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
