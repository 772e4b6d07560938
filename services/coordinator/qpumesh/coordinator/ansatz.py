"""The variational circuits (VQCs) of the QLSTM gates.

A sub-circuit acts on ``q`` qubits, reads ``q`` entries of v_t = [h_{t-1}; x_t]
through an *encoding*, applies ``L`` trainable layers and returns <Z> of its first
``d_out`` qubits. Two ansatzes are supported:

- ``"v0"`` (Chen's QLSTM_v0 script): H on every qubit, RY(v_i); each layer is a
  CNOT ladder on (0,1),(2,3),... then (1,2),(3,4),..., then a trainable RY per qubit.
- ``"chen2020"`` (Chen, Yoo, Fang 2020): H, RY(arctan v_i), RZ(arctan v_i^2); each
  layer is a ring of CNOTs i -> i+1 then i -> i+2 (mod q), then Rot = RZ.RY.RZ per qubit.

The circuit's encoding symbols are plain *angles*: the non-linear part of an
encoding (arctan) is computed in torch by ``Ansatz.encode``, so autograd applies
the chain rule and the node only ever sees gates whose angle is one symbol. Each
sub-circuit is built and serialised once; every time step then only sends values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cirq
import sympy
import torch

from qpumesh.wire.circuits import PauliTerms, WireCircuit, pauli_terms

ANSATZES = ("v0", "chen2020")
CUSTOM_INPUT_KINDS = ("x", "atan_x", "atan_x2")
"""A custom ansatz's input symbols ``KIND_i``: angle ``v_i``, ``arctan v_i``, ``arctan v_i^2``."""


