"""Gates and depolarizing channels as Pauli transfer matrices (PTMs).

A density matrix of ``n`` qubits is written in the Pauli basis, ``ρ = 2**-n Σ_P r_P P``, with
the real *Pauli vector* ``r_P = Tr(ρ P)`` indexed like a base-4 number whose digits, most
significant first, are the Pauli letters ``I=0, X=1, Y=2, Z=3`` of the qubits in
``compiled.qubits`` order. Then

* the expectation of a Pauli term ``P`` is the entry ``r_P`` (`term_indices`);
* ``|0…0⟩⟨0…0|`` is ``r_P = 1`` for every ``P`` in ``{I, Z}^n``, else 0 (`initial_vector`);
* a gate ``U`` on ``k`` qubits is the real ``4**k × 4**k`` matrix
  ``R[a, b] = Tr(P_a U P_b U†) / 2**k`` (`unitary_transfer`), and a rotation
  ``exp(-i θ G / 2)`` with ``G² = I`` is ``A + cos θ · B + sin θ · C`` for three fixed real
  matrices (`rotation_transfer`), so per-row angles cost two multiply-adds;
* ``cirq.depolarize(p, n_qubits=k)`` keeps the identity and multiplies every other Pauli of
  its ``k`` qubits by ``1 − p·4**k / (4**k − 1)`` (``1 − 4p/3`` for one qubit, ``1 − 16p/15``
  for two): a diagonal PTM (`depolarizing_diagonal`).

Everything stays real, so the density-matrix engine runs in float64 and its results differ
from `cirq.DensityMatrixSimulator` only by rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

__all__ = [
    "depolarizing_diagonal",
    "initial_vector",
    "pauli_basis",
    "rotation_transfer",
    "term_indices",
    "unitary_transfer",
]

_PAULI_INDEX = {"I": 0, "X": 1, "Y": 2, "Z": 3}
_SINGLE = np.array(
    [
        [[1, 0], [0, 1]],
        [[0, 1], [1, 0]],
        [[0, -1j], [1j, 0]],
        [[1, 0], [0, -1]],
    ],
    dtype=np.complex128,
)


@cache
def pauli_basis(k: int) -> np.ndarray:
    """Return the ``4**k`` Pauli strings on ``k`` qubits as ``(4**k, 2**k, 2**k)`` matrices.

    String ``a`` has base-4 digits (most significant = first qubit) ``I=0, X=1, Y=2, Z=3``;
    matrices are big-endian in the qubits, as in Cirq.
    """
    basis = np.ones((1, 1, 1), dtype=np.complex128)
    for _ in range(k):
        basis = np.einsum("aij,bkl->abikjl", basis, _SINGLE).reshape(
            basis.shape[0] * 4, basis.shape[1] * 2, basis.shape[2] * 2
        )
    basis.setflags(write=False)
    return basis


def _transfer(left: np.ndarray, right: np.ndarray, k: int) -> np.ndarray:
    """``T[a, b] = Re Tr(P_a · left · P_b · right) / 2**k`` for ``k``-qubit operators."""
    basis = pauli_basis(k)
    mapped = np.einsum("ij,bjk,kl->bil", left, basis, right)  # left · P_b · right
    return np.asarray(np.real(np.einsum("aji,bij->ab", basis, mapped)) / (1 << k), dtype=np.float64)


def unitary_transfer(unitary: np.ndarray) -> np.ndarray:
    """Return the PTM of ``ρ → U ρ U†``, ``(4**k, 4**k)`` float64."""
    k = unitary.shape[0].bit_length() - 1
    return _transfer(unitary, unitary.conj().T, k)


def rotation_transfer(generator: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(A, B, C)`` with ``PTM(exp(-i θ G / 2)) = A + cos θ · B + sin θ · C``.

    With ``U = c I − i s G`` (``c, s = cos θ/2, sin θ/2``), ``U P U† = c² P + s² G P G +
    i c s (P G − G P)``; ``c² = (1 + cos θ)/2``, ``s² = (1 − cos θ)/2``, ``c s = sin θ / 2``.

    Args:
        generator: Hermitian involution ``G`` (``G² = I``), ``2**k × 2**k``.
    """
    k = generator.shape[0].bit_length() - 1
    eye = np.eye(1 << k, dtype=np.complex128)
    conjugated = _transfer(generator, generator, k)  # P → G P G
    commutator = _transfer(1j * eye, generator, k) - _transfer(1j * generator, eye, k)  # P → i(PG − GP)
    identity = np.eye(1 << (2 * k))
    return (identity + conjugated) / 2, (identity - conjugated) / 2, commutator / 2


def depolarizing_diagonal(k: int, p: float) -> np.ndarray:
    """Return the diagonal PTM of ``cirq.depolarize(p, n_qubits=k)``, ``(4**k,)`` float64.

    The channel ``(1 − p) ρ + p / (4**k − 1) Σ_{Q ≠ I} Q ρ Q`` keeps the identity; any other
    Pauli commutes with half of the ``4**k`` strings and anticommutes with the other half,
    so ``Σ_{Q ≠ I} Q P Q = −P`` and ``P → (1 − p − p/(4**k − 1)) P``.
    """
    size = 1 << (2 * k)
    diagonal = np.full(size, 1.0 - p * size / (size - 1))
    diagonal[0] = 1.0
    return diagonal


def initial_vector(n: int) -> np.ndarray:
    """Return the Pauli vector of ``|0…0⟩⟨0…0|`` on ``n`` qubits, ``(4**n,)`` float64."""
    vector = np.ones(1)
    for _ in range(n):
        vector = np.kron(vector, np.array([1.0, 0.0, 0.0, 1.0]))
    return vector


def term_indices(terms: Sequence[str]) -> np.ndarray:
    """Return the Pauli-vector index of each dense Pauli string, ``(len(terms),)`` int64."""
    out = np.zeros(len(terms), dtype=np.int64)
    for j, term in enumerate(terms):
        index = 0
        for letter in term:
            index = 4 * index + _PAULI_INDEX[letter]
        out[j] = index
    return out
