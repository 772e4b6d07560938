"""Compiled (numba) statevector kernels: a whole circuit per call (forward passes).

Why compiled code: a node's typical request is a handful of rows of a 2-12 qubit circuit,
where an array library pays its per-operation overhead (5-10 µs per torch op, ~1 µs per
numpy call) for every gate of every pass -- far more than the arithmetic. These kernels run
the whole `Tape` of a circuit for every row in one call, one row at a time, so a row's
states stay in cache however wide the batch is.

`expectations` runs the state of each row forward (`forward`), then reads ⟨P⟩ of each
Pauli term. The backward sweep of adjoint differentiation is in `adjoint_kernels`, which
uses the same forward pass, so its values are bit-identical to these.

Determinism: every sum runs in one fixed sequential order and nothing depends on timing or
threads, so the same inputs give bit-identical outputs (no ``fastmath``: no reassociation,
no contraction into FMAs). Kernels are compiled for the dtype of the arrays they get:
float64 for real circuits, complex128 otherwise.
"""

from __future__ import annotations

import numpy as np

from qpumesh.node.backends.jit import inline as _inline
from qpumesh.node.backends.jit import jit as _jit
from qpumesh.node.backends.tape import (
    CHAIN,
    FIXK,
    GATHER,
    GOFF,
    KIND,
    MOFF,
    NT,
    ROT1,
    ROTD,
    ROTK,
    SLOT,
    SPAN,
    T0,
)

__all__ = ["expectations", "forward"]


# The state buffer is one 2-D array S per call: S[PSI] the state, S[SCRATCH] scratch space.
# Helpers take (S, s) rather than a row view S[s].
PSI, SCRATCH = 0, 1


@_inline
def parity(x):
    """Parity of the set bits of x (int64)."""
    x ^= x >> 32
    x ^= x >> 16
    x ^= x >> 8
    x ^= x >> 4
    x ^= x >> 2
    x ^= x >> 1
    return x & 1


@_inline
def apply1(S, s, n, q, m00, m01, m10, m11):
    """S[s] ← (2x2 matrix on qubit q) S[s]."""
    stride = 1 << (n - 1 - q)
    for base in range(0, S.shape[1], 2 * stride):
        for j in range(base, base + stride):
            a = S[s, j]
            b = S[s, j + stride]
            S[s, j] = m00 * a + m01 * b
            S[s, j + stride] = m10 * a + m11 * b


@_inline
def _apply_diag(S, s, n, q, d0, d1):
    stride = 1 << (n - 1 - q)
    for base in range(0, S.shape[1], 2 * stride):
        for j in range(base, base + stride):
            S[s, j] = d0 * S[s, j]
            S[s, j + stride] = d1 * S[s, j + stride]


@_jit
def offsets(n, code, i, k, offs):
    """offs[l] = index offset of local basis state l (big-endian in step i's targets)."""
    for local in range(1 << k):
        o = 0
        for j in range(k):
            if (local >> (k - 1 - j)) & 1:
                o |= 1 << (n - 1 - code[i, T0 + j])
        offs[local] = o


@_jit
def base_index(index, n, code, i, k):
    """Return the index-th state index whose target bits (of step i) are all zero."""
    base = index
    for bit in range(n):
        for j in range(k):
            if n - 1 - code[i, T0 + j] == bit:
                base = ((base >> bit) << (bit + 1)) | (base & ((1 << bit) - 1))
    return base


@_jit
def applyk(S, s, n, code, i, k, m, mo, offs, vec):
    """S[s] ← (row-major 2^k x 2^k matrix at m[mo:] on step i's targets) S[s]."""
    size = 1 << k
    offsets(n, code, i, k, offs)
    for index in range(S.shape[1] >> k):
        base = base_index(index, n, code, i, k)
        for a in range(size):
            vec[a] = S[s, base + offs[a]]
        for a in range(size):
            acc = m[mo + a * size] * vec[0]
            for b in range(1, size):
                acc += m[mo + a * size + b] * vec[b]
            S[s, base + offs[a]] = acc


@_inline
def matrix1(code, j, mats, cos, sin, r):
    """Return the 2x2 matrix of one-qubit step j (rotation of row r, or fixed)."""
    o = code[j, MOFF]
    if code[j, KIND] == FIXK:
        return mats[o], mats[o + 1], mats[o + 2], mats[o + 3]
    c = cos[r, code[j, SLOT]]
    sn = sin[r, code[j, SLOT]]
    return c + sn * mats[o], sn * mats[o + 1], sn * mats[o + 2], c + sn * mats[o + 3]