@dataclass(frozen=True)
class Ansatz:
    """One built sub-circuit: the serialised circuit plus how to feed and read it.

    Attributes:
        name: "v0", "chen2020" or "custom" (``custom_ansatz``: the job's own circuit).
        qubits: q, the number of inputs (one per qubit) of the sub-circuit.
        layers: L, the number of variational layers.
        outputs: d_out, the number of <Z> read-outs (on qubits 0..d_out-1).
        circuit: the circuit, serialised once for every request.
        observables: one dense <Z_i> observable per output.
        input_symbols: names of the encoding angles (the first columns of a task's values).
        weight_symbols: names of the trainable angles (the remaining columns).
    """

    name: str
    qubits: int
    layers: int
    outputs: int
    circuit: WireCircuit
    observables: tuple[PauliTerms, ...]
    input_symbols: tuple[str, ...]
    weight_symbols: tuple[str, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        """All symbols in the column order of a task's values: encoding, then weights."""
        return self.input_symbols + self.weight_symbols

    @property
    def num_weights(self) -> int:
        """Number of trainable parameters of the sub-circuit (P_VQC)."""
        return len(self.weight_symbols)

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """Map the sub-vector ``v`` (rows, q) to the encoding angles (rows, len(input_symbols)).

        Differentiable, so gradients reach h_{t-1} (and earlier time steps) through it.
        """
        if self.name == "v0":
            return v
        if self.name == "custom":
            return _encode_custom(self.input_symbols, v)
        return torch.cat([torch.atan(v), torch.atan(v * v)], dim=1)


def build_ansatz(name: str, qubits: int, layers: int, outputs: int) -> Ansatz:
    """Build (and serialise) one sub-circuit.

    Args:
        name: "v0" or "chen2020".
        qubits: number of qubits q (= number of inputs), at least 1.
        layers: number of variational layers L, at least 1.
        outputs: number of <Z> read-outs d_out, 1 <= d_out <= q.

    Raises:
        ValueError: for an unknown ansatz or inconsistent sizes.
    """
    if name not in ANSATZES:
        raise ValueError(f"unknown ansatz {name!r}; choose one of {', '.join(ANSATZES)}")
    if qubits < 1 or layers < 1:
        raise ValueError(f"need at least one qubit and one layer, got qubits={qubits}, layers={layers}")
    if not 1 <= outputs <= qubits:
        raise ValueError(f"outputs must be between 1 and qubits={qubits}, got {outputs}")
    wires = cirq.LineQubit.range(qubits)
    if name == "v0":
        circuit, inputs, weights = _v0(wires, layers)
    else:
        circuit, inputs, weights = _chen2020(wires, layers)
    observables = tuple(pauli_terms(cirq.Z(wires[i]), wires) for i in range(outputs))
    return Ansatz(
        name=name,
        qubits=qubits,
        layers=layers,
        outputs=outputs,
        circuit=WireCircuit.from_cirq(circuit),
        observables=observables,
        input_symbols=tuple(inputs),
        weight_symbols=tuple(weights),
    )


def _v0(wires: list[cirq.LineQubit], layers: int) -> tuple[cirq.Circuit, list[str], list[str]]:
    """H + RY(x_i) encoding; layers of two CNOT ladders and one RY per qubit."""
    q = len(wires)
    inputs = [f"x{i}" for i in range(q)]
    circuit = cirq.Circuit(cirq.H.on_each(*wires))
    circuit.append(cirq.ry(sympy.Symbol(s)).on(w) for s, w in zip(inputs, wires, strict=True))
    weights: list[str] = []
    for layer in range(layers):
        circuit.append(cirq.CNOT(wires[i], wires[i + 1]) for i in range(0, q - 1, 2))
        circuit.append(cirq.CNOT(wires[i], wires[i + 1]) for i in range(1, q - 1, 2))
        names = [f"w{layer}_{i}" for i in range(q)]
        circuit.append(cirq.ry(sympy.Symbol(s)).on(w) for s, w in zip(names, wires, strict=True))
        weights += names
    return circuit, inputs, weights


def _chen2020(wires: list[cirq.LineQubit], layers: int) -> tuple[cirq.Circuit, list[str], list[str]]:
    """H, RY(a_i), RZ(b_i) encoding; layers of ring CNOTs (distance 1, then 2) and Rot per qubit."""
    q = len(wires)
    angles_y = [f"a{i}" for i in range(q)]
    angles_z = [f"b{i}" for i in range(q)]
    circuit = cirq.Circuit(cirq.H.on_each(*wires))
    circuit.append(cirq.ry(sympy.Symbol(s)).on(w) for s, w in zip(angles_y, wires, strict=True))
    circuit.append(cirq.rz(sympy.Symbol(s)).on(w) for s, w in zip(angles_z, wires, strict=True))
    weights: list[str] = []
    for layer in range(layers):
        # Ring CNOTs i -> i+1, then i -> i+2 (mod q); a 2-qubit ring has no distance-2 pair.
        for distance in (1, 2):
            circuit.append(
                cirq.CNOT(wires[i], wires[(i + distance) % q]) for i in range(q) if (i + distance) % q != i
            )
        for i, wire in enumerate(wires):
            alpha, beta, gamma = (f"r{layer}_{i}_{k}" for k in range(3))
            circuit.append(
                [
                    cirq.rz(sympy.Symbol(alpha)).on(wire),
                    cirq.ry(sympy.Symbol(beta)).on(wire),
                    cirq.rz(sympy.Symbol(gamma)).on(wire),
                ]
            )
            weights += [alpha, beta, gamma]
    return circuit, angles_y + angles_z, weights


def _encode_custom(inputs: Iterable[str], v: torch.Tensor) -> torch.Tensor:
    """Return the encoding angles of a custom ansatz's ``inputs`` for the sub-vector ``v`` (rows, q).

    Inputs are named ``x_i``, ``atan_x_i``, ``atan_x2_i`` (`custom_ansatz`), in that order of kinds.
    """
    names = tuple(inputs)
    pieces = []
    for kind in CUSTOM_INPUT_KINDS:
        columns = [int(name.rsplit("_", 1)[1]) for name in names if name.rsplit("_", 1)[0] == kind]
        if not columns:
            continue
        values = v if kind == "x" else torch.atan(v) if kind == "atan_x" else torch.atan(v * v)
        pieces.append(values if columns == list(range(v.shape[1])) else values[:, columns])
    return torch.cat(pieces, dim=1) if pieces else v[:, :0]
