"""The coordinator's records as ``qpumesh.v1`` messages: jobs, events, page tokens."""

from __future__ import annotations

import base64
import binascii

from qpumesh.coordinator.jobs import JobManager
from qpumesh.coordinator.store import EventRecord, JobRecord
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.job_spec import spec_to_proto
from qpumesh.wire.job_state import JobState
from qpumesh.wire.records import from_record

MAX_PAGE_TOKEN_CHARS = 200


def job_to_proto(job: JobRecord, manager: JobManager, *, details: bool = True) -> pb.Job:
    """Return the ``Job`` message of ``job``.

    With ``details`` also its history, faults and the series' values; without (a
    listing), none of them (``spec.series.length`` still says how long the series is).
    """
    msg = pb.Job(
        id=job.id,
        spec=spec_to_proto(job.spec, series_values=details),
        state=job.state.to_proto(),
        epochs_done=job.epochs_done,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error=job.error,
        final_test_r2=job.final_test_r2,
        convergence_epoch=job.convergence_epoch,
        nodes=[from_record(pb.NodeStats, n) for n in job.nodes],
        owner=job.owner,
    )
    if details:
        msg.history.extend(from_record(pb.EpochMetrics, m) for m in manager.history(job.id))
        msg.faults.extend(from_record(pb.FaultEvent, f) for f in manager.faults(job.id))
    return msg


def event_to_proto(event: EventRecord) -> pb.JobEvent:
    """Return the ``JobEvent`` message of a stored event."""
    msg = pb.JobEvent(job_id=event.job_id, seq=event.seq, time=event.time)
    payload = event.payload
    if event.kind == "epoch":
        msg.epoch.CopyFrom(from_record(pb.EpochMetrics, payload["metrics"]))
        msg.nodes.extend(from_record(pb.NodeStats, n) for n in payload.get("nodes", ()))
    elif event.kind == "state":
        msg.state = JobState.parse(str(payload["state"])).to_proto()
    elif event.kind == "fault":
        msg.fault.CopyFrom(from_record(pb.FaultEvent, payload))
    else:
        msg.log = str(payload.get("message", ""))
    return msg


def page_token(cursor: str) -> str:
    """Return the opaque ``next_page_token`` of a store cursor ("" stays "")."""
    return base64.urlsafe_b64encode(cursor.encode()).decode() if cursor else ""


def page_cursor(token: str) -> str:
    """Return the store cursor of a ``page_token`` ("" stays "").

    Raises:
        ValueError: a token this coordinator did not make.
    """
    if not token:
        return ""
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise ValueError(f"{len(token)} characters; not a page token of this coordinator")
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a page token of this coordinator") from None
