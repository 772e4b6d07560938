"""Gradient mode "vjp" on the node's own engine (in process): the same training as "jacobian"."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qpumesh.wire.job_spec import JobSpec, SpecError, spec_from_proto, spec_to_proto

pytest.importorskip("qpumesh.node.core")
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer

GRADIENT_ATOL = 1e-10
"""Largest difference of a parameter gradient between the modes (the adjoint Jacobian contracted
by the coordinator, or the node's weighted adjoint sweep: both exact, rounding apart)."""
LOSS_RTOL = 1e-9
"""Largest relative difference of an epoch's losses after a few epochs of training."""

MODELS = {
    "centric": {"model": "centric", "qubits": 5},
    "distributed": {"model": "distributed", "qubits": 6, "partitions": 2},
}


def spec(mode: str, model: str, **overrides: Any) -> JobSpec:
    values: dict[str, Any] = {"series_length": 40, "layers": 2, "epochs": 3, "gradient_mode": mode}
    return JobSpec(**{**values, **MODELS[model], **overrides})


@pytest.mark.parametrize("model", list(MODELS))
def test_one_batch_has_the_same_gradients_in_both_modes(model: str) -> None:
    grads = {}
    for mode in ("jacobian", "vjp"):
        trainer = Trainer(spec(mode, model), InProcessExecutor())
        x, y = trainer.dataset.x_train[:10], trainer.dataset.y_train[:10]
        trainer.loss_fn(trainer.model(x), y).backward()
        grads[mode] = [p.grad for p in trainer.model.parameters()]
    assert len(grads["vjp"]) == len(grads["jacobian"]) > 4
    for got, expected in zip(grads["vjp"], grads["jacobian"], strict=True):
        assert got is not None and expected is not None
        torch.testing.assert_close(got, expected, rtol=0, atol=GRADIENT_ATOL)
    assert max(float(g.abs().max()) for g in grads["jacobian"] if g is not None) > 1e-3


@pytest.mark.parametrize("model", list(MODELS))
def test_a_few_epochs_give_the_same_losses_and_costs_in_both_modes(model: str) -> None:
    runs = {}
    for mode in ("jacobian", "vjp"):
        trainer = Trainer(spec(mode, model), InProcessExecutor())
        runs[mode] = [trainer.train_epoch() for _ in range(3)]
    for jac, vjp in zip(runs["jacobian"], runs["vjp"], strict=True):
        assert vjp.train_loss == pytest.approx(jac.train_loss, rel=LOSS_RTOL)
        assert vjp.test_loss == pytest.approx(jac.test_loss, rel=LOSS_RTOL)
        # The same circuit executions on hardware (the shift rule's, whichever method ran) ...
        assert vjp.circuit_evaluations == jac.circuit_evaluations > 0
        assert vjp.hardware_seconds == pytest.approx(jac.hardware_seconds, rel=1e-12)
        # ... in one more round per time step of each training batch.
        batches = -(-len(Trainer(spec("vjp", model), InProcessExecutor()).dataset.x_train) // 10)
        assert vjp.rounds == jac.rounds + batches * 4


def test_with_shots_vjp_mode_trains_reproducibly_and_counts_the_shots() -> None:
    """The node differentiates shot-sampled requests by the shift rule, cotangents and all."""

    def run(mode: str) -> list[tuple[float, int, int]]:
        trainer = Trainer(spec(mode, "distributed", shots=200, epochs=2), InProcessExecutor())
        return [
            (m.train_loss, m.circuit_evaluations, m.shots) for m in (trainer.train_epoch() for _ in range(2))
        ]

    vjp, again, jacobian = run("vjp"), run("vjp"), run("jacobian")
    assert vjp == again  # seeded: the same samples every time
    for (v_loss, v_executions, v_shots), (j_loss, j_executions, j_shots) in zip(vjp, jacobian, strict=True):
        assert v_executions == j_executions and v_shots == j_shots > 0
        assert v_loss == pytest.approx(j_loss, rel=0.2)  # other samples, the same training
        assert v_loss != j_loss


def test_the_mode_travels_in_the_message_and_a_bad_one_names_the_field() -> None:
    assert JobSpec().gradient_mode == "jacobian"
    assert spec_from_proto(spec_to_proto(JobSpec(gradient_mode="vjp"))).gradient_mode == "vjp"
    with pytest.raises(SpecError, match="gradient_mode: must be one of jacobian, vjp; got 'adjoint'"):
        JobSpec(gradient_mode="adjoint")


def test_a_checkpoint_resumes_only_in_its_own_mode() -> None:
    trainer = Trainer(spec("vjp", "distributed"), InProcessExecutor())
    trainer.train_epoch()
    state = trainer.state_dict()
    with pytest.raises(ValueError, match="gradient_mode"):
        Trainer(spec("jacobian", "distributed"), InProcessExecutor()).load_state_dict(state)


def test_a_vjp_job_resumed_from_its_checkpoint_continues_bit_for_bit() -> None:
    """What a restarted coordinator does: the losses after the resume are the straight run's."""
    job = spec("vjp", "distributed", shots=100)
    straight = Trainer(job, InProcessExecutor())
    expected = [straight.train_epoch().train_loss for _ in range(2)]
    first = Trainer(job, InProcessExecutor())
    first.train_epoch()
    resumed = Trainer(job, InProcessExecutor())
    resumed.load_state_dict(first.state_dict())
    assert [first.history[0].train_loss, resumed.train_epoch().train_loss] == expected
