"""The ``cirq`` engine: the reference implementation on Cirq's own simulators.

Noise-free circuits run on `cirq.Simulator` (complex128), circuits with gate noise on
`cirq.DensityMatrixSimulator` with the node's `GateDepolarizingNoise` -- exact, and slow
(``4**n`` memory, one simulation per parameter set). The canonical circuit of the
`CompiledCircuit` is swept with one resolver per row (``_slot{k}`` = slot angle), and all
terms are evaluated with ``simulate_expectation_values_sweep``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cirq
import numpy as np

from qpumesh.node.backends.base import pauli_string
from qpumesh.node.cancellation import row_chunks
from qpumesh.node.circuits import CompiledCircuit
from qpumesh.node.limits import run_cost
from qpumesh.node.noise import NoiseConfig

__all__ = ["CirqBackend", "row_work", "slot_sweep", "sweep_expectations"]


def slot_sweep(compiled: CompiledCircuit, angles: np.ndarray) -> list[cirq.ParamResolver]:
    """Build one resolver per row binding the canonical circuit's ``_slot{k}`` symbols."""
    names = compiled.slot_symbols
    return [cirq.ParamResolver(dict(zip(names, map(float, row), strict=True))) for row in angles]


def term_observables(compiled: CompiledCircuit, terms: Sequence[str]) -> list[cirq.PauliSumLike]:
    """Build the Cirq Pauli strings of `terms`."""
    return [pauli_string(term, compiled.qubits) for term in terms]


def sweep_expectations(
    simulator: cirq.SimulatesExpectationValues,
    compiled: CompiledCircuit,
    terms: Sequence[str],
    angles: np.ndarray,
    program: cirq.Circuit | None = None,
    *,
    row_work: int = 0,
) -> np.ndarray:
    """Run ``simulate_expectation_values_sweep`` and return ``(rows, len(terms))`` float64.

    With `row_work` (the estimated amplitude operations of one row) the rows are swept in
    chunks, checking between them that the caller is still there
    (`cancellation.row_chunks`); only for simulators whose rows do not share a random stream.
    """
    rows = angles.shape[0]
    out = np.ones((rows, len(terms)), dtype=np.float64)
    active = [j for j, term in enumerate(terms) if set(term) != {"I"}]
    if rows == 0 or not active:
        return out
    circuit = compiled.canonical if program is None else program
    observables = term_observables(compiled, [terms[j] for j in active])
    for part in row_chunks(rows, row_work) if row_work else [slice(0, rows)]:
        results = simulator.simulate_expectation_values_sweep(
            circuit, observables, slot_sweep(compiled, angles[part]), qubit_order=list(compiled.qubits)
        )
        out[part, active] = np.real(np.asarray(results, dtype=np.complex128))
    return out


def row_work(engine: str, compiled: CompiledCircuit, terms: Sequence[str]) -> int:
    """Estimated amplitude operations of one row of `compiled` on `engine` (`limits.run_cost`)."""
    return run_cost(
        engine, qubits=compiled.n_qubits, operations=len(compiled.ops), terms=len(terms), rows=1, passes=1
    )


class CirqBackend:
    """Reference engine: `cirq.Simulator`, or `cirq.DensityMatrixSimulator` with gate noise.

    Args:
        noise: The node's noise profile; only its gate noise is simulated here.
        seed: Seed for Cirq's simulators (they are deterministic for expectation values).
    """

    name = "cirq"

    def __init__(self, noise: NoiseConfig | None = None, seed: int | None = None) -> None:
        self.noise = noise if noise is not None else NoiseConfig()
        self._simulator: cirq.SimulatesExpectationValues
        if self.noise.has_gate_noise:
            self._simulator = cirq.DensityMatrixSimulator(
                dtype=np.complex128, noise=self.noise.noise_model(), seed=seed
            )
        else:
            self._simulator = cirq.Simulator(dtype=np.complex128, seed=seed)

    def supports(self, compiled: CompiledCircuit) -> str | None:
        """Return None: Cirq runs every compiled circuit."""
        return None

    def expectations(self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray) -> np.ndarray:
        """Exact Pauli-term expectations, ``(rows, len(terms))`` float64."""
        engine = "cirq-noisy" if self.noise.has_gate_noise else "cirq"
        return sweep_expectations(  # Cirq's expectation values are deterministic: rows may be chunked
            self._simulator, compiled, terms, angles, row_work=row_work(engine, compiled, terms)
        )
