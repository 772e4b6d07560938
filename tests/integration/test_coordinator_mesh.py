"""The coordinator training through real QPU node servers: same numbers as in process, node loss survived.

The node-loss test runs the mesh as deployed: mutual TLS between every process and a
coordinator with bearer tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qpumesh.coordinator.auth import TokenTable
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.v1 import coordinator_pb2_grpc as pb_grpc
from qpumesh.wire.auth import bearer_metadata
from qpumesh.wire.channels import open_channel
from qpumesh.wire.tls import TlsConfig, load_tls

SPEC = pb.JobSpec(model="distributed", qubits=4, partitions=3, layers=1, epochs=2, series_length=40, seed=7)
SERIES = [0.3, -0.1, 0.2, 0.5, 0.4, -0.3, 0.0]


def _train(
    address: str,
    spec: pb.JobSpec,
    on_epoch: Any = None,
    tls: TlsConfig | None = None,
    token: str | None = None,
) -> tuple[pb.Job, list[float], list[pb.JobEvent]]:
    """Run ``spec`` to the end; return the job, its best model's predictions for ``SERIES``, its events."""
    events: list[pb.JobEvent] = []
    metadata = bearer_metadata(token)
    with open_channel(address, tls=tls) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        job_id = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=10, metadata=metadata).job_id
        for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=120, metadata=metadata):
            events.append(event)
            if event.WhichOneof("kind") == "epoch" and on_epoch is not None:
                on_epoch(event.epoch.epoch)
        job = stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10, metadata=metadata)
        request = pb.PredictRequest(job_id=job_id, series=SERIES)
        predictions = stub.Predict(request, timeout=60, metadata=metadata).predictions
    return job, list(predictions), events


def _losses(job: pb.Job) -> np.ndarray:
    return np.array([[m.train_loss, m.test_loss, m.test_r2] for m in job.history])


def test_mesh_and_in_process_training_agree(node_server: Any, coordinator_server: Any) -> None:
    nodes = [node_server(node_id=f"n{i}")[0] for i in range(3)]
    mesh_address, _ = coordinator_server(nodes=",".join(nodes))
    local_address, _ = coordinator_server(in_process=True)

    mesh_job, mesh_predictions, mesh_events = _train(mesh_address, SPEC)
    local_job, local_predictions, _ = _train(local_address, SPEC)

    assert mesh_job.state == local_job.state == pb.JOB_STATE_SUCCEEDED
    np.testing.assert_array_equal(_losses(mesh_job), _losses(local_job))
    np.testing.assert_array_equal(mesh_predictions, local_predictions)
    # The work really went to the nodes, spread over all three (one part each).
    assert {n.address for n in mesh_job.nodes} == set(nodes)
    assert all(n.calls > 0 and n.healthy for n in mesh_job.nodes)
    # Every epoch event carries the pool's view of the nodes.
    for event in mesh_events:
        if event.WhichOneof("kind") == "epoch":
            assert {n.address for n in event.nodes} == set(nodes)
    mesh_counts = [m.circuit_evaluations for m in mesh_job.history]
    # Every epoch has an estimate of its wall time on the nodes' hardware.
    assert all(m.hardware_seconds > 0 for m in [*mesh_job.history, *local_job.history])
    assert mesh_counts == [m.circuit_evaluations for m in local_job.history]


