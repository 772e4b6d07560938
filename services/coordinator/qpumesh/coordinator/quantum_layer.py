"""One QLSTM time step's circuits as a differentiable torch operation.

``quantum_gates`` evaluates every part's circuit for every gate and the whole
mini-batch in ONE executor round. The four gates of a part share one circuit and
differ only in their weights, so a part is ONE ``CircuitTask`` whose value rows are
the mini-batch's rows once per gate, stacked gate after gate: row ``g * rows + r``
is [encoded inputs of row r, the weights of gate g]. A time step therefore costs M
requests (one per part), not 4*M; each row's numbers are the same whichever rows
share its request (the nodes compute rows independently), so the stacking changes
the cost, not the arithmetic.

Two gradient modes (``JobSpec.gradient_mode``; docs/model.md, "Gradient modes"):

- ``"jacobian"`` (the default): the forward pass asks for the Jacobians when a backward
  pass will need them; the backward pass only contracts those saved Jacobians with the
  incoming gradient, so training costs one network round per time step and none in
  backward. A node's adjoint Jacobian costs one reverse sweep per read-out, so this
  suits narrow parts, where the round trip dominates.
- ``"vjp"``: the forward pass only evaluates; the backward pass sends one more round per
  time step whose tasks carry the incoming gradient as cotangents, and each node returns
  the vector-Jacobian product from ONE weighted reverse sweep, whatever the read-outs.
  Twice the rounds, a fraction of the node work for wide parts (a centric 16-qubit
  model has 15 read-outs).

Either way the per-row derivative (gates, rows, symbols) is then split the same way:
per row for the inputs, summed over rows for each gate's weights. Everything is
float64, as in the paper's setup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from qpumesh.coordinator.ansatz import Ansatz
from qpumesh.coordinator.executor import CircuitResult, CircuitTask, FloatArray, RoundRunner
from qpumesh.wire.job_spec import GRADIENT_MODES


@dataclass(frozen=True)
class RoundContext:
    """The non-tensor arguments of one round.

    Attributes:
        executor: where the circuits run.
        keys: part keys ("part/0", ...), one per task, in output order.
        ansatze: the built circuit of each part.
        gates: weight sets per part (the LSTM's 4 gates), stacked in each task.
        jacobian: ask the nodes for Jacobians (a backward pass will follow, mode "jacobian").
        shots: measurement shots per observable term (0 = exact).
        seed: base seed of the shot sampler; part k uses ``seed + k``.
        vjp: the backward pass runs a round of vector-Jacobian products (mode "vjp").
    """

    executor: RoundRunner
    keys: tuple[str, ...]
    ansatze: tuple[Ansatz, ...]
    gates: int
    jacobian: bool
    shots: int = 0
    seed: int | None = None
    vjp: bool = False

    @property
    def width(self) -> int:
        """Read-outs of one gate: the sum of the parts' outputs (d_h)."""
        return sum(a.outputs for a in self.ansatze)

    def backward_seed(self, part: int) -> int | None:
        """Return the shot sampler's seed of part ``part``'s VJP, drawn apart from the forward's seeds.

        The VJP's shifted evaluations then sample independently of the forward values.
        """
        if self.seed is None:
            return None
        return int(np.random.SeedSequence([self.seed, 1]).generate_state(1)[0]) + part


class _QuantumRound(torch.autograd.Function):
    """Forward: one executor round over all parts. Backward: Jacobian contractions, or a VJP round."""

    @staticmethod
    def forward(ctx: Any, context: RoundContext, *tensors: torch.Tensor) -> torch.Tensor:
        parts, gates = len(context.keys), context.gates
        inputs, weights = tensors[:parts], tensors[parts:]
        rows = int(inputs[0].shape[0])
        tasks = []
        for k, (key, ansatz) in enumerate(zip(context.keys, context.ansatze, strict=True)):
            n_in = len(ansatz.input_symbols)
            values = np.empty((gates * rows, len(ansatz.symbols)), dtype=np.float64)
            encoded = inputs[k].detach().numpy()
            for g in range(gates):
                block = values[g * rows : (g + 1) * rows]
                block[:, :n_in] = encoded
                block[:, n_in:] = weights[k * gates + g].detach().numpy()
            tasks.append(
                CircuitTask(
                    circuit=ansatz.circuit,
                    observables=ansatz.observables,
                    symbols=ansatz.symbols,
                    values=values,
                    jacobian=context.jacobian,
                    shots=context.shots,
                    seed=None if context.seed is None else context.seed + k,
                    key=key,
                )
            )
        results = context.executor.run_round(tasks)
        _check_results(tasks, results)
        ctx.context = context
        ctx.rows = rows
        ctx.jacobians = [r.jacobian for r in results] if context.jacobian else None
        ctx.tasks = tasks if context.vjp else None
        # Output columns: gate-major, then part: [f: part 0, part 1, ...; i: ...; g: ...; o: ...].
        width = context.width
        out = np.empty((rows, gates * width), dtype=np.float64)
        start = 0
        for ansatz, result in zip(context.ansatze, results, strict=True):
            stop = start + ansatz.outputs
            assert result.expectations is not None  # checked by _check_results
            for g in range(gates):
                out[:, g * width + start : g * width + stop] = result.expectations[g * rows : (g + 1) * rows]
            start = stop
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        context: RoundContext = ctx.context
        rows, gates, width = ctx.rows, context.gates, context.width
        grad = grad_output.numpy()
        # Per part, d loss / d out[r, o] of the stacked task's rows (gate-major): (gates, rows, outputs).
        upstream: list[FloatArray] = []
        start = 0
        for ansatz in context.ansatze:
            stop = start + ansatz.outputs
            upstream.append(np.stack([grad[:, g * width + start : g * width + stop] for g in range(gates)]))
            start = stop
        if ctx.tasks is not None:
            per_rows = _vjp_round(context, ctx.tasks, upstream)
        elif ctx.jacobians is not None:
            # d loss / d value[r, s] = sum_o d loss / d out[r, o] * d out[r, o] / d value[r, s].
            per_rows = [
                np.einsum("gro,gros->grs", up, jacobian.reshape(gates, rows, *jacobian.shape[1:]))
                for up, jacobian in zip(upstream, ctx.jacobians, strict=True)
            ]
        else:
            raise RuntimeError("quantum_gates ran without Jacobians; call it with grad enabled to train")
        grad_inputs: list[torch.Tensor] = []
        grad_weights: list[torch.Tensor] = []
        for ansatz, per_row in zip(context.ansatze, per_rows, strict=True):
            n_in = len(ansatz.input_symbols)
            # The encoded inputs feed every gate; their gradients add up in gate order.
            grad_input = per_row[0, :, :n_in]
            for g in range(1, gates):
                grad_input = grad_input + per_row[g, :, :n_in]
            grad_inputs.append(torch.from_numpy(grad_input))
            # Each gate's weights are shared by its rows (torch sums rows in the order it always has).
            grad_weights.extend(torch.from_numpy(per_row[:, :, n_in:]).sum(dim=1).unbind(0))
        return (None, *grad_inputs, *grad_weights)


def _vjp_round(
    context: RoundContext, tasks: Sequence[CircuitTask], upstream: Sequence[FloatArray]
) -> list[FloatArray]:
    """Run the backward round of mode "vjp": each forward task again, with its cotangents.

    Args:
        context: the forward round's context.
        tasks: the forward round's tasks (their circuits and parameter rows).
        upstream: per part, d loss / d out of shape (gates, rows, outputs).

    Returns:
        Per part, d loss / d values of shape (gates, rows, n_symbols).
    """
    vjp_tasks = [
        dataclasses.replace(
            task,
            jacobian=False,
            cotangents=np.ascontiguousarray(up.reshape(-1, up.shape[-1])),
            seed=None if task.seed is None else context.backward_seed(k),
        )
        for k, (task, up) in enumerate(zip(tasks, upstream, strict=True))
    ]
    results = context.executor.run_round(vjp_tasks)
    _check_results(vjp_tasks, results)
    return [
        cast(FloatArray, r.vjp).reshape(context.gates, -1, len(t.symbols))
        for t, r in zip(vjp_tasks, results, strict=True)
    ]


def _check_results(tasks: Sequence[CircuitTask], results: Sequence[CircuitResult]) -> None:
    """Fail loudly if an executor returned the wrong number or shape of results."""
    if len(results) != len(tasks):
        raise RuntimeError(f"executor returned {len(results)} results for {len(tasks)} tasks")
    for task, result in zip(tasks, results, strict=True):
        rows, n_obs, n_sym = task.values.shape[0], len(task.observables), len(task.symbols)
        if task.cotangents is not None:
            if result.vjp is None or result.vjp.shape != (rows, n_sym):
                shape = None if result.vjp is None else result.vjp.shape
                raise RuntimeError(f"{task.key}: vjp of shape {shape}, expected {(rows, n_sym)}")
            continue
        if result.expectations is None or result.expectations.shape != (rows, n_obs):
            shape = None if result.expectations is None else result.expectations.shape
            raise RuntimeError(f"{task.key}: expectations of shape {shape}, expected {(rows, n_obs)}")
        if task.jacobian and (result.jacobian is None or result.jacobian.shape != (rows, n_obs, n_sym)):
            shape = None if result.jacobian is None else result.jacobian.shape
            raise RuntimeError(f"{task.key}: jacobian of shape {shape}, expected {(rows, n_obs, n_sym)}")


def quantum_gates(
    executor: RoundRunner,
    keys: Sequence[str],
    ansatze: Sequence[Ansatz],
    inputs: Sequence[torch.Tensor],
    weights: Sequence[Sequence[torch.Tensor]],
    *,
    shots: int = 0,
    seed: int | None = None,
    gradient_mode: str = "jacobian",
) -> torch.Tensor:
    """Evaluate every part's circuit for every gate, for the whole batch, in one executor round.

    Args:
        executor: where the circuits run.
        keys: one key per part ("part/0", ...), used to route it to its node.
        ansatze: the built circuit of each part.
        inputs: per part, the encoding angles, float64 of shape (rows, len(input_symbols));
            every part has the same number of rows (the mini-batch).
        weights: per part, the trainable angles of each gate (float64, shape (num_weights,));
            every part has the same number of gates.
        shots: measurement shots per observable term (0 = exact expectations).
        seed: base seed of the shot sampler.
        gradient_mode: "jacobian" (Jacobians in this round, none in backward) or "vjp"
            (values only here; the backward pass runs one round of vector-Jacobian products).

    Returns:
        Float64 tensor (rows, gates * sum of outputs): for each gate in order, the parts'
        <Z> read-outs concatenated in ``keys`` order. Differentiable w.r.t. ``inputs`` and
        ``weights``.

    Raises:
        ValueError: the per-part sequences differ in length, the parts differ in gates, or
            an unknown ``gradient_mode``.
    """
    if gradient_mode not in GRADIENT_MODES:
        raise ValueError(f"gradient_mode must be one of {', '.join(GRADIENT_MODES)}; got {gradient_mode!r}")
    if not (len(keys) == len(ansatze) == len(inputs) == len(weights)) or not keys:
        raise ValueError("keys, ansatze, inputs and weights must have one entry per part")
    if any(isinstance(w, torch.Tensor) for w in weights):
        raise ValueError(
            "weights: give, per part, a sequence of gate weight tensors ([[w_f, w_i, ...], ...])"
        )
    gates = len(weights[0])
    if gates < 1 or any(len(w) != gates for w in weights):
        raise ValueError("every part needs the same number (>= 1) of gate weights")
    tensors = [*inputs, *(w for part in weights for w in part)]
    if any(t.dtype != torch.float64 for t in tensors):
        raise ValueError("inputs and weights must be float64 tensors")
    differentiate = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    vjp = differentiate and gradient_mode == "vjp"
    context = RoundContext(
        executor, tuple(keys), tuple(ansatze), gates, differentiate and not vjp, shots, seed, vjp
    )
    return cast(torch.Tensor, _QuantumRound.apply(context, *tensors))  # type: ignore[no-untyped-call]
