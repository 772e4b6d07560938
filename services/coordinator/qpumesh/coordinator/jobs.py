"""The job runner: trains queued jobs one at a time, durably, and resumes them after a crash.

``JobManager`` owns the job store, the checkpoints and the executor the jobs run
on (a ``MeshExecutor`` over the configured nodes, or an ``InProcessExecutor``:
``mesh.open_executor``), and answers the service's questions about jobs.
One worker thread takes the oldest QUEUED or RUNNING job and, per epoch:

1. ``Trainer.train_epoch()``;
2. writes ``last.pt`` (and ``best.pt`` on a new lowest training loss);
3. records the epoch in the store in one transaction, with the executor's node
   statistics and the fault events drained during the epoch.

Checkpoint before store: a crash between the two leaves a checkpoint one epoch
ahead of the store, which the resume reconciles by recording the epochs the
checkpoint's history has and the store lacks; nothing is recorded twice.

Start-up resumes every QUEUED or RUNNING job from its ``last.pt`` (a job killed
mid-epoch redoes that epoch; training is deterministic, so the numbers are those
of an uninterrupted run). Cancellation and shutdown interrupt a job at its next
executor round (between time steps), or between epochs for the classical model;
a cancelled job becomes CANCELLED, a job interrupted by shutdown goes back to
QUEUED and resumes on the next start. The trainer checks the same flag while it
generates the series and before every mini-batch, so a cancel stops any job within a
fraction of a second. Any other exception marks the job FAILED
with the error message; the job and its history stay in the store.

Only one job trains at a time: the coordinator is meant for small machines, and
the nodes, not the coordinator, are where parallelism pays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np
import numpy.typing as npt

from qpumesh.coordinator.checkpoints import Checkpoint, CheckpointStore
from qpumesh.coordinator.config import CoordinatorConfig
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, Executor, ExecutorStats
from qpumesh.coordinator.job_records import INVALID_SPEC
from qpumesh.coordinator.mesh import open_executor
from qpumesh.coordinator.monitoring import CoordinatorMetrics
from qpumesh.coordinator.predictions import Predictors
from qpumesh.coordinator.store import EventRecord, JobRecord, JobStore
from qpumesh.coordinator.training import TRAINER_INIT, Trainer
from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.wire.job_spec import JobSpec
from qpumesh.wire.job_state import JobState
from qpumesh.wire.records import to_record
from qpumesh.wire.tracing import span

logger = logging.getLogger(__name__)

_IDLE_POLL_SECONDS = 1.0


class JobInterruptedError(RuntimeError):
    """Raised inside a job's executor round when the job must stop (cancel or shutdown)."""


class JobActiveError(RuntimeError):
    """The job is still queued or running; cancel it before deleting it."""


