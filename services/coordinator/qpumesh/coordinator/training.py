"""The training loop of one job: data, plan, model, optimizer, epochs, checkpoints.

A ``Trainer`` is built from a ``JobSpec`` and an ``Executor`` (None only for the
classical baseline). Each ``train_epoch`` walks the training windows in time order
in mini-batches (no shuffling, as in Chen's code), one optimizer step per batch,
then scores the test windows without gradients (so the nodes evaluate expectations
only, no Jacobians). ``state_dict``/``load_state_dict`` capture everything needed
to resume bit-for-bit: model, optimizer, torch RNG, epoch, history, spec.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from qpumesh.coordinator.custom_ansatz import parse_circuits
from qpumesh.coordinator.data import (
    Check,
    DataError,
    Dataset,
    make_dataset,
    narma2_paper_series,
    narma_series,
    pendulum_series,
)
from qpumesh.coordinator.executor import RoundRunner
from qpumesh.coordinator.metrics import best_epoch, convergence_epoch, r2_score
from qpumesh.coordinator.model import DTYPE, QLSTM, ClassicalLSTM, count_parameters
from qpumesh.coordinator.planner import Plan, plan_partitions
from qpumesh.wire.job_spec import INPUT_DIM, JobSpec

__all__ = ["TRAINER_INIT", "EpochMetrics", "Trainer", "convergence_epoch", "load_series"]

TRAINER_INIT = threading.Lock()
"""Hold while a ``Trainer`` is built or loaded in a process that runs several: both seed or set
torch's global RNG."""

_RESUME_IGNORED = frozenset({"name", "epochs", "extra"})
"""Spec fields that may differ between a checkpoint and the trainer loading it."""


