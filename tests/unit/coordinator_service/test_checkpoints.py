from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
import torch

from qpumesh.coordinator.checkpoints import CheckpointError, CheckpointStore


def _state(value: float) -> dict[str, object]:
    weights = torch.full((2, 2), float(value))
    return {"model": {"w": weights}, "epoch": int(value), "history": [{"train_loss": value}]}


def test_nothing_to_load_before_the_first_save(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.load_last("job1") is None and store.load_best("job1") is None


def test_last_follows_every_epoch_and_best_the_lowest_training_loss(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.save("job1", _state(1), epoch=1, train_loss=0.5, node_max_qubits=[4, 4])
    assert not store.save("job1", _state(2), epoch=2, train_loss=0.7, node_max_qubits=[4, 4])
    assert store.save("job1", _state(3), epoch=3, train_loss=0.2, node_max_qubits=[4, 4])
    assert not store.save("job1", _state(4), epoch=4, train_loss=float("nan"), node_max_qubits=[4, 4])
    last = store.load_last("job1")
    best = store.load_best("job1")
    assert last is not None and best is not None
    assert last.epoch == 4 and best.epoch == 3 and best.train_loss == 0.2
    assert best.node_max_qubits == (4, 4)
    torch.testing.assert_close(best.trainer["model"]["w"], torch.full((2, 2), 3.0))
    # No temporary files are left behind.
    assert sorted(p.name for p in (tmp_path / "job1").iterdir()) == ["best.pt", "last.pt"]


def test_best_is_remembered_across_restarts(tmp_path: Path) -> None:
    CheckpointStore(tmp_path).save("j", _state(1), epoch=1, train_loss=0.1, node_max_qubits=[])
    store = CheckpointStore(tmp_path)
    assert not store.save("j", _state(2), epoch=2, train_loss=0.3, node_max_qubits=[])
    best = store.load_best("j")
    assert best is not None and best.epoch == 1


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save("j", _state(1), epoch=1, train_loss=0.1, node_max_qubits=[5])
    payload = torch.load(tmp_path / "j" / "last.pt", weights_only=True)
    assert payload["format"] == 1 and payload["epoch"] == 1 and payload["node_max_qubits"] == [5]


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save("j", _state(1), epoch=1, train_loss=0.5, node_max_qubits=[])
    with mock.patch("os.replace", side_effect=OSError("disk gone")), pytest.raises(OSError):
        store.save("j", _state(2), epoch=2, train_loss=0.1, node_max_qubits=[])
    last = store.load_last("j")
    assert last is not None and last.epoch == 1
    assert sorted(os.listdir(tmp_path / "j")) == ["best.pt", "last.pt"]


def test_unreadable_or_foreign_files_raise_checkpoint_error(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        store.load_last("j")
    torch.save({"something": 1}, tmp_path / "j" / "best.pt")
    with pytest.raises(CheckpointError, match="not a qpumesh checkpoint"):
        store.load_best("j")


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ""])
def test_job_ids_cannot_escape_the_root(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="job_id"):
        CheckpointStore(tmp_path).job_dir(bad)
