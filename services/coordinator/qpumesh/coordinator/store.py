"""The coordinator's durable job store: jobs, their epochs and their event log in SQLite.

Everything a client can ask about a job (state, history, progress events, node
statistics, faults) is in one SQLite file, so a coordinator that is killed and
restarted on the same data directory knows every job it ever accepted. Each
write is its own transaction, committed before the call returns, with WAL
journaling and ``synchronous=FULL``; values are JSON, never pickles.

Schema::

    jobs(id, spec_json, state, created_at, updated_at, epochs_done, error,
         final_test_r2, convergence_epoch, summary_json, nodes_json,
         node_max_qubits_json, cancel_requested, owner)
    epochs(job_id, epoch, metrics_json)              -- one row per completed epoch
    events(job_id, seq, time, kind, payload_json)    -- seq increases per job from 1

Event kinds and payloads (they map one to one onto ``JobEvent``):

- ``state``: ``{"state": "RUNNING"}`` (a ``JobState`` name)
- ``epoch``: ``{"metrics": {EpochMetrics fields}, "nodes": [{NodeStats fields}, ...]}``
- ``log``: ``{"message": "..."}``
- ``fault``: ``{FaultEvent fields}``

The store also owns a condition variable that is notified after every new
event, and calls its listeners (``add_listener``) with the id of every job that got
one, so a ``WatchJob`` stream can wait for progress instead of polling. Jobs are listed
a page at a time (``page``: newest first, resumed after an opaque cursor) and deleted
with their epochs and events (``delete_job``). ``owner`` (added to older stores on
open) is the principal that submitted the job.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qpumesh.coordinator.job_records import (
    EventRecord,
    JobNotFoundError,
    JobRecord,
    dumps,
    finite,
    job_from_row,
    parse_cursor,
)
from qpumesh.wire.job_spec import JobSpec
from qpumesh.wire.job_state import JobState

__all__ = ["EVENT_KINDS", "EventRecord", "JobNotFoundError", "JobRecord", "JobStore"]

EVENT_KINDS = ("state", "epoch", "log", "fault")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec_json TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    final_test_r2 REAL DEFAULT 0,
    convergence_epoch INTEGER NOT NULL DEFAULT -1,
    summary_json TEXT NOT NULL DEFAULT '{}',
    nodes_json TEXT NOT NULL DEFAULT '[]',
    node_max_qubits_json TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created_at);
CREATE TABLE IF NOT EXISTS epochs (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    epoch INTEGER NOT NULL,
    metrics_json TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch)
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""


class JobStore:
    """Thread-safe SQLite store of jobs, epochs and events.

    One connection shared by all threads behind a lock: the coordinator's
    writes are a handful per epoch, far from SQLite's limits, and a single
    connection makes each write's transaction boundary obvious.

    Args:
        path: the database file (created with its parent directory), or
            ":memory:" for tests.
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        """Notified (with the store's lock held) after every new event or state change."""
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            columns = {row["name"] for row in self._conn.execute("PRAGMA table_info(jobs)")}
            if "owner" not in columns:  # a store made before jobs had owners
                self._conn.execute("ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        self._listeners: list[Callable[[str], None]] = []
        self._touched: set[str] = set()

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(job_id)`` after every committed write that added events to that job.

        Listeners run on the writing thread, after the commit; they must be quick.
        """
        self._listeners.append(listener)

    def close(self) -> None:
        """Close the connection (waking every waiter); the store is unusable afterwards."""
        with self._lock:
            self._conn.close()
            self.changed.notify_all()

    def wake_waiters(self) -> None:
        """Wake every thread blocked in ``wait_for_events`` (e.g. to let it notice a shutdown)."""
        with self._lock:
            self.changed.notify_all()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; waiters on ``changed`` are woken afterwards."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._touched.clear()
                raise
            self._conn.execute("COMMIT")
            self.changed.notify_all()
            touched, self._touched = self._touched, set()
        for job_id in touched:
            for listener in self._listeners:
                listener(job_id)

    # ----------------------------------------------------------------- jobs

    def create_job(self, spec: JobSpec, *, owner: str = "", now: float | None = None) -> JobRecord:
        """Insert a QUEUED job for ``spec`` owned by ``owner`` (with its first state event)."""
        job_id = uuid.uuid4().hex[:12]
        now = time.time() if now is None else now
        with self._write() as conn:
            conn.execute(
                "INSERT INTO jobs (id, spec_json, state, created_at, updated_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, dumps(spec.to_dict()), JobState.QUEUED.name, now, now, owner),
            )
            self._append(conn, job_id, "state", {"state": JobState.QUEUED.name}, now)
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRecord:
        """Return the job ``job_id``.

        Raises:
            JobNotFoundError: if there is no such job.
        """
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row)

    def list_jobs(self, state: JobState | None = None, limit: int = 0) -> list[JobRecord]:
        """Return jobs, newest first, optionally only those in ``state``; ``limit`` 0 = all."""
        query = "SELECT * FROM jobs"
        params: list[Any] = []
        if state is not None:
            query += " WHERE state = ?"
            params.append(state.name)
        query += " ORDER BY created_at DESC, rowid DESC"
        if limit > 0:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [job_from_row(row) for row in rows]

    def page(
        self, state: JobState | None, owner: str | None, size: int, cursor: str = ""
    ) -> tuple[list[JobRecord], str]:
        """Return one page of jobs, newest first, and the cursor of the next page ("" = last).

        Args:
            state: only jobs in this state (None: all).
            owner: only jobs of this owner (None: everyone's).
            size: jobs per page (>= 1).
            cursor: "" for the first page, else the cursor a previous page returned.

        Raises:
            ValueError: a cursor this store did not make.
        """
        query = "SELECT rowid AS position, * FROM jobs WHERE 1"
        params: list[Any] = []
        if state is not None:
            query += " AND state = ?"
            params.append(state.name)
        if owner is not None:
            query += " AND owner = ?"
            params.append(owner)
        if cursor:
            created_at, position = parse_cursor(cursor)
            query += " AND (created_at < ? OR (created_at = ? AND rowid < ?))"
            params += [created_at, created_at, position]
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(size + 1)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        more = len(rows) > size
        rows = rows[:size]
        after = f"{rows[-1]['created_at']!r}/{rows[-1]['position']}" if more else ""
        return [job_from_row(row) for row in rows], after

    def delete_job(self, job_id: str) -> None:
        """Remove the job, its epochs and its events in one transaction.

        Raises:
            JobNotFoundError: if there is no such job.
        """
        with self._write() as conn:
            self._state(conn, job_id)
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM epochs WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._touched.add(job_id)

    def jobs_to_resume(self) -> list[JobRecord]:
        """Return the QUEUED and RUNNING jobs, oldest first: the work left after a restart."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY created_at, rowid",
                (JobState.QUEUED.name, JobState.RUNNING.name),
            ).fetchall()
        return [job_from_row(row) for row in rows]

    def set_state(self, job_id: str, state: JobState, *, error: str = "", message: str = "") -> JobRecord:
        """Move the job to ``state`` and append a state event (and a log event if ``message``).

        A job in a final state is never moved again; the call then returns it
        unchanged, which makes "cancel" and "finish" races harmless.

        Raises:
            JobNotFoundError: if there is no such job.
        """

        def change(conn: sqlite3.Connection, current: JobState, now: float) -> None:
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                (state.name, error, now, job_id),
            )
            if message:
                self._append(conn, job_id, "log", {"message": message}, now)
            if current != state:
                self._append(conn, job_id, "state", {"state": state.name}, now)

        return self._change_unless_final(job_id, change)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Record that a client wants the job cancelled (cancels a QUEUED job at once).

        A RUNNING job keeps running until the job manager notices the flag;
        a final job is left alone.

        Raises:
            JobNotFoundError: if there is no such job.
        """

        def change(conn: sqlite3.Connection, current: JobState, now: float) -> None:
            conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
            if current == JobState.QUEUED:
                cancelled = JobState.CANCELLED.name
                conn.execute("UPDATE jobs SET state = ? WHERE id = ?", (cancelled, job_id))
                self._append(conn, job_id, "state", {"state": cancelled}, now)

        return self._change_unless_final(job_id, change)

    def set_node_max_qubits(self, job_id: str, node_max_qubits: Sequence[int]) -> None:
        """Remember the node sizes the job's model was planned for."""
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET node_max_qubits_json = ? WHERE id = ?",
                (dumps([int(q) for q in node_max_qubits]), job_id),
            )

    def record_epoch(
        self,
        job_id: str,
        metrics: Mapping[str, Any],
        *,
        nodes: Sequence[Mapping[str, Any]] = (),
        faults: Iterable[Mapping[str, Any]] = (),
        summary: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """Store one completed epoch in a single transaction.

        Writes the epoch row (replacing a row of the same epoch, so re-running
        an epoch after a crash is idempotent), one ``fault`` event per fault, an
        ``epoch`` event with the node statistics, and updates the job's
        progress columns from ``metrics`` and ``summary``.

        Args:
            job_id: the job.
            metrics: ``EpochMetrics.to_dict()``; needs "epoch" (1-based) and "test_r2".
            nodes: node statistics (``NodeStats`` field dicts) at the end of the epoch.
            faults: fault records (``FaultEvent`` field dicts) drained during the epoch.
            summary: the trainer's ``summary()``; "convergence_epoch" is copied.
        """
        epoch = int(metrics["epoch"])
        now = time.time()
        nodes_list = [dict(n) for n in nodes]
        with self._write() as conn:
            self._state(conn, job_id)
            conn.execute(
                "INSERT OR REPLACE INTO epochs (job_id, epoch, metrics_json) VALUES (?, ?, ?)",
                (job_id, epoch, dumps(dict(metrics))),
            )
            for fault in faults:
                self._append(conn, job_id, "fault", dict(fault), now)
            self._append(conn, job_id, "epoch", {"metrics": dict(metrics), "nodes": nodes_list}, now)
            convergence = -1
            if summary is not None and summary.get("convergence_epoch") is not None:
                convergence = int(summary["convergence_epoch"])
            conn.execute(
                "UPDATE jobs SET epochs_done = (SELECT COUNT(*) FROM epochs WHERE job_id = ?),"
                " final_test_r2 = ?, convergence_epoch = ?, summary_json = ?, nodes_json = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    job_id,
                    finite(metrics.get("test_r2", 0.0)),
                    convergence,
                    dumps(dict(summary or {})),
                    dumps(nodes_list),
                    now,
                    job_id,
                ),
            )
        return self.get_job(job_id)

    def truncate_epochs(self, job_id: str, keep: int) -> None:
        """Forget epochs after ``keep`` (used when a resume starts from an older checkpoint)."""
        with self._write() as conn:
            conn.execute("DELETE FROM epochs WHERE job_id = ? AND epoch > ?", (job_id, keep))
            conn.execute(
                "UPDATE jobs SET epochs_done = (SELECT COUNT(*) FROM epochs WHERE job_id = ?) WHERE id = ?",
                (job_id, job_id),
            )

    def log(self, job_id: str, message: str) -> None:
        """Append a ``log`` event."""
        with self._write() as conn:
            self._state(conn, job_id)
            self._append(conn, job_id, "log", {"message": message}, time.time())

    # ----------------------------------------------------------------- reads

    def epochs(self, job_id: str) -> list[dict[str, Any]]:
        """Return the job's epoch metrics in epoch order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT metrics_json FROM epochs WHERE job_id = ? ORDER BY epoch", (job_id,)
            ).fetchall()
        return [json.loads(row["metrics_json"]) for row in rows]

    def events(self, job_id: str, after_seq: int = 0, kind: str | None = None) -> list[EventRecord]:
        """Return the job's events with ``seq > after_seq`` (optionally of one kind), in order."""
        query = "SELECT * FROM events WHERE job_id = ? AND seq > ?"
        params: list[Any] = [job_id, after_seq]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY seq", params).fetchall()
        return [
            EventRecord(row["job_id"], row["seq"], row["time"], row["kind"], json.loads(row["payload_json"]))
            for row in rows
        ]

    def faults(self, job_id: str) -> list[dict[str, Any]]:
        """Return every fault recorded while the job ran, oldest first."""
        return [dict(e.payload) for e in self.events(job_id, kind="fault")]

    def wait_for_events(self, job_id: str, after_seq: int, timeout: float) -> list[EventRecord]:
        """Return events after ``after_seq``, waiting up to ``timeout`` seconds for one to appear.

        Returns early (possibly with no events) whenever the store is written to or
        ``wake_waiters`` is called, so callers can re-check their own stop conditions.
        """
        with self._lock:
            events = self.events(job_id, after_seq)
            if events:
                return events
            self.changed.wait(timeout)
            return self.events(job_id, after_seq)

    # ----------------------------------------------------------------- helpers

    def _change_unless_final(
        self, job_id: str, change: Callable[[sqlite3.Connection, JobState, float], None]
    ) -> JobRecord:
        """Apply ``change(conn, current state, now)`` in one transaction unless the job is final.

        A job in a final state is never changed again, which makes "cancel" and "finish"
        races harmless. Returns the job as it then is.

        Raises:
            JobNotFoundError: if there is no such job.
        """
        with self._write() as conn:
            current = self._state(conn, job_id)
            if not current.final:
                change(conn, current, time.time())
        return self.get_job(job_id)

    def _state(self, conn: sqlite3.Connection, job_id: str) -> JobState:
        row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return JobState[row["state"]]

    def _append(
        self, conn: sqlite3.Connection, job_id: str, kind: str, payload: Mapping[str, Any], now: float
    ) -> int:
        if kind not in EVENT_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(EVENT_KINDS)}; got {kind!r}")
        seq = int(
            conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?", (job_id,)
            ).fetchone()[0]
        )
        conn.execute(
            "INSERT INTO events (job_id, seq, time, kind, payload_json) VALUES (?, ?, ?, ?, ?)",
            (job_id, seq, now, kind, dumps(dict(payload))),
        )
        self._touched.add(job_id)
        return seq


