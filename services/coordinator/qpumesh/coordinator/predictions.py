"""Predictions of finished (or running) jobs: their best models, loaded once and cached.

A job's best model is its ``best.pt`` checkpoint (the epoch with the lowest training
loss). ``Predictors`` loads it into a ``Trainer`` the first time a client asks for a
prediction or the job's results, and keeps the few most recent ones, reloading a job's
model when its ``best.pt`` changes. Loading a model must not disturb a job training at
the same time: it holds ``TRAINER_INIT`` like the job runner does, and restores torch's
global RNG afterwards.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from qpumesh.coordinator.checkpoints import CheckpointStore
from qpumesh.coordinator.executor import RoundRunner
from qpumesh.coordinator.store import JobRecord
from qpumesh.coordinator.training import TRAINER_INIT, Trainer
from qpumesh.wire.job_spec import JobSpec

CACHE_SIZE = 4
"""Models kept loaded; the least recently used is dropped first."""


class NoCheckpointError(RuntimeError):
    """The job has not completed an epoch yet, so there is no model to predict with."""


@dataclass
class _Predictor:
    """A model loaded from ``best.pt``, with its cached results."""

    trainer: Trainer
    epoch: int
    mtime_ns: int
    lock: threading.Lock
    predictions: dict[str, npt.NDArray[Any]] | None = None


class Predictors:
    """The best models of jobs, for Predict and GetResults.

    Args:
        checkpoints: where the jobs' ``best.pt`` files are.
        executor_for: the executor a model of a spec runs its circuits on (None for the
            classical model).
    """

    def __init__(
        self, checkpoints: CheckpointStore, executor_for: Callable[[JobSpec], RoundRunner | None]
    ) -> None:
        self.checkpoints = checkpoints
        self.executor_for = executor_for
        self._cache: OrderedDict[str, _Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def predict(self, job: JobRecord, series: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], int]:
        """One-step-ahead predictions of the job's best model and the epoch of its checkpoint.

        Raises:
            NoCheckpointError: before the job's first epoch completed.
            ValueError: for a series shorter than the job's window or not finite.
        """
        predictor = self._load(job)
        with predictor.lock:
            return predictor.trainer.predict(series), predictor.epoch

    def predictions(self, job: JobRecord) -> dict[str, npt.NDArray[Any]] | None:
        """Return the best model's predictions over every window (``Trainer.predictions()``), or None."""
        try:
            predictor = self._load(job)
        except NoCheckpointError:
            return None
        with predictor.lock:
            if predictor.predictions is None:
                predictor.predictions = predictor.trainer.predictions()
            return predictor.predictions

    def forget(self, job_id: str) -> None:
        """Drop the job's loaded model (its checkpoints are being deleted)."""
        with self._lock:
            self._cache.pop(job_id, None)

    def _load(self, job: JobRecord) -> _Predictor:
        """Return the job's best model, loaded once per ``best.pt`` version."""
        path = self.checkpoints.job_dir(job.id) / "best.pt"
        try:
            mtime_ns = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise NoCheckpointError(
                f"job {job.id} has no checkpoint yet (it completes its first epoch before it can predict)"
            ) from None
        with self._lock:
            cached = self._cache.get(job.id)
            if cached is not None and cached.mtime_ns == mtime_ns:
                self._cache.move_to_end(job.id)
                return cached
        checkpoint = self.checkpoints.load_best(job.id)
        if checkpoint is None:
            raise NoCheckpointError(f"job {job.id} has no checkpoint yet")
        with TRAINER_INIT, _keep_torch_rng():
            trainer = Trainer(job.spec, self.executor_for(job.spec), checkpoint.node_max_qubits)
            trainer.load_state_dict(checkpoint.trainer)
        predictor = _Predictor(trainer, checkpoint.epoch, mtime_ns, threading.Lock())
        with self._lock:
            self._cache[job.id] = predictor
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return predictor


@contextmanager
def _keep_torch_rng() -> Iterator[None]:
    """Restore torch's global CPU RNG afterwards, so loading a model cannot disturb a running job."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)
