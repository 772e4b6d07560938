"""What the job store holds, as values: ``JobRecord``, ``EventRecord``, and their SQLite rows.

``qpumesh.coordinator.store`` writes and reads them; everything else in the coordinator
reads jobs through these frozen records. Values are JSON in the rows (never pickles):
``dumps`` writes them, ``job_from_row`` reads a ``jobs`` row back.

A store written before the current bounds may hold specs they refuse (a 30 MB ``extra``,
``series_length=1e7``). Such a job still reads (``stored_spec``): its strings are cut to
their bounds, ``extra`` is replaced by one entry, ``INVALID_SPEC``, saying what was wrong,
so listing it stays cheap and possible; the job manager fails it instead of running it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qpumesh.wire.job_spec import MAX_EXTRA_VALUE_CHARS, MAX_NAME_CHARS, MAX_PATH_CHARS, JobSpec, SpecError
from qpumesh.wire.job_state import JobState

INVALID_SPEC = "qpumesh.invalid_spec"
"""``extra`` key of a stored spec that the current bounds refuse (the value says why)."""


class JobNotFoundError(KeyError):
    """No job with the given id exists in the store."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"no job with id {self.job_id!r}"


@dataclass(frozen=True)
class JobRecord:
    """One row of the ``jobs`` table.

    Attributes:
        id: the job id handed to the client.
        spec: the validated experiment spec.
        state: where the job is in its lifecycle.
        created_at, updated_at: Unix times.
        epochs_done: completed epochs (equal to the number of ``epochs`` rows).
        error: why the job failed ("" unless FAILED).
        final_test_r2: test R² of the last completed epoch (0 before the first).
        convergence_epoch: from the trainer's summary; -1 until known.
        summary: the trainer's ``summary()`` after the last epoch.
        nodes: node statistics from the last epoch, as ``NodeStats`` field dicts.
        node_max_qubits: the node sizes the job's model was planned for; None
            until the job has started (part of the model's shape, needed to
            rebuild it for predictions).
        cancel_requested: a client asked to cancel the job.
        owner: the principal that submitted it ("" without authentication).
    """

    id: str
    spec: JobSpec
    state: JobState
    created_at: float
    updated_at: float
    epochs_done: int = 0
    error: str = ""
    final_test_r2: float = 0.0
    convergence_epoch: int = -1
    summary: Mapping[str, Any] = field(default_factory=dict)
    nodes: Sequence[Mapping[str, Any]] = ()
    node_max_qubits: tuple[int, ...] | None = None
    cancel_requested: bool = False
    owner: str = ""

    @property
    def final(self) -> bool:
        """Whether the job reached a state it never leaves."""
        return self.state.final


@dataclass(frozen=True)
class EventRecord:
    """One row of the ``events`` table (see the module docstring for the payloads)."""

    job_id: str
    seq: int
    time: float
    kind: str
    payload: Mapping[str, Any]


def dumps(value: Any) -> str:
    """JSON with non-finite floats kept (R² and losses can be ``nan``/``inf``)."""
    return json.dumps(value, allow_nan=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    """Turn numpy scalars/arrays (from metrics) into plain JSON values."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def parse_cursor(cursor: str) -> tuple[float, int]:
    """Split a page cursor ("<created_at>/<rowid>") made by ``JobStore.page``."""
    created_at, sep, position = cursor.partition("/")
    try:
        value, row = float(created_at), int(position)
    except ValueError:
        raise ValueError("not a page token of this coordinator") from None
    if not sep or not math.isfinite(value):
        raise ValueError("not a page token of this coordinator")
    return value, row


def finite(value: Any) -> float:
    """Convert to float for a REAL column; non-finite values become NaN (stored as NULL)."""
    number = float(value)
    return number if math.isfinite(number) else float("nan")


def stored_spec(values: dict[str, Any]) -> JobSpec:
    """Return the spec of a stored job; one the current bounds refuse is kept, marked and cut down."""
    try:
        return JobSpec.from_dict(values)
    except SpecError as error:
        problem = f"stored before the current bounds: {error}"[:MAX_EXTRA_VALUE_CHARS]
    spec = object.__new__(JobSpec)
    limits = {"name": MAX_NAME_CHARS, "csv_column": MAX_NAME_CHARS, "csv_path": MAX_PATH_CHARS}
    for spec_field in dataclasses.fields(JobSpec):
        name = spec_field.name
        if name in ("extra", "series"):
            continue
        value = values.get(name, spec_field.default)
        if name in limits and isinstance(value, str):
            value = value[: limits[name]]
        object.__setattr__(spec, name, value)
    object.__setattr__(spec, "series", ())
    object.__setattr__(spec, "extra", {INVALID_SPEC: problem})
    return spec


def job_from_row(row: sqlite3.Row) -> JobRecord:
    """Build a ``JobRecord`` from a ``jobs`` row."""
    qubits_json = row["node_max_qubits_json"]
    r2 = row["final_test_r2"]
    return JobRecord(
        id=row["id"],
        spec=stored_spec(json.loads(row["spec_json"])),
        state=JobState[row["state"]],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        epochs_done=row["epochs_done"],
        error=row["error"],
        final_test_r2=float("nan") if r2 is None else float(r2),
        convergence_epoch=row["convergence_epoch"],
        summary=json.loads(row["summary_json"]),
        nodes=tuple(json.loads(row["nodes_json"])),
        node_max_qubits=None if qubits_json is None else tuple(json.loads(qubits_json)),
        cancel_requested=bool(row["cancel_requested"]),
        owner=row["owner"],
    )
