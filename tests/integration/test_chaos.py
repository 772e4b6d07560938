"""Chaos: SIGKILL the coordinator at several random points of one job; the losses must not change.

The kill points come from a seeded generator (``QPUMESH_CHAOS_SEED``, printed on failure),
so a failing plan can be replayed: each is "after the event of epoch E (0: the job's
RUNNING state), wait D seconds, SIGKILL". The coordinator runs on two QPU nodes with
mutual TLS (``LocalMesh``) and bearer tokens (``--auth-tokens``); after each kill
``LocalMesh.revive`` starts it again on the same port and data directory, it resumes the
job from its last checkpoint, and the client's watch reconnects. The finished history
must equal an undisturbed run's bit for bit: training is deterministic whichever
coordinator process, node or checkpoint ran it, in either gradient mode.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qpumesh.client.coordinator_client import CoordinatorClient
from qpumesh.client.local_mesh import LocalMesh
from qpumesh.v1 import coordinator_pb2 as pb

pytestmark = pytest.mark.slow

SPEC = {"model": "distributed", "qubits": 4, "partitions": 2, "layers": 1, "epochs": 6, "series_length": 40}
KILLS = 3


def _plan(seed: int, epochs: int, epoch_seconds: float) -> list[tuple[int, float]]:
    """``KILLS`` (epoch, delay) points: after epoch E's event (0 = RUNNING), wait D s, then kill."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(epochs - 1), KILLS))
    return [(epoch, round(rng.uniform(0.0, 0.9 * epoch_seconds), 2)) for epoch in points]


def _losses(job: pb.Job) -> np.ndarray:
    return np.array([[m.epoch, m.train_loss, m.test_loss, m.test_r2] for m in job.history])


@pytest.mark.parametrize("gradient_mode", ["jacobian", "vjp"])
def test_a_job_survives_sigkills_of_the_coordinator_with_bit_identical_losses(
    tmp_path: Path, coordinator_server: Any, gradient_mode: str
) -> None:
    seed = int(os.environ.get("QPUMESH_CHAOS_SEED", "9"))
    spec = {**SPEC, "gradient_mode": gradient_mode}
    # The undisturbed run (in process: the mesh gives the same numbers bit for bit).
    address, _ = coordinator_server(in_process=True)
    with CoordinatorClient(address, timeout=30) as client:
        started = time.monotonic()
        reference = client.wait(client.submit(spec), timeout=600)
        epoch_seconds = (time.monotonic() - started) / SPEC["epochs"]
    assert reference.state == pb.JOB_STATE_SUCCEEDED, reference.error
    plan = _plan(seed, SPEC["epochs"], epoch_seconds)
    done: list[str] = []

    token = "chaos-test-token-8e7f6a5b"
    (tmp_path / "tokens").write_text(f"{token} chaos\n")
    auth = [f"--auth-tokens={tmp_path / 'tokens'}"]
    with LocalMesh(nodes=2, log_dir=tmp_path / "logs", coordinator_args=auth) as mesh:
        client = CoordinatorClient(
            mesh.coordinator_address, timeout=30, tls=mesh.client_tls, token=token, watch_retries=40
        )
        with client:
            job_id = client.submit(spec)
            pending = list(plan)
            for event in client.watch(job_id):
                kind = event.WhichOneof("kind")
                running = kind == "state" and event.state == pb.JOB_STATE_RUNNING
                at = event.epoch.epoch if kind == "epoch" else 0 if running else -1
                if not pending or at != pending[0][0]:
                    continue
                epoch, delay = pending.pop(0)
                time.sleep(delay)
                pid = mesh.kill("coordinator")
                done.append(f"{epoch}:{delay}s (pid {pid})")
                assert [r.split(" (")[0] for r in mesh.revive()] == ["coordinator"]
            job = client.get(job_id)
        log = (tmp_path / "logs" / "coordinator.log").read_text()

    context = f"gradient mode {gradient_mode}, seed {seed}, plan {plan}, kills done {done}"
    assert len(done) == KILLS, context
    assert job.state == pb.JOB_STATE_SUCCEEDED, f"{context}: {job.error}"
    assert job.spec.gradient_mode == reference.spec.gradient_mode == gradient_mode
    assert log.count("coordinator serving on") == KILLS + 1, context
    np.testing.assert_array_equal(_losses(job), _losses(reference), err_msg=context)
