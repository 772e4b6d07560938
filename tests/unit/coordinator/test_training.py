"""The Trainer: determinism, checkpoint round trip, learning, predictions, metrics."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from coordinator_doubles import NumpyExecutor  # type: ignore[import-not-found]

from qpumesh.coordinator.metrics import convergence_epoch, r2_score
from qpumesh.coordinator.training import EpochMetrics, Trainer
from qpumesh.wire.job_spec import JobSpec


def small_spec(**overrides: Any) -> JobSpec:
    values: dict[str, Any] = {
        "series_length": 30,
        "layers": 1,
        "ansatz": "v0",
        "model": "distributed",
        "partitions": 2,
        "epochs": 3,
    }
    values.update(overrides)
    return JobSpec(**values)


def make(spec: JobSpec) -> Trainer:
    return Trainer(spec, None if spec.model == "classical" else NumpyExecutor())


def losses(trainer: Trainer, epochs: int) -> list[tuple[float, float]]:
    return [(m.train_loss, m.test_loss) for m in (trainer.train_epoch() for _ in range(epochs))]


@pytest.mark.parametrize("model", ["distributed", "centric", "classical"])
def test_same_seed_same_losses(model: str) -> None:
    spec = small_spec(model=model)
    assert losses(make(spec), 2) == losses(make(spec), 2)


def test_different_seed_different_losses() -> None:
    assert losses(make(small_spec()), 1) != losses(make(small_spec(seed=1)), 1)


@pytest.mark.parametrize("model", ["distributed", "classical"])
def test_state_dict_round_trip(model: str) -> None:
    spec = small_spec(model=model)
    straight = make(spec)
    expected = losses(straight, 2)

    first = make(spec)
    first_losses = losses(first, 1)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = make(spec)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1 and [m.epoch for m in resumed.history] == [1]
    assert first_losses + losses(resumed, 1) == expected
    def scores(trainer: Trainer) -> list[tuple[float, float, float]]:
        return [(m.train_loss, m.test_loss, m.test_r2) for m in trainer.history]

    assert scores(resumed) == scores(straight)


def test_checkpoint_of_other_model_is_refused() -> None:
    state = make(small_spec()).state_dict()
    with pytest.raises(ValueError, match="layers"):
        make(small_spec(layers=2)).load_state_dict(state)


def test_a_checkpoint_from_before_a_new_spec_field_still_loads() -> None:
    trainer = make(small_spec(epochs=1))
    trainer.train_epoch()
    state = trainer.state_dict()
    del state["spec"]["ansatz_circuit"]  # written before custom circuits existed
    for metrics in state["history"]:
        del metrics["hardware_seconds"]  # and before the hardware estimate
    resumed = make(small_spec(epochs=1))
    resumed.load_state_dict(state)
    assert resumed.epoch == 1 and resumed.history[0].hardware_seconds == 0.0


@pytest.mark.parametrize("model", ["distributed", "classical"])
def test_short_training_improves_the_loss(model: str) -> None:
    trainer = make(small_spec(model=model, ansatz="chen2020", series_length=60, lr=0.05))
    history = [trainer.train_epoch() for _ in range(4)]
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].test_loss < history[0].test_loss


def test_epoch_metrics_count_rounds_and_evaluations() -> None:
    spec = small_spec()
    trainer = make(spec)
    metrics = trainer.train_epoch()
    train = len(trainer.dataset.x_train)
    batches = -(-train // spec.batch_size)
    assert metrics.rounds == (batches + 1) * spec.window  # training steps + one evaluation batch
    assert metrics.circuit_evaluations > 0 and metrics.wall_seconds > 0
    assert isinstance(metrics.to_dict()["test_r2"], float)


def test_quantum_model_needs_an_executor() -> None:
    with pytest.raises(ValueError, match="needs an executor"):
        Trainer(small_spec(), None)


def test_plan_respects_node_limits() -> None:
    trainer = Trainer(small_spec(), NumpyExecutor(), node_max_qubits=[2, 2, 3])
    assert trainer.plan is not None and trainer.plan.input_sizes == (2, 2)
    with pytest.raises(ValueError, match="use --partitions >= 2"):
        Trainer(small_spec(model="centric"), NumpyExecutor(), node_max_qubits=[3])


def test_predict_and_predictions_in_raw_units() -> None:
    trainer = make(small_spec(model="classical"))
    trainer.train_epoch()
    out = trainer.predictions()
    n = len(trainer.dataset.x_train) + len(trainer.dataset.x_test)
    assert out["target"].shape == out["prediction"].shape == (n,)
    assert int(out["split"]) == trainer.dataset.split
    np.testing.assert_allclose(out["target"], trainer.dataset.series[out["time_index"]])
    again = trainer.predict(trainer.dataset.series)
    assert again.shape == (len(trainer.dataset.series) - trainer.spec.window + 1,)
    np.testing.assert_allclose(again[:n], out["prediction"])
    with pytest.raises(ValueError, match="needs at least window=4 values, got 2"):
        trainer.predict(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="value 2 is nan; every value must be a finite number"):
        trainer.predict(np.array([1.0, 2.0, np.nan, 3.0, 4.0]))


def test_summary_fields() -> None:
    trainer = make(small_spec(model="classical"))
    for _ in range(3):
        trainer.train_epoch()
    summary = trainer.summary()
    assert summary["test_r2"] == trainer.history[-1].test_r2
    assert 1 <= summary["convergence_epoch"] <= 3 and 1 <= summary["best_train_loss_epoch"] <= 3
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    assert EpochMetrics(**summary["history"][0]) == trainer.history[0]


def test_convergence_epoch_definition() -> None:
    assert convergence_epoch([0.1, 0.5, 0.985, 0.99, 0.992]) == 3
    assert convergence_epoch([0.1, 0.99, 0.5, 0.99]) == 4
    assert convergence_epoch([0.99, 0.99]) == 1
    assert convergence_epoch([]) == 0
    assert convergence_epoch([0.5, 0.9], tolerance=0.5) == 1


def test_r2_score() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert r2_score(y, y) == 1.0
    assert r2_score(y, np.full(3, 2.0)) == 0.0
    assert r2_score(2 * y + 1, 2 * (y + 0.1) + 1) == pytest.approx(r2_score(y, y + 0.1))


def test_in_process_engine_matches_the_double() -> None:
    pytest.importorskip("qpumesh.node.core")
    from qpumesh.coordinator.mesh.in_process import InProcessExecutor

    spec = small_spec(epochs=1)
    engine = Trainer(spec, InProcessExecutor())
    double = make(spec)
    a, b = engine.train_epoch(), double.train_epoch()
    assert a.train_loss == pytest.approx(b.train_loss, rel=1e-9)
    assert a.test_r2 == pytest.approx(b.test_r2, rel=1e-9, abs=1e-12)
    assert a.rounds == b.rounds and a.circuit_evaluations == b.circuit_evaluations
    # The node core prices every round on its hardware profile (superconducting by default).
    assert a.hardware_seconds > 0 and engine.summary()["hardware_seconds"] == a.hardware_seconds
