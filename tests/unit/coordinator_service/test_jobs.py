"""JobManager without gRPC: resume after a crash, reconciliation of store and checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qpumesh.coordinator.config import CoordinatorConfig
from qpumesh.coordinator.jobs import JobManager
from qpumesh.coordinator.predictions import NoCheckpointError
from qpumesh.coordinator.store import JobRecord
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.job_spec import JobSpec
from qpumesh.wire.job_state import JobState

SPEC = JobSpec(model="classical", epochs=4, series_length=40, seed=5)


def _wait_final(manager: JobManager, job_id: str, timeout: float = 60.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = manager.store.get_job(job_id)
        if job.final:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {manager.store.get_job(job_id)}")


def test_resume_records_epochs_checkpointed_but_not_stored(tmp_path: Path) -> None:
    config = CoordinatorConfig(data_dir=tmp_path, in_process=True)
    manager = JobManager(config)
    crashed = manager.store.create_job(SPEC)
    reference = manager.store.create_job(SPEC)
    manager.store.request_cancel(reference.id)  # keep it out of the way for now

    # What a coordinator killed after checkpointing epoch 2 but before storing it leaves behind.
    trainer = Trainer(SPEC, None)
    manager.store.set_state(crashed.id, JobState.RUNNING)
    first = trainer.train_epoch()
    manager.store.record_epoch(crashed.id, first.to_dict())
    manager.checkpoints.save(
        crashed.id, trainer.state_dict(), epoch=1, train_loss=first.train_loss, node_max_qubits=()
    )
    second = trainer.train_epoch()
    manager.checkpoints.save(
        crashed.id, trainer.state_dict(), epoch=2, train_loss=second.train_loss, node_max_qubits=()
    )
    with pytest.raises(NoCheckpointError):
        manager.predict(reference.id, [0.0] * 8)

    manager.start()
    try:
        job = _wait_final(manager, crashed.id)
        assert job.state == JobState.SUCCEEDED and job.epochs_done == 4
        history = manager.store.epochs(crashed.id)
        assert [m["epoch"] for m in history] == [1, 2, 3, 4]
        assert history[1] == second.to_dict()
        logs = [e.payload["message"] for e in manager.store.events(crashed.id, kind="log")]
        assert any(m.startswith("resumed from the checkpoint of epoch 2") for m in logs)

        # An uninterrupted run of the same spec has the same history (wall time aside).
        fresh = manager.submit(SPEC)
        assert _wait_final(manager, fresh.id).state == JobState.SUCCEEDED
        for resumed, straight in zip(history, manager.store.epochs(fresh.id), strict=True):
            assert {k: v for k, v in resumed.items() if k != "wall_seconds"} == {
                k: v for k, v in straight.items() if k != "wall_seconds"
            }
        predictions, epoch = manager.predict(crashed.id, [0.1, 0.2, 0.3, 0.4, 0.5])
        assert len(predictions) == 2 and 1 <= epoch <= 4
    finally:
        manager.close()


def test_a_cancel_requested_before_a_restart_is_honoured_at_start_up(tmp_path: Path) -> None:
    config = CoordinatorConfig(data_dir=tmp_path, in_process=True)
    first = JobManager(config)
    job = first.store.create_job(SPEC)
    first.store.set_state(job.id, JobState.RUNNING)
    first.store.request_cancel(job.id)
    first.close()

    second = JobManager(config)
    second.start()
    try:
        assert _wait_final(second, job.id).state == JobState.CANCELLED
    finally:
        second.close()
