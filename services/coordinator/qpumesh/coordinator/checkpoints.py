"""Per-job training checkpoints: ``last.pt`` every epoch, ``best.pt`` at the lowest training loss.

Layout under the checkpoint root (``<data dir>/checkpoints``)::

    <job id>/last.pt   the trainer after its latest completed epoch (resume point)
    <job id>/best.pt   the trainer after the epoch with the lowest *training* loss
                       (used by Predict / GetResults; the test set never picks a model)

Each file is one ``torch.save`` of a plain dict::

    {"format": 1, "epoch": int, "train_loss": float,
     "node_max_qubits": [int, ...], "trainer": Trainer.state_dict()}

and is loaded with ``torch.load(weights_only=True)``, so only tensors and plain
containers are ever unpickled. Writes are atomic and durable: the bytes go to a
temporary file in the same directory, which is flushed and fsync'ed, renamed
over the target with ``os.replace`` and followed by an fsync of the directory.
A crash therefore leaves either the previous or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = 1
LAST = "last.pt"
BEST = "best.pt"
_JOB_ID = re.compile(r"[A-Za-z0-9_.-]+")


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be used (unreadable, wrong format)."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        epoch: completed epochs when it was written.
        train_loss: the training loss of that epoch.
        node_max_qubits: the node sizes the model was planned for.
        trainer: ``Trainer.state_dict()`` to hand to ``Trainer.load_state_dict``.
    """

    epoch: int
    train_loss: float
    node_max_qubits: tuple[int, ...]
    trainer: dict[str, Any]


class CheckpointStore:
    """Writes and reads the checkpoints of every job under one root directory.

    Args:
        root: the directory holding one sub-directory per job (created on demand).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._best_loss: dict[str, float] = {}
        self._lock = threading.Lock()

    def job_dir(self, job_id: str) -> Path:
        """Return the directory of ``job_id``'s checkpoints.

        Raises:
            ValueError: for an id that could escape the root (path separators, "..").
        """
        if not _JOB_ID.fullmatch(job_id) or job_id in {".", ".."}:
            raise ValueError(f"job_id: {job_id!r} is not a valid job id")
        return self.root / job_id

    def save(
        self,
        job_id: str,
        trainer_state: Mapping[str, Any],
        *,
        epoch: int,
        train_loss: float,
        node_max_qubits: Sequence[int],
    ) -> bool:
        """Write ``last.pt``, and ``best.pt`` too when ``train_loss`` is the lowest so far.

        Args:
            job_id: the job.
            trainer_state: ``Trainer.state_dict()`` after the epoch.
            epoch: completed epochs.
            train_loss: the epoch's training loss (decides ``best.pt``).
            node_max_qubits: the node sizes the model was planned for.

        Returns:
            Whether ``best.pt`` was (re)written.
        """
        directory = self.job_dir(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epoch": int(epoch),
            "train_loss": float(train_loss),
            "node_max_qubits": [int(q) for q in node_max_qubits],
            "trainer": dict(trainer_state),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        with self._lock:
            _atomic_write(directory / LAST, data)
            best = self._best(job_id)
            is_best = (
                best is None
                or not math.isfinite(best)
                or (math.isfinite(train_loss) and train_loss < best)
            )
            if is_best:
                _atomic_write(directory / BEST, data)
                self._best_loss[job_id] = float(train_loss)
        return is_best

    def delete(self, job_id: str) -> None:
        """Remove every checkpoint of ``job_id`` (nothing to do when it has none)."""
        with self._lock:
            self._best_loss.pop(job_id, None)
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def load_last(self, job_id: str) -> Checkpoint | None:
        """Load the resume point of ``job_id``, or None if no epoch was checkpointed."""
        return self._load(self.job_dir(job_id) / LAST)

    def load_best(self, job_id: str) -> Checkpoint | None:
        """Load the lowest-training-loss checkpoint of ``job_id``, or None if there is none yet."""
        return self._load(self.job_dir(job_id) / BEST)

    def _best(self, job_id: str) -> float | None:
        """Return the training loss of ``best.pt`` (cached; read from disk after a restart)."""
        if job_id not in self._best_loss:
            best = self.load_best(job_id)
            if best is None:
                return None
            self._best_loss[job_id] = best.train_loss
        return self._best_loss[job_id]

    @staticmethod
    def _load(path: Path) -> Checkpoint | None:
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a qpumesh checkpoint of format {CHECKPOINT_FORMAT}")
        trainer = payload.get("trainer")
        if not isinstance(trainer, dict):
            raise CheckpointError(f"{path}: checkpoint has no trainer state")
        return Checkpoint(
            epoch=int(payload["epoch"]),
            train_loss=float(payload["train_loss"]),
            node_max_qubits=tuple(int(q) for q in payload["node_max_qubits"]),
            trainer=trainer,
        )


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old or the new file whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
