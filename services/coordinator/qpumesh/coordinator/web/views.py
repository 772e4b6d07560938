"""The dashboard's data: the mesh, the jobs, one job, as plain JSON-ready dicts.

The HTML pages render these once on the server and the page's script fetches them again
every second (``/api/...``), so what a page shows and what the API returns are one thing.
Every value is JSON: NaN and infinities (a diverged loss, an undefined R²) become None.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from google.protobuf.json_format import MessageToDict

from qpumesh.coordinator.store import JobNotFoundError, JobRecord

if TYPE_CHECKING:
    from qpumesh.coordinator.jobs import JobManager

EVENTS_SHOWN = 30
"""Newest log and fault events shown on a job's page."""


def finite(value: Any) -> float | None:
    """Return ``value`` as a float, or None when it is NaN or infinite (JSON has neither)."""
    number = float(value)
    return number if math.isfinite(number) else None


def mesh_view(manager: JobManager) -> dict[str, Any]:
    """Return every node with its health, load, latencies and fault events, and the executor's counters."""
    faults: dict[str, dict[str, int]] = defaultdict(dict)
    for (address, kind), count in manager.executor.fault_counts().items():
        faults[address][kind] = count
    nodes: list[dict[str, Any]] = []
    for stats in manager.node_stats():
        node: dict[str, Any] = MessageToDict(
            stats, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        node["faults"] = faults.get(stats.address, {})
        nodes.append(node)
    return {"time": time.time(), "nodes": nodes, "counters": manager.executor.stats.snapshot()}


def job_summary(job: JobRecord, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return a job as one row of the jobs table."""
    last = history[-1] if history else None
    return {
        "id": job.id,
        "name": job.spec.name,
        "state": job.state.label,
        "task": job.spec.task,
        "model": job.spec.model,
        "epochs_done": job.epochs_done,
        "epochs": job.spec.epochs,
        "test_r2": finite(last["test_r2"]) if last else None,
        "train_loss": finite(last["train_loss"]) if last else None,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "error": job.error,
    }


def visible_job(manager: JobManager, job_id: str, owner: str | None) -> JobRecord:
    """Return the job if the viewer may see it (``owner`` None: every job).

    Raises:
        JobNotFoundError: an unknown job, or another owner's (its existence is not revealed).
    """
    job = manager.job(job_id)
    if owner is not None and job.owner != owner:
        raise JobNotFoundError(job_id)
    return job


def jobs_view(manager: JobManager, limit: int = 50, owner: str | None = None) -> dict[str, Any]:
    """Return the newest jobs (``owner``'s only, unless None) with their last epoch's numbers."""
    jobs = manager.jobs(limit=limit) if owner is None else manager.page(None, owner, limit)[0]
    return {"jobs": [job_summary(job, manager.history(job.id)[-1:]) for job in jobs]}


def job_view(manager: JobManager, job_id: str, owner: str | None = None) -> dict[str, Any]:
    """One job: its spec, progress, per-epoch curves and newest events.

    Raises:
        JobNotFoundError: for an unknown job, or one not of ``owner`` (when not None).
    """
    job = visible_job(manager, job_id, owner)
    history = manager.history(job_id)
    events = []
    for event in manager.events(job_id)[-EVENTS_SHOWN * 4 :]:
        if event.kind in ("log", "fault", "state"):
            payload = dict(event.payload)
            text = payload.get("message") or payload.get("state") or ""
            if event.kind == "fault":
                text = f"{payload.get('kind')} on {payload.get('node')}: {payload.get('detail')}"
            events.append({"seq": event.seq, "time": event.time, "kind": event.kind, "text": str(text)})
    curves: dict[str, list[float | None]] = {
        name: [finite(m[name]) for m in history] for name in ("train_loss", "test_loss", "test_r2")
    }
    curves["epoch"] = [int(m["epoch"]) for m in history]
    return {
        "job": job_summary(job, history),
        "spec": job.spec.to_dict(),
        "curves": curves,
        "convergence_epoch": job.convergence_epoch,
        "events": events[-EVENTS_SHOWN:],
    }


def predictions_view(manager: JobManager, job_id: str, owner: str | None = None) -> dict[str, Any]:
    """Return the best checkpoint's predictions over every window (empty before the first epoch).

    Raises:
        JobNotFoundError: for an unknown job, or one not of ``owner`` (when not None).
    """
    visible_job(manager, job_id, owner)
    _, predictions = manager.results(job_id)
    if predictions is None:
        return {"targets": [], "predictions": [], "train_size": 0}
    return {
        "targets": [finite(v) for v in predictions["target"].tolist()],
        "predictions": [finite(v) for v in predictions["prediction"].tolist()],
        "train_size": int(predictions["split"]),
    }
