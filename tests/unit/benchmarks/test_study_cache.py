"""The resumable cache of the studies: a finished run is never run again, a changed one is."""

from __future__ import annotations

from pathlib import Path

from study_cache import Run, RunCache


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


def test_nodes_executor_routes_each_partition_to_its_node() -> None:
    from study_runs import NodesExecutor

    class Node:
        def __init__(self, name: str) -> None:
            self.name = name

        def run_round(self, tasks: list[object]) -> list[str]:
            return [self.name for _ in tasks]

    class Task:
        def __init__(self, key: str) -> None:
            self.key = key
            self.values = __import__("numpy").zeros((2, 3))
            self.jacobian = False
            self.shots = 0

    executor = NodesExecutor([Node("noisy"), Node("clean")])  # type: ignore[list-item]
    tasks = [Task(k) for k in ("f/0", "f/1", "i/0", "o/1", "g/2")]
    assert executor.run_round(tasks) == ["noisy", "clean", "noisy", "clean", "noisy"]  # type: ignore[arg-type]
    assert executor.stats.snapshot()["rounds"] == 1
