"""A coordinator process killed with SIGKILL mid-job resumes the job from its last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel

SPEC = pb.JobSpec(model="distributed", qubits=4, partitions=2, layers=1, epochs=8, series_length=80, seed=3)
STARTUP_SECONDS = 90.0


def _start(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m qpumesh.coordinator serve --in-process`` and wait until it serves."""
    port_file = data_dir.parent / f"{data_dir.name}.port"
    port_file.unlink(missing_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qpumesh.coordinator",
                "serve",
                "--in-process",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--data-dir",
                str(data_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"coordinator exited with {process.returncode}:\n{log.read_text()}")
        text = port_file.read_text() if port_file.exists() else ""
        if text.endswith("\n"):
            address = f"127.0.0.1:{int(text)}"
            with open_channel(address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            return process, address
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"coordinator did not start within {STARTUP_SECONDS} s:\n{log.read_text()}")


def _history(job: pb.Job) -> np.ndarray:
    return np.array([[m.epoch, m.train_loss, m.test_loss, m.test_r2] for m in job.history])


@pytest.mark.slow
def test_sigkilled_coordinator_resumes_the_job_from_its_last_checkpoint(
    tmp_path: Path, coordinator_server: Any
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "coordinator.log"
    first, address = _start(data_dir, log)
    try:
        with open_channel(address) as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            job_id = stub.SubmitJob(pb.SubmitJobRequest(spec=SPEC), timeout=10).job_id
            for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=120):
                if event.WhichOneof("kind") == "epoch" and event.epoch.epoch == 1:
                    first.send_signal(signal.SIGKILL)
                    break
            last_seq = event.seq
    finally:
        first.kill()
        first.wait(30)
    assert (data_dir / "checkpoints" / job_id / "last.pt").exists()

    second, address = _start(data_dir, log)
    try:
        with open_channel(address) as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            events = list(stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_seq=last_seq), timeout=120))
            job = stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()

    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    assert job.epochs_done == 8 and [m.epoch for m in job.history] == list(range(1, 9))
    resumed = [e.log for e in events if e.log.startswith("resumed from the checkpoint of epoch")]
    assert len(resumed) == 1, [e.log for e in events]
    resumed_at = int(resumed[0].split("epoch ")[1].split()[0])
    assert resumed_at >= 1
    # Only the epochs after the checkpoint were trained again.
    assert [e.epoch.epoch for e in events if e.WhichOneof("kind") == "epoch"] == list(
        range(resumed_at + 1, 9)
    )

    # The same job without the crash gives the same numbers.
    reference_address, _ = coordinator_server(in_process=True)
    with open_channel(reference_address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        reference_id = stub.SubmitJob(pb.SubmitJobRequest(spec=SPEC), timeout=10).job_id
        list(stub.WatchJob(pb.WatchJobRequest(job_id=reference_id), timeout=120))
        reference = stub.GetJob(pb.GetJobRequest(job_id=reference_id), timeout=10)
    np.testing.assert_allclose(_history(job), _history(reference), rtol=0, atol=1e-9)
