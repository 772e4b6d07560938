"""The QLSTM (centric and distributed) and the classical LSTM baseline.

The cell follows the paper (Eq. 2-8). With v_t = [h_{t-1}; x_t] (D = d_h + d_x):

    f = sigma(VQC_f(v)),  i = sigma(VQC_i(v)),  C~ = tanh(VQC_g(v)),  o = sigma(VQC_o(v))
    c_t = f * c_{t-1} + i * C~,   h_t = o * tanh(c_t)

A *distributed* cell cuts v_t into M contiguous parts (sizes D_m from the planner);
gate alpha's pre-activation is the concatenation [VQC_alpha^(1)(v^(1)), ...,
VQC_alpha^(M)(v^(M))] of M sub-circuits with d_h^(m) read-outs each (sum = d_h).
The *centric* cell is the M = 1 case: one (d_x + d_h)-qubit VQC per gate reading
<Z> on its first d_h qubits. All 4*M sub-circuits of a time step run in one
executor round (``quantum_layer.quantum_gates``), as M requests: the four gates of a
part share its circuit; in gradient mode "vjp" the backward pass adds one round per
time step. A Linear(d_h, 1) head maps the last hidden state to the
prediction.
"""

from __future__ import annotations

from collections.abc import Mapping

import cirq
import numpy as np
import torch
from torch import nn

from qpumesh.coordinator.ansatz import Ansatz, build_ansatz
from qpumesh.coordinator.custom_ansatz import custom_ansatz
from qpumesh.coordinator.executor import RoundRunner
from qpumesh.coordinator.planner import GATES, Plan
from qpumesh.coordinator.quantum_layer import quantum_gates

DTYPE = torch.float64
WEIGHT_SCALE = 0.01
"""Circuit weights start at 0.01 * N(0, 1), as in Chen's QLSTM code."""


class QLSTMCell(nn.Module):
    """One QLSTM time step whose four gates are (sums of) VQCs.

    Args:
        d_x: input size per time step.
        plan: the partitioning; ``sum(plan.input_sizes) == d_x + d_h``.
        ansatz: "v0", "chen2020" or "custom" (then ``circuits`` are used).
        layers: variational layers per sub-circuit (built-in ansatzes).
        executor: where the circuits run.
        shots: measurement shots per observable term (0 = exact expectations).
        seed: base seed for shot sampling (rounds are numbered from it).
        circuits: a custom ansatz's circuits by width (``custom_ansatz.parse_circuits``).
        gradient_mode: "jacobian" or "vjp" (``quantum_layer.quantum_gates``).
    """

    def __init__(
        self,
        d_x: int,
        plan: Plan,
        ansatz: str,
        layers: int,
        executor: RoundRunner,
        *,
        shots: int = 0,
        seed: int = 0,
        circuits: Mapping[int, cirq.Circuit] | None = None,
        gradient_mode: str = "jacobian",
    ) -> None:
        super().__init__()
        self.d_x = d_x
        self.d_h = sum(plan.output_sizes)
        self.plan = plan
        self.executor = executor
        self.shots = shots
        self.seed = seed
        self.gradient_mode = gradient_mode
        self.rounds_run = 0
        self.partition_circuits: tuple[Ansatz, ...] = tuple(
            custom_ansatz(circuits, qubits, outputs) if ansatz == "custom" and circuits is not None
            else build_ansatz(ansatz, qubits, layers, outputs)
            for qubits, outputs in zip(plan.input_sizes, plan.output_sizes, strict=True)
        )  # fmt: skip
        self.keys = plan.keys
        # Gate-major, like the sub-circuit names: f/0..f/M-1, i/0.., g/0.., o/0..
        self.weights = nn.ParameterList(
            nn.Parameter(WEIGHT_SCALE * torch.randn(self.partition_circuits[m].num_weights, dtype=DTYPE))
            for _ in GATES
            for m in range(plan.partitions)
        )

    def forward(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one time step.

        Args:
            x_t: inputs (rows, d_x).
            state: (h_{t-1}, c_{t-1}), each (rows, d_h).

        Returns:
            (h_t, c_t).
        """
        h, c = state
        v = torch.cat([h, x_t], dim=1)
        parts = torch.split(v, list(self.plan.input_sizes), dim=1)
        encoded = [a.encode(p) for a, p in zip(self.partition_circuits, parts, strict=True)]
        partitions = self.plan.partitions
        weights = [[self.weights[g * partitions + m] for g in range(len(GATES))] for m in range(partitions)]
        seed = None
        if self.shots:
            seed = int(np.random.SeedSequence([self.seed, self.rounds_run]).generate_state(1)[0])
        self.rounds_run += 1
        out = quantum_gates(
            self.executor, self.keys, self.partition_circuits, encoded, weights, shots=self.shots, seed=seed,
            gradient_mode=self.gradient_mode,
        )  # fmt: skip
        d = self.d_h
        f, i, g, o = (out[:, k * d : (k + 1) * d] for k in range(len(GATES)))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class QLSTM(nn.Module):
    """A QLSTM cell unrolled over a window, then Linear(d_h, 1) on the last hidden state.

    Args:
        d_x: input size per time step.
        plan: the partitioning (M = 1 for the centric model).
        ansatz, layers, executor, shots, seed, circuits, gradient_mode: see ``QLSTMCell``.
    """

    def __init__(
        self,
        d_x: int,
        plan: Plan,
        ansatz: str,
        layers: int,
        executor: RoundRunner,
        *,
        shots: int = 0,
        seed: int = 0,
        circuits: Mapping[int, cirq.Circuit] | None = None,
        gradient_mode: str = "jacobian",
    ) -> None:
        super().__init__()
        self.cell = QLSTMCell(
            d_x, plan, ansatz, layers, executor, shots=shots, seed=seed, circuits=circuits,
            gradient_mode=gradient_mode,
        )  # fmt: skip
        self.head = nn.Linear(self.cell.d_h, 1, dtype=DTYPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows (rows, window, d_x) to next-value predictions (rows, 1)."""
        rows = x.shape[0]
        h = torch.zeros(rows, self.cell.d_h, dtype=DTYPE)
        c = torch.zeros(rows, self.cell.d_h, dtype=DTYPE)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t, :], (h, c))
        prediction: torch.Tensor = self.head(h)
        return prediction


class ClassicalLSTM(nn.Module):
    """The classical baseline: torch's LSTM with the same hidden size, and the same head."""

    def __init__(self, d_x: int, d_h: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d_x, d_h, batch_first=True, dtype=DTYPE)
        self.head = nn.Linear(d_h, 1, dtype=DTYPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows (rows, window, d_x) to next-value predictions (rows, 1)."""
        out, _ = self.lstm(x)
        prediction: torch.Tensor = self.head(out[:, -1, :])
        return prediction


def count_parameters(model: nn.Module) -> int:
    """Count the trainable scalars (circuit weights plus classical head/LSTM)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