class _JobExecutor:
    """The executor one job (or one predictor) sees: its own stats, and a stop check per round.

    Counting rounds here rather than in the shared executor keeps a job's per-epoch
    circuit counts its own, even while predictions use the same nodes. Each round is a
    span (``round``: the root of a trace while training, under the RPC's span for a
    prediction) and an observation of ``qpumesh_round_seconds``.
    """

    def __init__(
        self,
        inner: Executor,
        interrupted: Callable[[], bool],
        job_id: str = "",
        metrics: CoordinatorMetrics | None = None,
    ) -> None:
        self.inner = inner
        self.interrupted = interrupted
        self.job_id = job_id
        self.metrics = metrics
        self.stats = ExecutorStats()

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Run ``tasks`` on the shared executor unless the job was told to stop."""
        if self.interrupted():
            raise JobInterruptedError("job interrupted")
        attributes: dict[str, str | int | bool] = {
            "qpumesh.job_id": self.job_id,
            "qpumesh.round": self.stats.rounds + 1,
            "qpumesh.tasks": len(tasks),
        }
        start = time.perf_counter()
        with span("round", attributes=attributes):
            results = self.inner.run_round(tasks)
        self.stats.record_hardware(results)
        if self.metrics is not None:
            self.metrics.round_seconds.observe(time.perf_counter() - start)
        self.stats.record_round(results)
        return results


class JobManager:
    """Accepts, runs, cancels and resumes training jobs; answers predictions from checkpoints.

    Args:
        config: data directory and node placement.
        executor: run circuits on this executor instead of building one from
            ``config`` (tests); it is not closed by ``stop``.
        metrics: where rounds and epochs are observed (None: nowhere).
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        executor: Executor | None = None,
        metrics: CoordinatorMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(config.db_path)
        self.checkpoints = CheckpointStore(config.checkpoint_dir)
        self._owns_executor = executor is None
        self.executor: Executor = executor if executor is not None else open_executor(config)
        self.predictors = Predictors(
            self.checkpoints, lambda spec: self._job_executor(spec, lambda: False, job_id="predict")
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._state_lock = threading.Lock()
        self._current: str | None = None
        self._cancel_current = False
        self._thread = threading.Thread(target=self._work, name="qpumesh-jobs", daemon=True)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Settle jobs left by a previous run, then start the worker thread."""
        for job in self.store.jobs_to_resume():
            if job.cancel_requested:
                message = "cancelled while the coordinator was down"
                self.store.set_state(job.id, JobState.CANCELLED, message=message)
            elif job.state == JobState.RUNNING:
                self.store.log(job.id, "coordinator restarted; the job resumes from its last checkpoint")
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt the running job (it goes back to QUEUED), stop the worker and the executor.

        The store stays open (readers may still be answering); ``close`` closes it.
        Idempotent.
        """
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("job worker did not stop within %.0f s", timeout)
        with self._state_lock:
            close_executor, self._owns_executor = self._owns_executor, False
        if close_executor:
            self.executor.close()

    def close(self, timeout: float = 30.0) -> None:
        """``stop``, then close the job store; the manager is unusable afterwards."""
        self.stop(timeout)
        self.store.close()

    @property
    def current_job(self) -> str | None:
        """The id of the job being trained, if any."""
        with self._state_lock:
            return self._current

    # ----------------------------------------------------------------- requests

    def submit(self, spec: JobSpec, owner: str = "") -> JobRecord:
        """Queue a job for ``spec`` owned by ``owner`` and wake the worker."""
        job = self.store.create_job(spec, owner=owner)
        logger.info(
            "job %s queued for %s (%s, %s, %d epochs)",
            job.id, owner or "anonymous", spec.model, spec.task, spec.epochs,
        )  # fmt: skip
        self._wake.set()
        return job

    def delete(self, job_id: str) -> None:
        """Forget a final job: its rows, events, checkpoints and loaded model.

        Raises:
            JobNotFoundError: for an unknown job.
            JobActiveError: the job is queued or running.
        """
        job = self.store.get_job(job_id)
        if not job.final:
            raise JobActiveError(
                f"job {job_id} is {job.state.label}; cancel it (qpumesh cancel {job_id}), then delete it"
            )
        self.store.delete_job(job_id)
        self.predictors.forget(job_id)
        self.checkpoints.delete(job_id)
        logger.info("job %s deleted", job_id)

    def cancel(self, job_id: str, wait_seconds: float = 10.0) -> JobRecord:
        """Cancel a job: at once if QUEUED, at its next round if RUNNING; final jobs are left alone.

        Waits up to ``wait_seconds`` for a running job to reach a final state and
        returns the job as it then is.

        Raises:
            JobNotFoundError: for an unknown job.
        """
        job = self.store.request_cancel(job_id)
        with self._state_lock:
            if self._current == job_id:
                self._cancel_current = True
        deadline = time.monotonic() + wait_seconds
        with self.store.changed:
            while not job.final and time.monotonic() < deadline:
                self.store.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                job = self.store.get_job(job_id)
        return job

    def node_stats(self) -> list[cpb.NodeStats]:
        """Return the executor's view of every node (one pseudo-node ``in-process`` without nodes)."""
        return self.executor.node_stats()

    def predict(self, job_id: str, series: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], int]:
        """One-step-ahead predictions of the job's best model for a raw series.

        Returns:
            The predictions and the epoch of the checkpoint used.

        Raises:
            JobNotFoundError: for an unknown job.
            NoCheckpointError: before the job's first epoch completed.
            ValueError: for a series shorter than the job's window or not finite.
        """
        return self.predictors.predict(self.store.get_job(job_id), series)

    def results(self, job_id: str) -> tuple[JobRecord, dict[str, npt.NDArray[Any]] | None]:
        """Return the job and, once it has a checkpoint, its best model's predictions over every window.

        The predictions dict is ``Trainer.predictions()``: "time_index", "target",
        "prediction", "split" (the index of the first test window).

        Raises:
            JobNotFoundError: for an unknown job.
        """
        job = self.store.get_job(job_id)
        return job, self.predictors.predictions(job)

    # ----------------------------------------------------------------- reading jobs

    def job(self, job_id: str) -> JobRecord:
        """Return the job.

        Raises:
            JobNotFoundError: for an unknown job.
        """
        return self.store.get_job(job_id)

    def jobs(self, state: JobState | None = None, limit: int = 0) -> list[JobRecord]:
        """Return jobs, newest first, optionally only those in ``state``; ``limit`` 0 = all."""
        return self.store.list_jobs(state, limit)

    def page(
        self, state: JobState | None, owner: str | None, size: int, cursor: str = ""
    ) -> tuple[list[JobRecord], str]:
        """One page of jobs, newest first, and the next page's cursor (see ``JobStore.page``)."""
        return self.store.page(state, owner, size, cursor)

    def history(self, job_id: str) -> list[dict[str, Any]]:
        """Return the job's epoch metrics (``EpochMetrics`` fields), in epoch order."""
        return self.store.epochs(job_id)

    def faults(self, job_id: str) -> list[dict[str, Any]]:
        """Return the fault events (``FaultEvent`` fields) recorded while the job ran, oldest first."""
        return self.store.faults(job_id)

    def events(self, job_id: str, after_seq: int = 0) -> list[EventRecord]:
        """Return the job's events after ``after_seq``, in order."""
        return self.store.events(job_id, after_seq)

    def wait_for_events(self, job_id: str, after_seq: int, timeout: float) -> list[EventRecord]:
        """Return events after ``after_seq``, waiting up to ``timeout`` seconds for one (see ``JobStore``)."""
        return self.store.wait_for_events(job_id, after_seq, timeout)

    def wake_watchers(self) -> None:
        """Wake every ``wait_for_events`` caller, so it can notice a shutdown."""
        self.store.wake_waiters()

    # ----------------------------------------------------------------- worker

    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            job = self._next_job()
            if job is None:
                self._wake.wait(_IDLE_POLL_SECONDS)
                continue
            try:
                self._run(job)
            except Exception:
                # _run handles its own errors; this guards the worker against store failures.
                logger.exception("job %s: unexpected error in the job runner", job.id)
                time.sleep(_IDLE_POLL_SECONDS)

    def _next_job(self) -> JobRecord | None:
        for job in self.store.jobs_to_resume():
            if not job.cancel_requested:
                return job
            self.store.set_state(job.id, JobState.CANCELLED)
        return None

    def _interrupted(self) -> bool:
        with self._state_lock:
            return self._cancel_current or self._stop.is_set()

    def _check(self) -> None:
        """Raise ``JobInterruptedError`` when the running job must stop (cancel or shutdown)."""
        if self._interrupted():
            raise JobInterruptedError("job interrupted")

    def _run(self, job: JobRecord) -> None:
        with self._state_lock:
            self._current = job.id
            self._cancel_current = False
        try:
            # Read the job again now that ``cancel`` can see it is current: a cancel
            # that landed after the queue was read is either in this record or
            # flagged by ``cancel`` itself.
            job = self.store.get_job(job.id)
            if job.final:
                return
            invalid = job.spec.extra.get(INVALID_SPEC)
            if invalid is not None:
                logger.warning("job %s not run: its spec was %s", job.id, invalid)
                self.store.set_state(job.id, JobState.FAILED, error=invalid, message=f"failed: {invalid}")
                return
            if job.cancel_requested:
                with self._state_lock:
                    self._cancel_current = True
            self._train(job)
        except Exception as error:
            with self._state_lock:
                cancelled = self._cancel_current
            if cancelled:
                logger.info("job %s cancelled", job.id)
                self.store.set_state(job.id, JobState.CANCELLED, message="cancelled by request")
            elif self._stop.is_set():
                logger.info("job %s interrupted by shutdown; it will resume on restart", job.id)
                message = "coordinator shutting down; the job resumes from its last checkpoint"
                self.store.set_state(job.id, JobState.QUEUED, message=message)
            else:
                logger.exception("job %s failed", job.id)
                message = f"{type(error).__name__}: {error}"
                self.store.set_state(job.id, JobState.FAILED, error=message, message=f"failed: {message}")
        finally:
            with self._state_lock:
                self._current = None
                self._cancel_current = False

    def _train(self, job: JobRecord) -> None:
        spec = job.spec
        self._drain_faults()  # faults from before this job are not this job's
        checkpoint = self.checkpoints.load_last(job.id)
        executor = self._job_executor(spec, self._interrupted, job_id=job.id)
        node_max_qubits = self._node_max_qubits(job, checkpoint)
        with TRAINER_INIT:
            trainer = Trainer(spec, executor, node_max_qubits, check=self._check)
            if checkpoint is not None:
                trainer.load_state_dict(checkpoint.trainer)
        self.store.set_node_max_qubits(job.id, node_max_qubits)
        self._route(trainer)
        self._reconcile(job, trainer, checkpoint)
        if checkpoint is None:
            message = f"training started{self._placement(trainer)}"
        else:
            message = f"resumed from the checkpoint of epoch {checkpoint.epoch}{self._placement(trainer)}"
        self.store.set_state(job.id, JobState.RUNNING, message=message)
        logger.info("job %s: %s", job.id, message)

        while trainer.epoch < spec.epochs:
            self._check()
            metrics = trainer.train_epoch()
            self.checkpoints.save(
                job.id,
                trainer.state_dict(),
                epoch=trainer.epoch,
                train_loss=metrics.train_loss,
                node_max_qubits=node_max_qubits,
            )
            self.store.record_epoch(
                job.id,
                metrics.to_dict(),
                nodes=[to_record(node) for node in self.executor.node_stats()],
                faults=self._drain_faults(),
                summary=trainer.summary(),
            )
            if self.metrics is not None:
                self.metrics.epochs.inc()
                self.metrics.epoch_seconds.observe(metrics.wall_seconds)
            logger.info(
                "job %s epoch %d/%d: train loss %.6g, test loss %.6g, test R2 %.4f (%.1f s)",
                job.id,
                metrics.epoch,
                spec.epochs,
                metrics.train_loss,
                metrics.test_loss,
                metrics.test_r2,
                metrics.wall_seconds,
            )
        self.store.set_state(job.id, JobState.SUCCEEDED, message=f"finished {trainer.epoch} epochs")
        logger.info("job %s succeeded", job.id)

    def _job_executor(
        self, spec: JobSpec, interrupted: Callable[[], bool], *, job_id: str
    ) -> _JobExecutor | None:
        """Return the executor a trainer of ``spec`` uses; None for the classical model."""
        if spec.model == "classical":
            return None
        return _JobExecutor(self.executor, interrupted, job_id, self.metrics)

    def _node_max_qubits(self, job: JobRecord, checkpoint: Checkpoint | None) -> tuple[int, ...]:
        """Return the node sizes the job's model is planned for.

        A resumed job keeps the sizes its checkpoint was made with (the number of
        partitions, hence the model's shape, may depend on them); a job without a
        checkpoint asks the executor (a mesh waits for a first healthy node; in
        process there is no limit).
        """
        if checkpoint is not None:
            return checkpoint.node_max_qubits
        if job.spec.model == "classical":
            return ()
        # A mesh may wait for nodes (up to its connect timeout): wait on the side, so a
        # cancel or a shutdown is noticed within a tenth of a second.
        waiting: Future[list[int]] = Future()

        def ask() -> None:
            try:
                waiting.set_result(self.executor.node_max_qubits())
            except BaseException as error:
                waiting.set_exception(error)

        threading.Thread(target=ask, name="qpumesh-node-sizes", daemon=True).start()
        while True:
            self._check()
            try:
                return tuple(waiting.result(timeout=0.1))
            except FutureTimeout:
                continue

    def _route(self, trainer: Trainer) -> None:
        """Tell the executor where the planner put each sub-circuit (nodes that left are dropped)."""
        if trainer.plan is None or not trainer.plan.assignment:
            return
        nodes = len(self.executor.node_max_qubits())
        self.executor.set_assignment({k: i for k, i in trainer.plan.assignment.items() if i < nodes})

    @staticmethod
    def _placement(trainer: Trainer) -> str:
        if trainer.plan is None:
            return ""
        loads = trainer.plan.node_loads()
        where = f" on {len(loads)} node(s), parts per node {loads}" if loads else " in process"
        return f" ({trainer.plan.partitions} partition(s) per gate{where})"

    def _reconcile(self, job: JobRecord, trainer: Trainer, checkpoint: Checkpoint | None) -> None:
        """Make the store's epochs match the checkpoint the job resumes from."""
        done = checkpoint.epoch if checkpoint is not None else 0
        self.store.truncate_epochs(job.id, keep=done)
        recorded = {int(m["epoch"]) for m in self.store.epochs(job.id)}
        for metrics in trainer.history:
            if metrics.epoch not in recorded:
                self.store.record_epoch(job.id, metrics.to_dict(), summary=trainer.summary())

    def _drain_faults(self) -> list[dict[str, Any]]:
        return [to_record(fault) for fault in self.executor.drain_fault_events()]