def test_losing_a_node_mid_training_changes_nothing_but_the_fault_log(
    node_server: Any, coordinator_server: Any, mesh_certs: Any, tmp_path: Path
) -> None:
    spec = pb.JobSpec()
    spec.CopyFrom(SPEC)
    # 80 points: the epochs after the kill outlast the watch stream's delivery of epoch 1.
    spec.epochs, spec.series_length = 5, 80
    server_tls = load_tls(mesh_certs.server_cert, mesh_certs.server_key, mesh_certs.ca)
    client_tls = load_tls(mesh_certs.client_cert, mesh_certs.client_key, mesh_certs.ca)
    token = "mesh-test-token-4f1d2c3b"
    (tmp_path / "tokens").write_text(f"{token} tester\n")
    started = [node_server(node_id=f"n{i}", tls=server_tls) for i in range(3)]
    nodes = [address for address, _ in started]
    victim_address, victim = started[1]
    mesh_address, _ = coordinator_server(
        nodes=",".join(nodes), timeout_seconds=5.0, tls=server_tls, auth=TokenTable.load(tmp_path / "tokens")
    )
    local_address, _ = coordinator_server(in_process=True)

    def kill_after_first_epoch(epoch: int) -> None:
        if epoch == 1:
            victim.stop(None)

    mesh_job, mesh_predictions, mesh_events = _train(
        mesh_address, spec, on_epoch=kill_after_first_epoch, tls=client_tls, token=token
    )
    local_job, local_predictions, _ = _train(local_address, spec)

    assert mesh_job.state == pb.JOB_STATE_SUCCEEDED and mesh_job.epochs_done == 5
    np.testing.assert_array_equal(_losses(mesh_job), _losses(local_job))
    np.testing.assert_array_equal(mesh_predictions, local_predictions)
    # The failover is on record, against the node that went away.
    assert any(f.node == victim_address for f in mesh_job.faults), list(mesh_job.faults)
    streamed = [e.fault for e in mesh_events if e.WhichOneof("kind") == "fault"]
    assert [(f.node, f.kind) for f in streamed] == [(f.node, f.kind) for f in mesh_job.faults]


def test_vjp_mode_on_the_mesh_is_bit_identical_with_and_without_a_lost_node(
    node_server: Any, coordinator_server: Any
) -> None:
    """Gradient mode "vjp": two rounds per time step, the second with cotangents; a node killed
    after the first epoch changes nothing, and the losses are those of the undisturbed runs."""
    spec = pb.JobSpec()
    spec.CopyFrom(SPEC)
    spec.epochs, spec.series_length, spec.gradient_mode = 4, 80, "vjp"
    started = [node_server(node_id=f"n{i}") for i in range(3)]
    nodes = ",".join(address for address, _ in started)
    victim_address, victim = started[1]
    calm_address, _ = coordinator_server(nodes=nodes, timeout_seconds=5.0)
    calm_job, calm_predictions, _ = _train(calm_address, spec)
    mesh_address, _ = coordinator_server(nodes=nodes, timeout_seconds=5.0)

    def kill_after_first_epoch(epoch: int) -> None:
        if epoch == 1:
            victim.stop(None)

    mesh_job, mesh_predictions, _ = _train(mesh_address, spec, on_epoch=kill_after_first_epoch)
    local_address, _ = coordinator_server(in_process=True)
    local_job, local_predictions, _ = _train(local_address, spec)
    spec.gradient_mode = "jacobian"
    jacobian_job, _, _ = _train(local_address, spec)

    assert calm_job.state == mesh_job.state == local_job.state == pb.JOB_STATE_SUCCEEDED
    assert mesh_job.spec.gradient_mode == "vjp"
    np.testing.assert_array_equal(_losses(mesh_job), _losses(calm_job))
    np.testing.assert_array_equal(_losses(mesh_job), _losses(local_job))
    np.testing.assert_array_equal(mesh_predictions, calm_predictions)
    np.testing.assert_array_equal(mesh_predictions, local_predictions)
    assert any(f.node == victim_address for f in mesh_job.faults), list(mesh_job.faults)
    # The same training as gradient mode "jacobian" (to rounding), at the same hardware cost,
    # in one more round per time step of every training batch.
    np.testing.assert_allclose(_losses(mesh_job), _losses(jacobian_job), rtol=1e-9)
    for vjp, jacobian in zip(mesh_job.history, jacobian_job.history, strict=True):
        assert vjp.circuit_evaluations == jacobian.circuit_evaluations
        assert vjp.rounds > jacobian.rounds
