"""The resumable cache of the studies: a finished run is never run again, a changed one is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from study_cache import Run, RunCache

from qpumesh.coordinator.executor import CircuitResult


def _run(**changes: object) -> Run:
    fields: dict[str, object] = {
        "study": "tables",
        "row": "pendulum/distributed",
        "seed": 0,
        "epochs": 20,
        "fields": {"task": "pendulum", "model": "distributed"},
    }
    fields.update(changes)
    return Run(**fields)  # type: ignore[arg-type]


def test_key_depends_on_what_decides_the_numbers_only() -> None:
    base = _run()
    assert base.key == _run().key
    assert base.key == _run(priority=99).key
    for changed in (
        _run(seed=1),
        _run(epochs=100),
        _run(fields={"task": "pendulum", "model": "centric"}),
        _run(nodes=({"readout_error": 0.02},)),
        _run(keep_predictions=True),
    ):
        assert changed.key != base.key
    assert base.file_name == f"tables-pendulum_distributed-s0-{base.key}.json"


def test_saved_runs_are_loaded_and_not_missing(tmp_path: Path) -> None:
    cache = RunCache(tmp_path / "runs")
    first, second = _run(seed=0, priority=5), _run(seed=1, priority=1)
    assert cache.load(first) is None
    assert cache.missing([first, second]) == [second, first]  # priority order
    cache.save(first, {"summary": {"test_r2": 0.97}})
    assert cache.load(first) == {"summary": {"test_r2": 0.97}}
    assert cache.missing([first, second]) == [second]
    # a new cache on the same directory (a restarted command) sees the same state
    assert RunCache(tmp_path / "runs").missing([first, second]) == [second]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [first.file_name]  # no temporary left


def test_a_changed_definition_is_run_again(tmp_path: Path) -> None:
    cache = RunCache(tmp_path)
    cache.save(_run(epochs=20), {"summary": {}})
    assert cache.missing([_run(epochs=30)]) == [_run(epochs=30)]


def test_stale_lists_the_files_of_an_earlier_budget_only(tmp_path: Path) -> None:
    cache = RunCache(tmp_path)
    assert cache.stale([_run()]) == []  # no directory yet
    old, kept = _run(epochs=3), _run(epochs=8)
    cache.save(old, {"summary": {}})
    cache.save(kept, {"summary": {}})
    (tmp_path / "sessions.jsonl").write_text("{}\n", encoding="utf-8")  # the session log is not a run
    assert cache.stale([kept]) == [tmp_path / old.file_name]
    assert cache.stale([old, kept]) == []


def test_nodes_executor_routes_each_partition_to_its_node() -> None:
    from study_runs import NodesExecutor

    class Node:
        def __init__(self, name: str) -> None:
            self.name = name

        def run_round(self, tasks: list[object]) -> list[CircuitResult]:
            return [CircuitResult(np.zeros((2, 1)), None, self.name, executions=2) for _ in tasks]

    class Task:
        def __init__(self, key: str) -> None:
            self.key = key

    executor = NodesExecutor([Node("noisy"), Node("clean")])  # type: ignore[list-item]
    tasks = [Task(k) for k in ("f/0", "f/1", "i/0", "o/1", "g/2")]
    results = executor.run_round(tasks)  # type: ignore[arg-type]
    assert [r.node for r in results] == ["noisy", "clean", "noisy", "clean", "noisy"]
    snapshot = executor.stats.snapshot()
    assert (snapshot["rounds"], snapshot["tasks"], snapshot["circuit_evaluations"]) == (1, 5, 10)
