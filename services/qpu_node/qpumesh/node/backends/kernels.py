"""Compiled (numba) statevector kernels: a whole circuit per call, forward and adjoint.

Why compiled code: a node's typical request is a handful of rows of a 2-12 qubit circuit,
where an array library pays its per-operation overhead (5-10 µs per torch op, ~1 µs per
numpy call) for every gate of every pass -- far more than the arithmetic. These kernels run
the whole `Tape` of a circuit for every row in one call, one row at a time, so a row's
states stay in cache however wide the batch is.

* `expectations` -- the state of each row, then ⟨P⟩ of each Pauli term.
* `adjoint` -- adjoint differentiation (Jones & Gacon, arXiv:2009.02823): one forward pass,
  then one backward sweep that un-computes the state (``ψ ← U† ψ``) beside one or more
  co-states ``λ = Σ_t w_t P_t ψ`` and reads, at every rotation ``exp(−iθG/2)``,
  ``∂⟨O⟩/∂θ = 2 Re ⟨λ| (−iG/2) |ψ⟩``. Memory: the state, the co-states and one scratch
  vector per row, whatever the depth.

Determinism: every sum runs in one fixed sequential order and nothing depends on timing or
threads, so the same inputs give bit-identical outputs (no ``fastmath``: no reassociation,
no contraction into FMAs). Kernels are compiled for the dtype of the arrays they get:
float64 for real circuits, complex128 otherwise.
"""


from __future__ import annotations

import numpy as np
from numba import njit

