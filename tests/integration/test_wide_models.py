"""Wide models: 64 qubits as 16 four-qubit parts train over 16 small QPUs, as in process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qpumesh.coordinator.mesh.executor import MeshExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.wire.job_spec import JobSpec

WIDE = JobSpec(model="distributed", qubits=64, partitions=16, layers=1, epochs=2, series_length=20, seed=5)


def _history(trainer: Trainer, epochs: int) -> np.ndarray:
    metrics = [trainer.train_epoch() for _ in range(epochs)]
    return np.array(
        [[m.train_loss, m.test_loss, m.test_r2, m.circuit_evaluations, m.rounds] for m in metrics]
    )


def test_sixty_four_qubits_over_sixteen_four_qubit_nodes(node_server: Any) -> None:
    nodes = [node_server(node_id=f"q{i}", max_qubits=4)[0] for i in range(16)]
    with MeshExecutor(nodes) as mesh:
        qubits = mesh.node_max_qubits()
        assert qubits == [4] * 16
        trainer = Trainer(WIDE, mesh, qubits)
        assert trainer.plan is not None
        # One 4-qubit part per node: no node is asked for more than it has.
        assert trainer.plan.input_sizes == (4,) * 16 and trainer.plan.node_loads() == [1] * 16
        mesh.set_assignment(trainer.plan.assignment)
        got = _history(trainer, 2)
        served = {s.address: s.calls for s in mesh.node_stats()}
    want = _history(Trainer(WIDE, InProcessExecutor(), ()), 2)
    np.testing.assert_array_equal(got, want)  # exact arithmetic, whichever node answers
    assert set(served) == set(nodes) and all(calls > 0 for calls in served.values())
    # 16 windows, 10 to train on: one mini-batch of T = 4 rounds (all 16 parts of a time step
    # in each), then T evaluation rounds.
    assert list(got[:, 4]) == [4 + 4] * 2


def test_a_part_wider_than_every_node_is_refused_before_training(node_server: Any) -> None:
    nodes = [node_server(node_id=f"q{i}", max_qubits=4)[0] for i in range(2)]
    spec = JobSpec(model="distributed", qubits=16, partitions=2, layers=1, series_length=20)
    with (
        MeshExecutor(nodes) as mesh,
        pytest.raises(ValueError, match="has 4 qubits but partition 0 needs 8; use --partitions >= 4"),
    ):
        Trainer(spec, mesh, mesh.node_max_qubits())
