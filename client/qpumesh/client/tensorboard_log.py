"""``qpumesh train --tensorboard DIR``: a job's epochs as TensorBoard scalars.

Each job gets its own run directory, ``DIR/<job id>``, so ``tensorboard --logdir DIR``
compares jobs side by side. Per epoch (step = epoch number):

- ``loss/train``, ``loss/test``, ``r2/test``;
- ``epoch/seconds``, ``epoch/rounds``, ``epoch/circuit_evaluations``;
- per node (the coordinator's pool statistics sent with the epoch):
  ``nodes/<node>/calls``, ``failures``, ``retries``, ``hedges``, ``p50_latency_ms``,
  ``p95_latency_ms``, ``healthy``.

Written with ``torch.utils.tensorboard`` (the ``tensorboard`` package provides the event
file format); imported only when the flag is given.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qpumesh.v1 import coordinator_pb2 as pb

EPOCH_SCALARS = {
    "loss/train": "train_loss",
    "loss/test": "test_loss",
    "r2/test": "test_r2",
    "epoch/seconds": "wall_seconds",
    "epoch/rounds": "rounds",
    "epoch/circuit_evaluations": "circuit_evaluations",
}
"""Tag -> ``EpochMetrics`` field."""
NODE_SCALARS = ("calls", "failures", "retries", "hedges", "p50_latency_ms", "p95_latency_ms", "healthy")
"""``NodeStats`` fields written per node."""


class TensorBoardLog:
    """Writes a job's epochs to ``directory/<job_id>``; close it when the job ends.

    Args:
        directory: the log directory (``tensorboard --logdir`` points here).
        job_id: the run's name.
    """

    def __init__(self, directory: Path, job_id: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = directory / job_id
        self._writer: Any = SummaryWriter(log_dir=str(self.run_dir))
        self._written: set[int] = set()

    def epoch(self, metrics: pb.EpochMetrics, nodes: Any = ()) -> None:
        """Write one epoch's scalars (an epoch seen twice, on a reconnect, is written once)."""
        if metrics.epoch in self._written:
            return
        self._written.add(metrics.epoch)
        for tag, field in EPOCH_SCALARS.items():
            self._writer.add_scalar(tag, float(getattr(metrics, field)), metrics.epoch)
        for node in nodes:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", node.node_id or node.address)
            for field in NODE_SCALARS:
                self._writer.add_scalar(f"nodes/{name}/{field}", float(getattr(node, field)), metrics.epoch)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
