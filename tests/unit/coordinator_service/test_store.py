from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qpumesh.coordinator.store import JobNotFoundError, JobStore
from qpumesh.wire.job_spec import JobSpec
from qpumesh.wire.job_state import JobState

SPEC = JobSpec(name="tiny", model="classical", epochs=3, series_length=40)


def _metrics(epoch: int, r2: float = 0.5) -> dict[str, float | int]:
    return {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "test_loss": 2.0 / epoch,
        "test_r2": r2,
        "wall_seconds": 0.1,
        "circuit_evaluations": 10 * epoch,
        "rounds": epoch,
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = JobStore(tmp_path / "jobs.db")
    yield s
    s.close()


def test_new_job_is_queued_with_its_spec_and_a_state_event(store: JobStore) -> None:
    job = store.create_job(SPEC)
    assert job.state == JobState.QUEUED and job.spec == SPEC and job.epochs_done == 0
    assert job.convergence_epoch == -1 and job.node_max_qubits is None
    events = store.events(job.id)
    assert [(e.seq, e.kind, e.payload) for e in events] == [(1, "state", {"state": "QUEUED"})]


def test_unknown_job_raises_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError, match="no job with id 'nope'"):
        store.get_job("nope")
    with pytest.raises(JobNotFoundError):
        store.set_state("nope", JobState.RUNNING)


def test_jobs_survive_reopening_the_database(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "jobs.db")
    job = first.create_job(SPEC)
    first.set_state(job.id, JobState.RUNNING)
    first.set_node_max_qubits(job.id, [4, 8])
    nodes = [{"address": "a", "calls": 3}]
    first.record_epoch(job.id, _metrics(1), nodes=nodes, summary={"convergence_epoch": 1})
    first.close()

    second = JobStore(tmp_path / "jobs.db")
    again = second.get_job(job.id)
    assert again.state == JobState.RUNNING and again.epochs_done == 1
    assert again.node_max_qubits == (4, 8) and again.convergence_epoch == 1
    assert again.nodes == ({"address": "a", "calls": 3},)
    assert second.epochs(job.id) == [_metrics(1)]
    assert [j.id for j in second.jobs_to_resume()] == [job.id]
    second.close()


def test_database_uses_wal_journal(tmp_path: Path) -> None:
    JobStore(tmp_path / "jobs.db").close()
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_epochs_update_progress_and_emit_fault_then_epoch_events(store: JobStore) -> None:
    job = store.create_job(SPEC)
    store.set_state(job.id, JobState.RUNNING)
    fault = {"time": 1.0, "node": "n1", "kind": "timeout", "detail": "slow"}
    store.record_epoch(job.id, _metrics(1, 0.25), faults=[fault])
    rec = store.record_epoch(job.id, _metrics(2, 0.75))
    assert rec.epochs_done == 2 and rec.final_test_r2 == 0.75
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds == ["state", "state", "fault", "epoch", "epoch"]
    assert store.faults(job.id) == [fault]
    assert store.events(job.id, after_seq=4)[0].payload["metrics"]["epoch"] == 2


def test_rerunning_an_epoch_replaces_it(store: JobStore) -> None:
    job = store.create_job(SPEC)
    store.record_epoch(job.id, _metrics(1))
    store.record_epoch(job.id, _metrics(2))
    store.truncate_epochs(job.id, keep=1)
    assert store.get_job(job.id).epochs_done == 1
    rec = store.record_epoch(job.id, _metrics(2, 0.9))
    assert rec.epochs_done == 2
    assert [m["test_r2"] for m in store.epochs(job.id)] == [0.5, 0.9]


def test_non_finite_r2_is_stored_as_nan(store: JobStore) -> None:
    job = store.create_job(SPEC)
    rec = store.record_epoch(job.id, _metrics(1, float("-inf")))
    assert math.isnan(rec.final_test_r2)


def test_final_states_are_never_left(store: JobStore) -> None:
    job = store.create_job(SPEC)
    store.set_state(job.id, JobState.FAILED, error="boom")
    assert store.set_state(job.id, JobState.SUCCEEDED).state == JobState.FAILED
    assert store.get_job(job.id).error == "boom"
    assert store.request_cancel(job.id).state == JobState.FAILED