from qpumesh.node.backends.tape import (
    CHAIN,
    FIXK,
    GATHER,
    GOFF,
    HEAD,
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

__all__ = ["adjoint", "expectations"]

_jit = njit(cache=True, nogil=True)
# Leaf helpers with one array argument are inlined: a call with array arguments costs
# tens of nanoseconds (reference counting), more than a gate on a small register.
_inline = njit(cache=True, nogil=True, inline="always")

# State buffers are one 2-D array S per call: S[PSI] the state, S[SCRATCH] scratch space,
# S[LAM + g] the co-states. Helpers take (S, s) rather than a row view S[s].
PSI, SCRATCH, LAM = 0, 1, 2


@_inline
def _parity(x):
    x ^= x >> 32
    x ^= x >> 16
    x ^= x >> 8
    x ^= x >> 4
    x ^= x >> 2
    x ^= x >> 1
    return x & 1


@_inline
def _apply1(S, s, n, q, m00, m01, m10, m11):
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


@_inline
def _gather(S, s, gidx, phases, off):
    dim = S.shape[1]
    for y in range(dim):
        S[SCRATCH, y] = phases[off + y] * S[s, gidx[off + y]]
    for y in range(dim):
        S[s, y] = S[SCRATCH, y]


@_jit
def _dense(S, s, mats, off):
    dim = S.shape[1]
    for a in range(dim):
        acc = mats[off + a * dim] * S[s, 0]
        for b in range(1, dim):
            acc += mats[off + a * dim + b] * S[s, b]
        S[SCRATCH, a] = acc
    for a in range(dim):
        S[s, a] = S[SCRATCH, a]


@_jit
def _offsets(n, code, i, k, offs):
    """offs[l] = index offset of local basis state l (big-endian in step i's targets)."""
    for local in range(1 << k):
        o = 0
        for j in range(k):
            if (local >> (k - 1 - j)) & 1:
                o |= 1 << (n - 1 - code[i, T0 + j])
        offs[local] = o


@_jit
def _base(index, n, code, i, k):
    """Return the index-th state index whose target bits (of step i) are all zero."""
    base = index
    for bit in range(n):
        for j in range(k):
            if n - 1 - code[i, T0 + j] == bit:
                base = ((base >> bit) << (bit + 1)) | (base & ((1 << bit) - 1))
    return base


@_jit
def _applyk(S, s, n, code, i, k, m, mo, offs, vec):
    """S[s] ← (row-major 2^k x 2^k matrix at m[mo:] on step i's targets) S[s]."""
    size = 1 << k
    _offsets(n, code, i, k, offs)
    for index in range(S.shape[1] >> k):
        base = _base(index, n, code, i, k)
        for a in range(size):
            vec[a] = S[s, base + offs[a]]
        for a in range(size):
            acc = m[mo + a * size] * vec[0]
            for b in range(1, size):
                acc += m[mo + a * size + b] * vec[b]
            S[s, base + offs[a]] = acc


@_inline
def _grad1(S, lam, n, q, m00, m01, m10, m11):
    """Re ⟨S[lam]| M |ψ⟩ for a one-qubit matrix M on qubit q."""
    acc = 0.0
    stride = 1 << (n - 1 - q)
    for base in range(0, S.shape[1], 2 * stride):
        for j in range(base, base + stride):
            a = S[PSI, j]
            b = S[PSI, j + stride]
            acc += (S[lam, j].conjugate() * (m00 * a + m01 * b)).real
            acc += (S[lam, j + stride].conjugate() * (m10 * a + m11 * b)).real
    return acc


@_jit
def _gradk(S, lam, n, code, i, k, mats, o, offs, vec):
    """Re ⟨S[lam]| M |ψ⟩ for the k-qubit matrix M at mats[o:] on step i's targets."""
    acc = 0.0
    size = 1 << k
    _offsets(n, code, i, k, offs)
    for index in range(S.shape[1] >> k):
        base = _base(index, n, code, i, k)
        for a in range(size):
            vec[a] = S[PSI, base + offs[a]]
        for a in range(size):
            h = mats[o + a * size] * vec[0]
            for b in range(1, size):
                h += mats[o + a * size + b] * vec[b]
            acc += (S[lam, base + offs[a]].conjugate() * h).real
    return acc


@_inline
def _matrix1(code, j, mats, cos, sin, r):
    """Return the 2x2 matrix of one-qubit step j (rotation of row r, or fixed)."""
    o = code[j, MOFF]
    if code[j, KIND] == FIXK:
        return mats[o], mats[o + 1], mats[o + 2], mats[o + 3]
    c = cos[r, code[j, SLOT]]
    sn = sin[r, code[j, SLOT]]
    return c + sn * mats[o], sn * mats[o + 1], sn * mats[o + 2], c + sn * mats[o + 3]


@_inline
def _cross(S, lam, n, q, rho, g):
    """rho[g] = ⟨S[lam]| ⋅ |ψ⟩ reduced to qubit q: rho[g, 2a + b] = Σ conj(λ[..a..]) ψ[..b..]."""
    stride = 1 << (n - 1 - q)
    r00 = S[PSI, 0] * 0.0
    r01 = r00
    r10 = r00
    r11 = r00
    for base in range(0, S.shape[1], 2 * stride):
        for j in range(base, base + stride):
            la = S[lam, j].conjugate()
            lb = S[lam, j + stride].conjugate()
            pa = S[PSI, j]
            pb = S[PSI, j + stride]
            r00 += la * pa
            r01 += la * pb
            r10 += lb * pa
            r11 += lb * pb
    rho[g, 0] = r00
    rho[g, 1] = r01
    rho[g, 2] = r10
    rho[g, 3] = r11


@_jit
def _chain(S, hi, reverse, grads, r, n, code, i, mats, cos, sin, rho):
    """Run the chain headed at row i as one 2x2 matrix A per row (see `tape.CHAIN`).

    Reverse: the gradient of step j is ``Re ⟨λ| E_j |ψ⟩`` with ``E_j = P_j (−iG_j) P_j†`` and
    ``P_j`` the product of the chain's later steps, read from the reduced cross matrix
    ``rho`` of each co-state at the chain's end -- one pass per co-state for the whole chain.
    """
    q = code[i, T0]
    last = i + code[i, NT]
    a00 = rho[0, 0] * 0.0 + 1.0
    a01 = a00 * 0.0
    a10 = a01
    a11 = a00
    for j in range(i + 1, last + 1):
        b00, b01, b10, b11 = _matrix1(code, j, mats, cos, sin, r)
        a00, a01, a10, a11 = (
            b00 * a00 + b01 * a10, b00 * a01 + b01 * a11, b10 * a00 + b11 * a10, b10 * a01 + b11 * a11
        )  # fmt: skip
    if not reverse:
        _apply1(S, PSI, n, q, a00, a01, a10, a11)
        return
    co = hi - LAM
    for g in range(co):
        _cross(S, LAM + g, n, q, rho, g)
    p00 = a00 * 0.0 + 1.0
    p01 = p00 * 0.0
    p10 = p01
    p11 = p00
    for j in range(last, i, -1):
        if code[j, KIND] != FIXK:
            o = code[j, MOFF]
            m00, m01, m10, m11 = mats[o], mats[o + 1], mats[o + 2], mats[o + 3]
            t00 = p00 * m00 + p01 * m10
            t01 = p00 * m01 + p01 * m11
            t10 = p10 * m00 + p11 * m10
            t11 = p10 * m01 + p11 * m11
            c00, c01, c10, c11 = p00.conjugate(), p01.conjugate(), p10.conjugate(), p11.conjugate()
            e00 = t00 * c00 + t01 * c01
            e01 = t00 * c10 + t01 * c11
            e10 = t10 * c00 + t11 * c01
            e11 = t10 * c10 + t11 * c11
            slot = code[j, SLOT]
            for g in range(co):
                grads[g, slot] += (e00 * rho[g, 0] + e01 * rho[g, 1] + e10 * rho[g, 2] + e11 * rho[g, 3]).real
        b00, b01, b10, b11 = _matrix1(code, j, mats, cos, sin, r)
        p00, p01, p10, p11 = (
            p00 * b00 + p01 * b10, p00 * b01 + p01 * b11, p10 * b00 + p11 * b10, p10 * b01 + p11 * b11
        )  # fmt: skip
    d00, d01, d10, d11 = a00.conjugate(), a10.conjugate(), a01.conjugate(), a11.conjugate()
    for s in range(PSI, hi):
        if s != SCRATCH:
            _apply1(S, s, n, q, d00, d01, d10, d11)


@_jit
def _sweep(S, states, reverse, grads, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec, rho):
    """Run the tape over S with the angles of row r.

    Forward (``reverse`` False): apply every step to S[PSI]. Reverse: from the last step to
    the first, at a rotation add ``Re ⟨λ_g| (−iG) |ψ⟩`` to ``grads[g, slot]`` for every
    co-state ``g < states − LAM``, then apply the step's adjoint to S[PSI] and every co-state.
    The whole sweep is one call, so no call overhead is paid per gate.
    """
    rows = code.shape[0]
    hi = states if reverse else PSI + 1
    i = rows - 1 if reverse else 0
    while 0 <= i < rows:
        if reverse:
            i = code[i, HEAD]
        kd = code[i, KIND]
        o = code[i, MOFF]
        k = code[i, NT]
        q = code[i, T0]
        if kd == CHAIN:
            _chain(S, hi, reverse, grads, r, n, code, i, mats, cos, sin, rho)
        elif kd <= ROTK:  # ROT1, ROTD or ROTK
            slot = code[i, SLOT]
            c = cos[r, slot]
            sn = sin[r, slot]
            if reverse:
                for g in range(states - LAM):
                    if kd == ROTK:
                        grads[g, slot] += _gradk(S, LAM + g, n, code, i, k, mats, o, offs, vec)
                    else:
                        m00, m01, m10, m11 = mats[o], mats[o + 1], mats[o + 2], mats[o + 3]
                        grads[g, slot] += _grad1(S, LAM + g, n, q, m00, m01, m10, m11)
                sn = -sn
            if kd == ROTD:
                d0 = c + sn * mats[o]
                d1 = c + sn * mats[o + 3]
                for s in range(PSI, hi):
                    if s != SCRATCH:
                        _apply_diag(S, s, n, q, d0, d1)
            elif kd == ROT1:
                m00 = c + sn * mats[o]
                m01 = sn * mats[o + 1]
                m10 = sn * mats[o + 2]
                m11 = c + sn * mats[o + 3]
                for s in range(PSI, hi):
                    if s != SCRATCH:
                        _apply1(S, s, n, q, m00, m01, m10, m11)
            else:
                size = 1 << k
                for a in range(size):
                    for b in range(size):
                        mbuf[a * size + b] = sn * mats[o + a * size + b]
                    mbuf[a * size + a] += c
                for s in range(PSI, hi):
                    if s != SCRATCH:
                        _applyk(S, s, n, code, i, k, mbuf, 0, offs, vec)
        elif kd == FIXK:
            if reverse:
                o += 1 << (2 * k)
            for s in range(PSI, hi):
                if s == SCRATCH:
                    continue
                if k == 1:
                    _apply1(S, s, n, q, mats[o], mats[o + 1], mats[o + 2], mats[o + 3])
                else:
                    _applyk(S, s, n, code, i, k, mats, o, offs, vec)
        elif kd == GATHER:
            off = code[i, GOFF] + (S.shape[1] if reverse else 0)
            for s in range(PSI, hi):
                if s != SCRATCH:
                    _gather(S, s, gidx, phases, off)
        else:  # DENSE
            off = o + (S.shape[1] * S.shape[1] if reverse else 0)
            for s in range(PSI, hi):
                if s != SCRATCH:
                    _dense(S, s, mats, off)
        i = i - 1 if reverse else i + code[i, SPAN]


@_inline
def _expect(S, xmask, yzmask, c):
    """Re(c · Σ_y conj(ψ_y) (−1)^{|(y⊕x)∧z|} ψ_{y⊕x})."""
    acc = S[PSI, 0] * 0.0
    for y in range(S.shape[1]):
        x = y ^ xmask
        term = S[PSI, y].conjugate() * S[PSI, x]
        if _parity(x & yzmask):
            acc -= term
        else:
            acc += term
    return (c * acc).real


@_jit
def _buffers(initial, states):
    S = np.empty((states, initial.shape[0]), dtype=initial.dtype)
    rho = np.empty((max(states - LAM, 1), 4), dtype=initial.dtype)
    return S, np.empty(64, initial.dtype), np.empty(8, np.int64), np.empty(8, initial.dtype), rho


@_jit
def expectations(initial, n, code, mats, gidx, phases, cos, sin, xmask, yzmask, tc, out):
    """out[r, t] = ⟨ψ_r| P_t |ψ_r⟩ for every angle row r.

    Args:
        initial: The tape's initial state.
        n: Qubits.
        code: The tape's step table, int64 (steps, 8).
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
    S, mbuf, offs, vec, rho = _buffers(initial, LAM)
    for r in range(cos.shape[0]):
        S[PSI, :] = initial
        _sweep(S, LAM, False, out, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec, rho)
        for t in range(xmask.shape[0]):
            out[r, t] = _expect(S, xmask[t], yzmask[t], tc[t])


@_jit
def _costates(S, weights, r, xmask, yzmask, tc):
    """λ_g = Σ_t weights[r, t, g] P_t ψ (row 0 of weights when it has one row)."""
    wr = r if weights.shape[0] > 1 else 0
    dim = S.shape[1]
    for g in range(weights.shape[2]):
        lam = LAM + g
        for y in range(dim):
            S[lam, y] = 0.0
        for t in range(xmask.shape[0]):
            w = weights[wr, t, g] * tc[t]
            if w == 0.0:
                continue
            for y in range(dim):
                x = y ^ xmask[t]
                if _parity(x & yzmask[t]):
                    S[lam, y] -= w * S[PSI, x]
                else:
                    S[lam, y] += w * S[PSI, x]


@_jit
def adjoint(initial, n, code, mats, gidx, phases, cos, sin, xmask, yzmask, tc, weights, values, grads):
    """Adjoint differentiation of weighted Pauli sums, row by row.

    Args:
        initial: As `expectations`.
        n: As `expectations`.
        code: As `expectations`.
        mats: As `expectations`.
        gidx: As `expectations`.
        phases: As `expectations`.
        cos: As `expectations`.
        sin: As `expectations`.
        xmask: As `expectations`.
        yzmask: As `expectations`.
        tc: As `expectations`.
        weights: (rows or 1, terms, G) float64: co-state g of row r is
            ``λ = Σ_t weights[r, t, g] P_t ψ`` (one row of weights is shared by every row).
        values: (rows, terms) float64, written: ⟨P_t⟩ of each row, exactly as `expectations`.
        grads: (rows, G, slots) float64, zeroed by the caller, accumulated:
            ``∂(Σ_t weights[r, t, g] ⟨P_t⟩)/∂θ_slot``.
    """
    n_co = weights.shape[2]
    S, mbuf, offs, vec, rho = _buffers(initial, LAM + n_co)
    for r in range(cos.shape[0]):
        S[PSI, :] = initial
        _sweep(S, LAM, False, grads[r], r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec, rho)
        for t in range(xmask.shape[0]):
            values[r, t] = _expect(S, xmask[t], yzmask[t], tc[t])
        _costates(S, weights, r, xmask, yzmask, tc)
        _sweep(S, LAM + n_co, True, grads[r], r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec, rho)
