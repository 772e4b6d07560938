"""Circuits and observables on the wire.

A circuit travels as ``cirq.to_json`` text named by the SHA-256 of that text, so a
node can cache its compiled form and later requests may carry the hash alone.
Observables travel as sums of dense Pauli strings over the circuit's qubits in
``sorted(circuit.all_qubits())`` order, e.g. ``0.5 * "ZIZI"``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cirq

from qpumesh.v1 import qpu_node_pb2 as pb

PauliTerms = list[tuple[float, str]]
"""One observable: (real coefficient, dense Pauli string) terms."""

_PAULI_LETTER = {cirq.X: "X", cirq.Y: "Y", cirq.Z: "Z"}


def circuit_hash(cirq_json: str) -> str:
    """Return the lower-case hex SHA-256 of ``cirq_json``'s UTF-8 bytes."""
    return hashlib.sha256(cirq_json.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class WireCircuit:
    """A circuit ready to send: its Cirq JSON, content hash and qubit order."""

    cirq_json: str
    hash: str
    qubits: tuple[cirq.Qid, ...]

    @classmethod
    def from_cirq(cls, circuit: cirq.AbstractCircuit) -> WireCircuit:
        """Serialise ``circuit`` (once; reuse the result for every request)."""
        text = cirq.to_json(circuit)
        if not isinstance(text, str):
            raise TypeError("cirq.to_json returned no text")
        return cls(cirq_json=text, hash=circuit_hash(text), qubits=tuple(sorted(circuit.all_qubits())))

    def to_proto(self, include_json: bool = True) -> pb.Circuit:
        """Return the ``Circuit`` message; without JSON when the node already holds it."""
        return pb.Circuit(hash=self.hash, cirq_json=self.cirq_json if include_json else "")


def pauli_terms(
    observable: cirq.PauliString[Any] | cirq.PauliSum,
    qubits: Sequence[cirq.Qid],
) -> PauliTerms:
    """Convert a Cirq Pauli string or sum into dense terms over ``qubits``.

    Raises:
        ValueError: if a coefficient is not real, or the observable acts on a qubit
            that is not in the circuit.
    """
    index = {q: i for i, q in enumerate(qubits)}
    strings: Iterable[cirq.PauliString[Any]] = (
        [observable] if isinstance(observable, cirq.PauliString) else list(observable)
    )
    terms: PauliTerms = []
    for string in strings:
        coefficient = complex(string.coefficient)
        if abs(coefficient.imag) > 1e-12:
            raise ValueError(f"observable {string} has a non-real coefficient {coefficient}")
        letters = ["I"] * len(qubits)
        for qubit, pauli in string.items():
            if qubit not in index:
                raise ValueError(f"observable {string} acts on {qubit}, which is not in the circuit")
            letters[index[qubit]] = _PAULI_LETTER[pauli]
        terms.append((coefficient.real, "".join(letters)))
    return terms


def observables_to_proto(observables: Sequence[PauliTerms]) -> list[pb.Observable]:
    """Encode dense-term observables as ``Observable`` messages."""
    return [
        pb.Observable(terms=[pb.PauliTerm(coefficient=c, paulis=p) for c, p in terms])
        for terms in observables
    ]


def observables_from_proto(messages: Iterable[pb.Observable]) -> list[PauliTerms]:
    """Decode ``Observable`` messages into dense-term observables (validation is the node's)."""
    return [[(t.coefficient, t.paulis) for t in message.terms] for message in messages]
