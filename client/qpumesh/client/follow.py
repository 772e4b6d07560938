"""Following a job: its events as a live progress display until it reaches a final state."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.v1 import coordinator_pb2 as pb


def event_text(event: pb.JobEvent) -> str | None:
    """Describe a non-epoch event in one line (None for epoch events)."""
    from qpumesh.client.coordinator_client import state_name

    kind = event.WhichOneof("kind")
    if kind == "state":
        return f"[job {event.job_id}] state: {state_name(event.state)}"
    if kind == "log":
        return f"[job {event.job_id}] {event.log}"
    if kind == "fault":
        fault = event.fault
        detail = f": {fault.detail}" if fault.detail else ""
        return f"[job {event.job_id}] fault on {fault.node or '?'}: {fault.kind}{detail}"
    return None


def follow(
    client: CoordinatorClient,
    job_id: str,
    stream: TextIO,
    *,
    after_seq: int = 0,
    tty: bool | None = None,
    show_faults: bool = False,
    on_epoch: Callable[[pb.EpochMetrics, Sequence[pb.NodeStats]], None] | None = None,
) -> pb.Job:
    """Show a job's progress on ``stream`` until it reaches a final state; return the final job.

    Node faults are counted on the progress line, or printed one per line with
    ``show_faults``. ``on_epoch`` is called with every epoch (those already done first,
    with the job's last node statistics) and the pool's node statistics after it.
    """
    from qpumesh.client.coordinator_client import job_finished
    from qpumesh.client.progress import ProgressDisplay

    job = client.get(job_id)
    display = ProgressDisplay(stream, job.spec.epochs, tty=tty, show_faults=show_faults)
    for metrics in job.history:
        display.epoch(metrics)
        if on_epoch is not None:
            on_epoch(metrics, job.nodes)
    if not job_finished(job) and not job.history:
        display.start()
    last_seq = after_seq
    try:
        while not job_finished(job):
            for event in client.watch(job_id, after_seq=last_seq):
                last_seq = event.seq
                kind = event.WhichOneof("kind")
                if kind == "epoch":
                    display.epoch(event.epoch)
                    if on_epoch is not None:
                        on_epoch(event.epoch, event.nodes)
                elif kind == "fault":
                    display.fault(event.fault.kind, event_text(event) or "")
                else:
                    text = event_text(event)
                    if text:
                        display.note(text)
            job = client.get(job_id)
            if not job_finished(job):
                time.sleep(0.5)  # the stream ended early (coordinator shutting down); follow again
    finally:
        display.close()
    return job