@_inline
def chain_matrix(code, i, mats, cos, sin, r, one):
    """Return the product A of the steps of the chain headed at row i (one: 1 in the state dtype)."""
    a00 = one
    a01 = one * 0.0
    a10 = a01
    a11 = one
    for j in range(i + 1, i + code[i, NT] + 1):
        b00, b01, b10, b11 = matrix1(code, j, mats, cos, sin, r)
        a00, a01, a10, a11 = (
            b00 * a00 + b01 * a10, b00 * a01 + b01 * a11, b10 * a00 + b11 * a10, b10 * a01 + b11 * a11
        )  # fmt: skip
    return a00, a01, a10, a11


@_jit
def forward(S, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec):
    """Apply every step of the tape to S[PSI] with the angles of row r.

    The whole pass is one call, so no call overhead is paid per gate (calls with many array
    arguments cost ~40 ns each, more than a gate on a small register).
    """
    dim = S.shape[1]
    i = 0
    while i < code.shape[0]:
        kd = code[i, KIND]
        o = code[i, MOFF]
        k = code[i, NT]
        q = code[i, T0]
        if kd == CHAIN:
            a00, a01, a10, a11 = chain_matrix(code, i, mats, cos, sin, r, S[PSI, 0] * 0.0 + 1.0)
            apply1(S, PSI, n, q, a00, a01, a10, a11)
        elif kd <= ROTK:  # ROT1, ROTD or ROTK
            c = cos[r, code[i, SLOT]]
            sn = sin[r, code[i, SLOT]]
            if kd == ROTD:
                _apply_diag(S, PSI, n, q, c + sn * mats[o], c + sn * mats[o + 3])
            elif kd == ROT1:
                m00, m11 = c + sn * mats[o], c + sn * mats[o + 3]
                apply1(S, PSI, n, q, m00, sn * mats[o + 1], sn * mats[o + 2], m11)
            else:
                size = 1 << k
                for a in range(size):
                    for b in range(size):
                        mbuf[a * size + b] = sn * mats[o + a * size + b]
                    mbuf[a * size + a] += c
                applyk(S, PSI, n, code, i, k, mbuf, 0, offs, vec)
        elif kd == FIXK:
            if k == 1:
                apply1(S, PSI, n, q, mats[o], mats[o + 1], mats[o + 2], mats[o + 3])
            else:
                applyk(S, PSI, n, code, i, k, mats, o, offs, vec)
        elif kd == GATHER:
            off = code[i, GOFF]
            for y in range(dim):
                S[SCRATCH, y] = phases[off + y] * S[PSI, gidx[off + y]]
            for y in range(dim):
                S[PSI, y] = S[SCRATCH, y]
        else:  # DENSE
            for a in range(dim):
                acc = mats[o + a * dim] * S[PSI, 0]
                for b in range(1, dim):
                    acc += mats[o + a * dim + b] * S[PSI, b]
                S[SCRATCH, a] = acc
            for a in range(dim):
                S[PSI, a] = S[SCRATCH, a]
        i += code[i, SPAN]


@_inline
def expect(S, xmask, yzmask, c):
    """Re(c · Σ_y conj(ψ_y) (−1)^{|(y⊕x)∧z|} ψ_{y⊕x})."""
    acc = S[PSI, 0] * 0.0
    for y in range(S.shape[1]):
        x = y ^ xmask
        term = S[PSI, y].conjugate() * S[PSI, x]
        if parity(x & yzmask):
            acc -= term
        else:
            acc += term
    return (c * acc).real


@_jit
def buffers(initial):
    """State + scratch rows, a 2^3 x 2^3 matrix, offsets and a local vector."""
    S = np.empty((2, initial.shape[0]), dtype=initial.dtype)
    return S, np.empty(64, initial.dtype), np.empty(8, np.int64), np.empty(8, initial.dtype)


@_jit
def expectations(initial, n, code, mats, gidx, phases, cos, sin, xmask, yzmask, tc, out):
    """out[r, t] = ⟨ψ_r| P_t |ψ_r⟩ for every angle row r.

    Args:
        initial: The tape's initial state.
        n: Qubits.
        code: The tape's step table.
        mats: The tape's matrices.
        gidx: The tape's gather indices.
        phases: The tape's gather phases.
        cos: ``cos(θ/2)``, (rows, slots).
        sin: ``sin(θ/2)``, (rows, slots).
        xmask: X/Y mask of each term.
        yzmask: Y/Z mask of each term.
        tc: ``i^{#Y}`` of each term (0 for odd-Y terms of real circuits).
        out: (rows, terms) float64, written.
    """
    S, mbuf, offs, vec = buffers(initial)
    for r in range(cos.shape[0]):
        S[PSI, :] = initial
        forward(S, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec)
        for t in range(xmask.shape[0]):
            out[r, t] = expect(S, xmask[t], yzmask[t], tc[t])
