"""An independent Cirq reference of the node's noise model, and random circuits of every gate.

The reference writes the noise model out by hand instead of using the node's
`GateDepolarizingNoise`: ``cirq.depolarize(p1)`` after every one-qubit operation,
``cirq.depolarize(p2, n_qubits=2)`` after every two-qubit operation, nothing after wider ones;
the circuit runs on `cirq.DensityMatrixSimulator`, and readout error is simulated physically
-- each Pauli term is rotated to the Z basis, a ``cirq.bit_flip(p)`` hits every qubit, and the
Z-parity of the term's qubits is read from the diagonal -- rather than by the node's
``(1 − 2p)^weight`` formula.
"""

from __future__ import annotations

from collections.abc import Callable

import cirq
import numpy as np
import sympy
from hypothesis import strategies as st

_FLIP = {"X": [cirq.H], "Y": [cirq.S**-1, cirq.H]}  # V with V† Z V = the Pauli

A, B, C = sympy.symbols("a b c")
SYMBOLS = (A, B, C)

#: Every gate name the node reports (`circuits.SUPPORTED_GATES`) -> (qubits, builder of a gate
#: from a symbol, or None for fixed gates), plus extra forms. Builders ignore the symbol for
#: fixed gates.
GATES: dict[str, tuple[int, Callable[[sympy.Symbol], cirq.Gate]]] = {
    "X": (1, lambda s: cirq.X),
    "Y": (1, lambda s: cirq.Y),
    "Z": (1, lambda s: cirq.Z),
    "H": (1, lambda s: cirq.H),
    "S": (1, lambda s: cirq.S),
    "T": (1, lambda s: cirq.T),
    "I": (1, lambda s: cirq.I),
    "XPowGate": (1, lambda s: cirq.X ** (s / np.pi)),
    "YPowGate": (1, lambda s: cirq.Y ** (0.5 * s + 0.2)),
    "ZPowGate": (1, lambda s: cirq.Z**s),
    "HPowGate": (1, lambda s: cirq.H ** (s / 3)),
    "Rx": (1, cirq.rx),
    "Ry": (1, lambda s: cirq.ry(2 * s - 0.3)),
    "Rz": (1, lambda s: cirq.rz(s / 2 + 1)),
    "PhasedXPowGate": (1, lambda s: cirq.PhasedXPowGate(phase_exponent=0.3, exponent=s)),
    "PhasedXZGate": (1, lambda s: cirq.PhasedXZGate(x_exponent=0.3, z_exponent=0.1, axis_phase_exponent=0.6)),
    "MatrixGate": (1, lambda s: cirq.MatrixGate(cirq.unitary(cirq.ry(0.4)) @ cirq.unitary(cirq.rz(1.1)))),
    "IdentityGate": (2, lambda s: cirq.IdentityGate(2)),
    "CNOT": (2, lambda s: cirq.CNOT),
    "CX": (2, lambda s: cirq.CX**0.7),
    "CXPowGate": (2, lambda s: cirq.CNOT ** (s / np.pi)),
    "CZ": (2, lambda s: cirq.CZ),
    "CZPowGate": (2, lambda s: cirq.CZ**s),
    "SWAP": (2, lambda s: cirq.SWAP),
    "SwapPowGate": (2, lambda s: cirq.SWAP**s),
    "ISWAP": (2, lambda s: cirq.ISWAP),
    "ISwapPowGate": (2, lambda s: cirq.ISWAP**0.3),
    "XXPowGate": (2, lambda s: cirq.XX**s),
    "YYPowGate": (2, lambda s: cirq.YY ** (s + 0.1)),
    "ZZPowGate": (2, lambda s: cirq.ZZ ** (s / 2)),
    "FSimGate": (2, lambda s: cirq.FSimGate(theta=0.3, phi=0.5)),
    "MatrixGate2": (2, lambda s: cirq.MatrixGate(cirq.unitary(cirq.FSimGate(0.7, 0.2)))),
    "CCX": (3, lambda s: cirq.CCX),
    "CCXPowGate": (3, lambda s: cirq.CCX**s),
    "CCZ": (3, lambda s: cirq.CCZ),
    "CCZPowGate": (3, lambda s: cirq.CCZ ** (0.5 * s)),
    "MatrixGate3": (3, lambda s: cirq.MatrixGate(cirq.unitary(cirq.CCX) @ cirq.unitary(cirq.CCZ**0.3))),
    "GlobalPhaseGate": (0, lambda s: cirq.GlobalPhaseGate(1j)),
}


