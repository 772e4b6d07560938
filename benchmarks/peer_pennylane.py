"""The coordinator's QLSTM in PennyLane: the peer the node engines are measured against.

Same model, data and training loop as ``qpumesh.coordinator`` (``JobSpec`` settings): the
pendulum windows of ``coordinator.data``, the planner's partitioning, the v0 or chen2020
ansatz with the same gates and read-outs, the encoding (arctan for chen2020) in torch,
RMSprop, MSE, mini-batches in time order, float64 -- and the *same initial weights* (taken
from a ``coordinator.model.QLSTM`` built with the same seed), so both runs follow the same
trajectory and their test R² can be compared. Each sub-circuit is a PennyLane QNode run
with parameter broadcasting over the mini-batch (``default.qubit``, ``diff_method
backprop`` by default; ``--device lightning.qubit --diff-method adjoint`` is the second peer
configuration).

Prints the wall seconds of every epoch and the median of epochs 2-3 (epoch 1 includes
tracing and warm-up), one line per epoch and a final summary line.

Install: ``pip install -e '.[peer]'`` with torch==2.13.0 already installed (pennylane does
not pull torch).

Usage:
    python benchmarks/peer_pennylane.py --model centric --qubits 4 --ansatz v0 --layers 5
    python benchmarks/peer_pennylane.py                      # default distributed model
    python benchmarks/peer_pennylane.py --model centric --qubits 10 --ansatz v0 --layers 5 \\
        --device lightning.qubit --diff-method adjoint
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import pennylane as qml
import torch
from torch import nn

from qpumesh.coordinator.data import make_dataset
from qpumesh.coordinator.metrics import r2_score
from qpumesh.coordinator.model import DTYPE, QLSTM
from qpumesh.coordinator.planner import GATES, Plan, plan_partitions
from qpumesh.coordinator.training import load_series
from qpumesh.wire.job_spec import INPUT_DIM, JobSpec

QNode = Callable[..., Any]


def make_qnode(
    qubits: int, outputs: int, ansatz: str, layers: int, *, device: str, diff_method: str
) -> QNode:
    """One sub-circuit as a QNode(angles (rows, n_angles), weights) -> <Z_i>, i < outputs."""
    dev = qml.device(device, wires=qubits)

    @qml.qnode(dev, interface="torch", diff_method=diff_method)  # type: ignore[untyped-decorator,misc]
    def circuit(angles: torch.Tensor, weights: torch.Tensor) -> Any:
        for i in range(qubits):
            qml.Hadamard(wires=i)
        for i in range(qubits):
            qml.RY(angles[:, i], wires=i)
        if ansatz == "chen2020":
            for i in range(qubits):
                qml.RZ(angles[:, qubits + i], wires=i)
        for layer in range(layers):
            if ansatz == "v0":
                for start in (0, 1):
                    for i in range(start, qubits - 1, 2):
                        qml.CNOT(wires=[i, i + 1])
                for i in range(qubits):
                    qml.RY(weights[layer, i], wires=i)
            else:
                for distance in (1, 2):
                    for i in range(qubits):
                        if (i + distance) % qubits != i:
                            qml.CNOT(wires=[i, (i + distance) % qubits])
                for i in range(qubits):
                    qml.RZ(weights[layer, i, 0], wires=i)
                    qml.RY(weights[layer, i, 1], wires=i)
                    qml.RZ(weights[layer, i, 2], wires=i)
        return [qml.expval(qml.PauliZ(i)) for i in range(outputs)]

    qnode: QNode = circuit
    return qnode


class PennyLaneQLSTM(nn.Module):
    """The coordinator's QLSTM (``coordinator.model.QLSTM``) with PennyLane QNodes as gates."""

    def __init__(  # noqa: PLR0917
        self, reference: QLSTM, plan: Plan, ansatz: str, layers: int, device: str, diff_method: str
    ) -> None:
        super().__init__()
        self.plan = plan
        self.ansatz = ansatz
        self.d_h = sum(plan.output_sizes)
        parts = list(zip(plan.input_sizes, plan.output_sizes, strict=True))
        self.qnodes = [
            make_qnode(q, o, ansatz, layers, device=device, diff_method=diff_method) for q, o in parts
        ]
        shape: Callable[[int], tuple[int, ...]] = (
            (lambda q: (layers, q)) if ansatz == "v0" else (lambda q: (layers, q, 3))
        )
        # Same initial weights as the coordinator's model, gate-major like its keys.
        self.weights = nn.ParameterList(
            nn.Parameter(w.detach().clone().reshape(shape(plan.input_sizes[k % plan.partitions])))
            for k, w in enumerate(reference.cell.weights)
        )
        self.head = nn.Linear(self.d_h, 1, dtype=DTYPE)
        self.head.load_state_dict(reference.head.state_dict())

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.ansatz == "v0" else torch.cat([torch.atan(v), torch.atan(v * v)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        h = torch.zeros(rows, self.d_h, dtype=DTYPE)
        c = torch.zeros(rows, self.d_h, dtype=DTYPE)
        m_parts = self.plan.partitions
        for t in range(x.shape[1]):
            v = torch.cat([h, x[:, t, :]], dim=1)
            encoded = [self.encode(p) for p in torch.split(v, list(self.plan.input_sizes), dim=1)]
            gates = []
            for g in range(len(GATES)):
                outs = []
                for m in range(m_parts):
                    values = self.qnodes[m](encoded[m], self.weights[g * m_parts + m])
                    outs.append(torch.stack(list(values), dim=1).to(DTYPE))
                gates.append(torch.cat(outs, dim=1))
            f, i, g_, o = gates
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g_)
            h = torch.sigmoid(o) * torch.tanh(c)
        prediction: torch.Tensor = self.head(h)
        return prediction


def train(spec: JobSpec, device: str, diff_method: str, epochs: int) -> list[tuple[float, float]]:
    """Train like ``coordinator.training.Trainer``; return (seconds, test R²) per epoch."""
    data = make_dataset(load_series(spec), spec.window, spec.train_fraction)
    torch.manual_seed(spec.seed)
    plan = plan_partitions(INPUT_DIM, spec.hidden_size, 1 if spec.model == "centric" else spec.partitions, ())
    reference = QLSTM(INPUT_DIM, plan, spec.ansatz, spec.layers, executor=None)  # type: ignore[arg-type]
    model = PennyLaneQLSTM(reference, plan, spec.ansatz, spec.layers, device, diff_method)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=spec.lr, alpha=0.99, eps=1e-8)
    loss_fn = nn.MSELoss()
    out = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        for first in range(0, len(data.x_train), spec.batch_size):
            x = data.x_train[first : first + spec.batch_size]
            y = data.y_train[first : first + spec.batch_size]
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            prediction = model(data.x_test.to(DTYPE)).numpy().reshape(-1)
        seconds = time.perf_counter() - start
        r2 = r2_score(data.y_test.numpy(), prediction)
        out.append((seconds, r2))
        print(f"epoch {epoch + 1}: {seconds:.2f} s, test R² {r2:.6f}", flush=True)
    return out


