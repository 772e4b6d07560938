"""The engine protocol shared by every backend, and Pauli-term helpers.

An engine computes exact expectation values of Pauli terms for a batch of slot angles:
``expectations(compiled, terms, angles) -> (rows, n_terms)``. A *term* is a dense Pauli string
(one of ``I X Y Z`` per qubit, in ``compiled.qubits`` order) with coefficient 1; observables,
readout error and shot sampling are applied on top by the node core, so every engine only
has to do the physics. Engines must be safe to call from several threads at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cirq
import numpy as np

from qpumesh.node.circuits import CompiledCircuit

__all__ = ["PAULI_LETTERS", "Backend", "pauli_string", "term_weight"]

#: The letters of a dense Pauli string.
PAULI_LETTERS = frozenset("IXYZ")

_CIRQ_PAULIS = {"X": cirq.X, "Y": cirq.Y, "Z": cirq.Z}


@runtime_checkable
class Backend(Protocol):
    """An engine: exact Pauli-term expectations of a compiled circuit for a batch of angles."""

    #: Name reported to clients as ``backend`` ("batched", "cirq", "qsim").
    name: str

    def supports(self, compiled: CompiledCircuit) -> str | None:
        """Return None when the engine can run `compiled`, else the reason it cannot."""
        ...

    def expectations(self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray) -> np.ndarray:
        """Compute exact expectation values of `terms`.

        Args:
            compiled: The circuit.
            terms: Dense Pauli strings of length ``compiled.n_qubits``.
            angles: ``(rows, len(compiled.slots))`` slot angles in radians.

        Returns:
            ``(rows, len(terms))`` float64.
        """
        ...


def pauli_string(term: str, qubits: Sequence[cirq.Qid]) -> cirq.PauliString[cirq.Qid]:
    """Return the `cirq.PauliString` of a dense Pauli string over `qubits`."""
    return cirq.PauliString({q: _CIRQ_PAULIS[p] for q, p in zip(qubits, term, strict=True) if p != "I"})


def term_weight(term: str) -> int:
    """Count the non-identity letters of a dense Pauli string."""
    return sum(1 for p in term if p != "I")
