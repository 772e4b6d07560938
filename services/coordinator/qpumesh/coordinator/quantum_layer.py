"""One QLSTM time step's circuits as a differentiable torch operation.

``quantum_gates`` evaluates every sub-circuit of every gate (4 gates x M partitions)
for a whole mini-batch in ONE executor round: the forward pass sends one
``CircuitTask`` per sub-circuit whose value rows are [encoded inputs of the row,
the sub-circuit's weights], asking for parameter-shift Jacobians when a backward
pass will need them. The backward pass only contracts those saved Jacobians with
the incoming gradient (per row for the inputs, summed over rows for the shared
weights), so training costs one network round per time step and none in backward.
Everything is float64, as in the paper's setup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from qpumesh.coordinator.ansatz import Ansatz
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, RoundRunner


@dataclass(frozen=True)
class RoundContext:
    """The non-tensor arguments of one round.

    Attributes:
        executor: where the circuits run.
        keys: sub-circuit keys ("f/0", ...), one per task, in output order.
        ansatze: the built sub-circuit of each key.
        jacobian: ask the nodes for Jacobians (a backward pass will follow).
        shots: measurement shots per observable term (0 = exact).
        seed: base seed of the shot sampler; task k uses ``seed + k``.
    """

    executor: RoundRunner
    keys: tuple[str, ...]
    ansatze: tuple[Ansatz, ...]
    jacobian: bool
    shots: int = 0
    seed: int | None = None


class _QuantumRound(torch.autograd.Function):
    """Forward: one executor round over all sub-circuits. Backward: Jacobian contractions."""

    @staticmethod
    def forward(ctx: Any, context: RoundContext, *tensors: torch.Tensor) -> torch.Tensor:
        count = len(context.keys)
        inputs, weights = tensors[:count], tensors[count:]
        tasks = []
        for k, (key, ansatz) in enumerate(zip(context.keys, context.ansatze, strict=True)):
            rows = inputs[k].shape[0]
            w = weights[k].detach().reshape(1, -1).expand(rows, -1)
            values = torch.cat([inputs[k].detach(), w], dim=1).to(torch.float64).numpy()
            tasks.append(
                CircuitTask(
                    circuit=ansatz.circuit,
                    observables=ansatz.observables,
                    symbols=ansatz.symbols,
                    values=np.ascontiguousarray(values),
                    jacobian=context.jacobian,
                    shots=context.shots,
                    seed=None if context.seed is None else context.seed + k,
                    key=key,
                )
            )
        results = context.executor.run_round(tasks)
        _check_results(tasks, results)
        ctx.context = context
        ctx.jacobians = [
            torch.from_numpy(np.asarray(r.jacobian, dtype=np.float64)) if context.jacobian else None
            for r in results
        ]
        outputs = [torch.from_numpy(np.asarray(r.expectations, dtype=np.float64)) for r in results]
        return torch.cat(outputs, dim=1)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        context: RoundContext = ctx.context
        if not context.jacobian:
            raise RuntimeError("quantum_gates ran without Jacobians; call it with grad enabled to train")
        grad_inputs: list[torch.Tensor] = []
        grad_weights: list[torch.Tensor] = []
        start = 0
        for ansatz, jacobian in zip(context.ansatze, ctx.jacobians, strict=True):
            grad = grad_output[:, start : start + ansatz.outputs]
            start += ansatz.outputs
            # d loss / d value[r, s] = sum_o d loss / d out[r, o] * d out[r, o] / d value[r, s]
            per_row = torch.einsum("ro,ros->rs", grad, jacobian)
            n_in = len(ansatz.input_symbols)
            grad_inputs.append(per_row[:, :n_in])
            grad_weights.append(per_row[:, n_in:].sum(dim=0))
        return (None, *grad_inputs, *grad_weights)


def _check_results(tasks: Sequence[CircuitTask], results: Sequence[CircuitResult]) -> None:
    """Fail loudly if an executor returned the wrong number or shape of results."""
    if len(results) != len(tasks):
        raise RuntimeError(f"executor returned {len(results)} results for {len(tasks)} tasks")
    for task, result in zip(tasks, results, strict=True):
        rows, n_obs, n_sym = task.values.shape[0], len(task.observables), len(task.symbols)
        if result.expectations.shape != (rows, n_obs):
            raise RuntimeError(
                f"{task.key}: expectations of shape {result.expectations.shape}, expected {(rows, n_obs)}"
            )
        if task.jacobian and (result.jacobian is None or result.jacobian.shape != (rows, n_obs, n_sym)):
            shape = None if result.jacobian is None else result.jacobian.shape
            raise RuntimeError(f"{task.key}: jacobian of shape {shape}, expected {(rows, n_obs, n_sym)}")


def quantum_gates(
    executor: RoundRunner,
    keys: Sequence[str],
    ansatze: Sequence[Ansatz],
    inputs: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    *,
    shots: int = 0,
    seed: int | None = None,
) -> torch.Tensor:
    """Evaluate all sub-circuits of one time step in one executor round.

    Args:
        executor: where the circuits run.
        keys: one key per sub-circuit ("f/0", ...), used to route it to its node.
        ansatze: the built sub-circuit of each key.
        inputs: per sub-circuit, the encoding angles, shape (rows, len(input_symbols));
            every sub-circuit has the same number of rows (the mini-batch).
        weights: per sub-circuit, the trainable angles, shape (num_weights,).
        shots: measurement shots per observable term (0 = exact expectations).
        seed: base seed of the shot sampler.

    Returns:
        Float64 tensor (rows, sum of outputs): the sub-circuits' <Z> read-outs
        concatenated in ``keys`` order. Differentiable w.r.t. ``inputs`` and ``weights``.
    """
    if not (len(keys) == len(ansatze) == len(inputs) == len(weights)):
        raise ValueError("keys, ansatze, inputs and weights must have one entry per sub-circuit")
    tensors = [*inputs, *weights]
    jacobian = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    context = RoundContext(executor, tuple(keys), tuple(ansatze), jacobian, shots, seed)
    return cast(torch.Tensor, _QuantumRound.apply(context, *tensors))  # type: ignore[no-untyped-call]