def median_epoch(seconds: Sequence[float]) -> float:
    """Median of epochs 2-3 (epoch 1 is warm-up), or of what there is."""
    tail = list(seconds[1:3]) or list(seconds)
    return statistics.median(tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("centric", "distributed"), default="distributed")
    parser.add_argument("--qubits", type=int, default=4, help="width of v_t (d_x + d_h), as JobSpec.qubits")
    parser.add_argument("--partitions", type=int, default=2, help="M for the distributed model")
    parser.add_argument("--ansatz", choices=("v0", "chen2020"), default="chen2020")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="default.qubit", help="default.qubit or lightning.qubit")
    parser.add_argument("--diff-method", default="backprop", help="backprop (default.qubit) or adjoint")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    spec = JobSpec(
        model=args.model,
        qubits=args.qubits,
        partitions=args.partitions,
        ansatz=args.ansatz,
        layers=args.layers,
        epochs=args.epochs,
        seed=args.seed,
    )
    print(
        f"# PennyLane {qml.__version__} {args.device} ({args.diff_method}), torch {torch.__version__} "
        f"({torch.get_num_threads()} thread): {spec.model} {spec.ansatz} L={spec.layers} "
        f"qubits={spec.qubits} partitions={spec.partitions if spec.model == 'distributed' else 1}",
        flush=True,
    )
    results = train(spec, args.device, args.diff_method, args.epochs)
    seconds = [s for s, _ in results]
    print(f"median s/epoch (epochs 2-3): {median_epoch(seconds):.3f}  final test R²: {results[-1][1]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