@st.composite
def circuits(draw: st.DrawFn, max_qubits: int = 4) -> cirq.Circuit:
    """Random circuits over `GATES` on 1..`max_qubits` qubits; symbols a, b, c are shared."""
    n = draw(st.integers(1, max_qubits))
    qubits = cirq.LineQubit.range(n)
    ops: list[cirq.Operation] = [cirq.H(q) for q in qubits]  # every qubit is used
    names = [name for name, (k, _) in GATES.items() if k <= n]
    for _ in range(draw(st.integers(1, 14))):
        k, build = GATES[draw(st.sampled_from(names))]
        gate = build(draw(st.sampled_from(SYMBOLS)))
        targets = draw(st.permutations(qubits))[:k]
        ops.append(gate.on(*targets) if k else cirq.global_phase_operation(1j))
    return cirq.Circuit(ops)


def noisy_circuit(circuit: cirq.Circuit, p1: float, p2: float) -> cirq.Circuit:
    """The node's gate noise written out: a channel after every 1- and 2-qubit operation."""
    ops: list[cirq.Operation] = []
    for op in circuit.all_operations():
        if not op.qubits:
            continue  # a global phase leaves ρ unchanged (and trips Cirq's density-matrix simulator)
        ops.append(op)
        if len(op.qubits) == 1 and p1 > 0:
            ops.append(cirq.depolarize(p1).on(*op.qubits))
        elif len(op.qubits) == 2 and p2 > 0:
            ops.append(cirq.depolarize(p2, n_qubits=2).on(*op.qubits))
    return cirq.Circuit(ops)


def reference(  # noqa: PLR0917 (a test reference)
    circuit: cirq.Circuit,
    observables: list[list[tuple[float, str]]],
    symbols: list[str],
    values: np.ndarray,
    p1: float = 0.0,
    p2: float = 0.0,
    readout: float = 0.0,
) -> np.ndarray:
    """Noisy expectations ``(rows, n_obs)`` by `cirq.DensityMatrixSimulator`, readout physically."""
    qubits = sorted(circuit.all_qubits())
    noisy = noisy_circuit(circuit, p1, p2)
    simulator = cirq.DensityMatrixSimulator(dtype=np.complex128)
    out = np.zeros((len(values), len(observables)))
    for r, row in enumerate(values):
        resolver = cirq.ParamResolver(dict(zip(symbols, map(float, row), strict=True)))
        rho = simulator.simulate(noisy, resolver, qubit_order=qubits).final_density_matrix
        for o, observable in enumerate(observables):
            out[r, o] = sum(c * _measured_term(simulator, rho, qubits, t, readout) for c, t in observable)
    return out


def _measured_term(
    simulator: cirq.DensityMatrixSimulator, rho: np.ndarray, qubits: list[cirq.Qid], term: str, readout: float
) -> float:
    """<term> measured in its eigenbasis with a symmetric bit flip on every qubit before reading."""
    ops = [g.on(q) for q, p in zip(qubits, term, strict=True) for g in _FLIP.get(p, [])]
    ops += [cirq.bit_flip(readout).on(q) for q in qubits] if readout > 0 else [cirq.I.on_each(*qubits)]
    measured = simulator.simulate(
        cirq.Circuit(ops), initial_state=rho, qubit_order=qubits
    ).final_density_matrix
    probabilities = np.real(np.diag(measured))
    mask = sum(1 << (len(term) - 1 - i) for i, p in enumerate(term) if p != "I")
    parity = np.array([bin(x & mask).count("1") & 1 for x in range(len(probabilities))])
    return float(probabilities @ (1 - 2 * parity))