def test_cancel_of_a_queued_job_is_immediate_and_of_a_running_one_is_a_request(store: JobStore) -> None:
    queued = store.create_job(SPEC)
    assert store.request_cancel(queued.id).state == JobState.CANCELLED
    running = store.create_job(SPEC)
    store.set_state(running.id, JobState.RUNNING)
    rec = store.request_cancel(running.id)
    assert rec.state == JobState.RUNNING and rec.cancel_requested


def test_list_jobs_newest_first_with_state_filter_and_limit(store: JobStore) -> None:
    ids = [store.create_job(SPEC, now=1000.0 + i).id for i in range(3)]
    store.set_state(ids[1], JobState.RUNNING)
    assert [j.id for j in store.list_jobs()] == ids[::-1]
    assert [j.id for j in store.list_jobs(limit=2)] == [ids[2], ids[1]]
    assert [j.id for j in store.list_jobs(state=JobState.RUNNING)] == [ids[1]]
    assert [j.id for j in store.jobs_to_resume()] == ids


def test_wait_for_events_wakes_up_when_an_event_is_written(store: JobStore) -> None:
    job = store.create_job(SPEC)
    threading.Timer(0.2, lambda: store.log(job.id, "hello")).start()
    start = time.monotonic()
    events = store.wait_for_events(job.id, after_seq=1, timeout=5.0)
    assert time.monotonic() - start < 2.0
    assert [(e.kind, e.payload) for e in events] == [("log", {"message": "hello"})]
    assert store.wait_for_events(job.id, after_seq=2, timeout=0.05) == []


def test_event_sequence_numbers_stay_unique_under_concurrent_writers(store: JobStore) -> None:
    job = store.create_job(SPEC)

    def write() -> None:
        for i in range(20):
            store.log(job.id, str(i))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in store.events(job.id)]
    assert seqs == list(range(1, 82))


def test_a_store_from_before_owners_and_bounds_still_lists_and_its_bad_jobs_fail(tmp_path: Path) -> None:
    # Defect 8: jobs stored with a 2 MB `extra` (or series_length=1e7) made every listing
    # fail. A store written then opens, gains owners, and lists such jobs cheaply, marked.
    import json

    from qpumesh.coordinator.config import CoordinatorConfig
    from qpumesh.coordinator.job_records import INVALID_SPEC
    from qpumesh.coordinator.jobs import JobManager

    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE jobs (id TEXT PRIMARY KEY, spec_json TEXT NOT NULL, state TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, epochs_done INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '', final_test_r2 REAL DEFAULT 0,
        convergence_epoch INTEGER NOT NULL DEFAULT -1, summary_json TEXT NOT NULL DEFAULT '{}',
        nodes_json TEXT NOT NULL DEFAULT '[]', node_max_qubits_json TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0);"""
    )
    huge = SPEC.to_dict() | {"extra": {"blob": "x" * 2_000_000}, "name": "n" * 5000}
    del huge["series"]
    endless = SPEC.to_dict() | {"series_length": 10_000_000}
    for job_id, spec in (("a", huge), ("b", endless), ("c", SPEC.to_dict())):
        conn.execute(
            "INSERT INTO jobs (id, spec_json, state, created_at, updated_at) VALUES (?, ?, 'QUEUED', 1, 1)",
            (job_id, json.dumps(spec)),
        )
    conn.commit()
    conn.close()

    store = JobStore(path)
    jobs, _ = store.page(None, None, 10)
    by_id = {job.id: job for job in jobs}
    assert set(by_id) == {"a", "b", "c"} and all(job.owner == "" for job in jobs)
    assert by_id["c"].spec == SPEC
    assert "name: 5000 characters; at most 200" in by_id["a"].spec.extra[INVALID_SPEC]
    assert len(by_id["a"].spec.name) == 200 and len(str(by_id["a"].spec.extra)) < 2000
    assert "series_length" in by_id["b"].spec.extra[INVALID_SPEC]
    store.close()

    manager = JobManager(CoordinatorConfig(host="127.0.0.1", port=0, data_dir=tmp_path, in_process=True))
    manager.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(manager.job(i).final for i in "abc"):
            time.sleep(0.05)
        assert [manager.job(i).state for i in "abc"] == [JobState.FAILED, JobState.FAILED, JobState.SUCCEEDED]
        assert "stored before the current bounds" in manager.job("b").error
    finally:
        manager.close()