@dataclass
class EpochMetrics:
    """What one epoch did.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean MSE of the epoch's mini-batches (scaled units, before each step).
        test_loss: MSE on the test windows after the epoch (scaled units).
        test_r2: R² on the test windows after the epoch.
        wall_seconds: wall time of the epoch, training and evaluation.
        circuit_evaluations: circuit executions the epoch would cost a hardware QPU, as the
            nodes report them (the parameter-shift rule's two per gate angle included).
        rounds: executor rounds (one per time step and mini-batch, two in gradient mode
            "vjp", plus evaluation).
        shots: measurement shots those executions take (0 for exact runs).
        hardware_seconds: estimated wall time of the epoch's rounds on the nodes' hardware
            profiles (each round's slowest node plus network; docs/hardware.md).
    """

    epoch: int
    train_loss: float
    test_loss: float
    test_r2: float
    wall_seconds: float
    circuit_evaluations: int
    rounds: int
    shots: int = 0
    hardware_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON, CSV and checkpoints."""
        return dataclasses.asdict(self)


def _never() -> None:
    """Never stop (the default ``check``)."""


def load_series(spec: JobSpec, check: Check = _never) -> npt.NDArray[np.float64]:
    """Return the raw series a spec trains on: pendulum, NARMA-n, the paper's NARMA-2, or the user's.

    A user's series is ``spec.series``.

    ``check`` is called during generation and raises to stop it (a cancelled job).

    Raises:
        DataError: a "csv" spec whose series was not filled in (the coordinator reads a
            ``csv_path`` into ``series`` at submission).
    """
    if spec.task == "pendulum":
        return pendulum_series(points=spec.series_length, check=check)
    if spec.task == "narma":
        return narma_series(spec.narma_order, spec.series_length, check=check)
    if spec.task == "narma2":
        return narma2_paper_series(spec.series_length, check=check)
    if not spec.series:
        raise DataError("task 'csv' without series values (the coordinator reads csv_path at submission)")
    return np.asarray(spec.series, dtype=np.float64)


class Trainer:
    """Trains one model of a ``JobSpec`` epoch by epoch.

    Args:
        spec: the experiment.
        executor: where the circuits run; None only for ``model == "classical"``.
        node_max_qubits: max qubits of the nodes the planner may use (empty: no
            limit, in-process execution).
        check: called while the series is generated and before every mini-batch; raises
            to stop the trainer (a cancelled job stops within a fraction of a second).

    Raises:
        ValueError: for a quantum model without an executor, data that cannot be
            loaded, or a partitioning that does not fit the nodes.
    """

    def __init__(
        self,
        spec: JobSpec,
        executor: RoundRunner | None,
        node_max_qubits: Sequence[int] = (),
        check: Check = _never,
    ) -> None:
        self.spec = spec
        self.executor = executor
        self.check = check
        self.history: list[EpochMetrics] = []
        self.epoch = 0
        self.plan: Plan | None = None
        self.dataset: Dataset = make_dataset(load_series(spec, check), spec.window, spec.train_fraction)
        torch.manual_seed(spec.seed)
        self.model: nn.Module
        if spec.model == "classical":
            self.model = ClassicalLSTM(INPUT_DIM, spec.hidden_size)
        else:
            if executor is None:
                raise ValueError(f"model {spec.model!r} needs an executor to run its circuits")
            partitions = 1 if spec.model == "centric" else spec.partitions
            self.plan = plan_partitions(INPUT_DIM, spec.hidden_size, partitions, node_max_qubits)
            circuits = parse_circuits(spec.ansatz_circuit) if spec.ansatz == "custom" else None
            self.model = QLSTM(
                INPUT_DIM, self.plan, spec.ansatz, spec.layers, executor, shots=spec.shots, seed=spec.seed,
                circuits=circuits, gradient_mode=spec.gradient_mode,
            )  # fmt: skip
        self.optimizer: torch.optim.Optimizer
        if spec.optimizer == "rmsprop":
            self.optimizer = torch.optim.RMSprop(self.model.parameters(), lr=spec.lr, alpha=0.99, eps=1e-8)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=spec.lr)
        self.loss_fn = nn.MSELoss()

    def train_epoch(self) -> EpochMetrics:
        """Run one epoch over the training windows, then evaluate on the test windows."""
        start = time.perf_counter()
        before = self._counters()
        data = self.dataset
        self.model.train()
        total, count = 0.0, 0
        for first in range(0, len(data.x_train), self.spec.batch_size):
            self.check()
            x = data.x_train[first : first + self.spec.batch_size]
            y = data.y_train[first : first + self.spec.batch_size]
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        test_pred = self._forward(data.x_test)
        after = self._counters()
        self.epoch += 1
        metrics = EpochMetrics(
            epoch=self.epoch,
            train_loss=total / count,
            test_loss=float(np.mean((test_pred - data.y_test.numpy().reshape(-1)) ** 2)),
            test_r2=r2_score(data.y_test.numpy(), test_pred),
            wall_seconds=time.perf_counter() - start,
            circuit_evaluations=after[0] - before[0],
            rounds=after[1] - before[1],
            shots=after[2] - before[2],
            hardware_seconds=after[3] - before[3],
        )
        self.history.append(metrics)
        return metrics

    def _forward(self, x: torch.Tensor) -> npt.NDArray[np.float64]:
        """Predictions (scaled units) for windows ``x``, in one batch, without gradients."""
        self.model.eval()
        with torch.no_grad():
            return np.asarray(self.model(x.to(DTYPE)).numpy(), dtype=np.float64).reshape(-1)

    def _counters(self) -> tuple[int, int, int, float]:
        if self.executor is None:
            return 0, 0, 0, 0.0
        snap = self.executor.stats.snapshot()
        return snap["circuit_evaluations"], snap["rounds"], snap["shots"], snap["hardware_seconds"]

    def _cell_rounds(self) -> int:
        return self.model.cell.rounds_run if isinstance(self.model, QLSTM) else 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume; loadable with ``torch.load(weights_only=True)``."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "history": [m.to_dict() for m in self.history],
            "spec": self.spec.to_dict(),
            "rounds_run": self._cell_rounds(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state_dict()`` output of a trainer with the same model settings.

        Raises:
            ValueError: if the checkpoint was made for a different model or data.
        """
        saved = dict(state["spec"])
        mine = self.spec.to_dict()
        # A field newer than the checkpoint (e.g. ansatz_circuit) has its default there.
        defaults = JobSpec().to_dict()
        differing = sorted(
            k for k in mine if k not in _RESUME_IGNORED and saved.get(k, defaults[k]) != mine[k]
        )
        if differing:
            raise ValueError(f"checkpoint spec differs in {differing}; cannot resume this job from it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.history = [EpochMetrics(**m) for m in state["history"]]
        if isinstance(self.model, QLSTM):
            self.model.cell.rounds_run = int(state.get("rounds_run", 0))

    def predict(self, series: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """One-step-ahead predictions for every window of a raw series, in raw units.

        The series is scaled with the training scaler. Prediction k reads
        series[k : k + window] and forecasts series[k + window]; the last one
        forecasts the value after the end of the series. Returns len - window + 1 values.

        Raises:
            ValueError: if the series is shorter than one window or not finite.
        """
        raw = np.asarray(series, dtype=np.float64).reshape(-1)
        window = self.spec.window
        if len(raw) < window:
            raise ValueError(f"needs at least window={window} values, got {len(raw)}")
        if not np.all(np.isfinite(raw)):
            bad = int(np.flatnonzero(~np.isfinite(raw))[0])
            raise ValueError(f"value {bad} is {raw[bad]:g}; every value must be a finite number")
        scaled = self.dataset.scaler.transform(raw)
        index = np.arange(len(raw) - window + 1)[:, None] + np.arange(window)[None, :]
        x = torch.from_numpy(scaled[index]).unsqueeze(-1)
        return self.dataset.scaler.inverse(self._forward(x))

    def predictions(self) -> dict[str, np.ndarray]:
        """Targets and predictions in raw units over all windows, for predictions.csv and plots.

        Returns:
            "time_index": index in the series of each target; "target"; "prediction";
            "split": 0-d array, the index of the first test window.
        """
        x, y = self.dataset.all_windows()
        scaler = self.dataset.scaler
        return {
            "time_index": np.arange(len(x)) + self.spec.window,
            "target": scaler.inverse(y.numpy().reshape(-1)),
            "prediction": scaler.inverse(self._forward(x)),
            "split": np.asarray(self.dataset.split),
        }

    def summary(self) -> dict[str, Any]:
        """Summarise the run: final scores, convergence epoch and history.

        ``convergence_epoch`` is ``metrics.convergence_epoch`` of the test R² history.
        """
        r2 = [m.test_r2 for m in self.history]
        last = self.history[-1] if self.history else None
        return {
            "model": self.spec.model,
            "task": self.spec.task,
            "epochs": self.epoch,
            "test_r2": last.test_r2 if last else float("nan"),
            "test_loss": last.test_loss if last else float("nan"),
            "train_loss": last.train_loss if last else float("nan"),
            "convergence_epoch": convergence_epoch(r2),
            "best_train_loss_epoch": best_epoch([m.train_loss for m in self.history]),
            "parameters": count_parameters(self.model),
            "plan": self.plan.to_dict() if self.plan else None,
            "wall_seconds": sum(m.wall_seconds for m in self.history),
            "hardware_seconds": sum(m.hardware_seconds for m in self.history),
            "circuit_evaluations": sum(m.circuit_evaluations for m in self.history),
            "shots": sum(m.shots for m in self.history),
            "rounds": sum(m.rounds for m in self.history),
            "history": [m.to_dict() for m in self.history],
        }
