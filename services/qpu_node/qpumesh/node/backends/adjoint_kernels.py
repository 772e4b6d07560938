"""Compiled (numba) adjoint differentiation: one forward pass, one backward sweep per row.

Adjoint differentiation (Jones & Gacon, arXiv:2009.02823): after the forward pass
(`kernels.forward`, the same as `kernels.expectations`, so values are bit-identical) the
backward sweep un-computes the state gate by gate (``ψ ← U† ψ``) beside ``G`` co-states
``λ_g = Σ_t w_tg P_t ψ`` and reads, at every rotation ``exp(−iθG/2)``,
``∂⟨O_g⟩/∂θ = 2 Re ⟨λ_g| (−iG/2) |ψ⟩`` -- in the same pass that updates ``λ_g``.

The co-states are stored amplitude-major, ``L[y, g]``: every gate then updates all ``G``
co-states of an amplitude pair in one contiguous inner loop (vectorised), next to the
state pair it reads once. For a chain (`tape.CHAIN`) the gradients of all its steps come
from the 2x2 cross matrix ``ρ_g[a, b] = Σ conj(λ_g[..a..]) ψ[..b..]`` of its qubit:
``∂/∂θ_j = Re Σ_ab (P_j (−iG_j) P_j†)[a, b] ρ_g[a, b]`` with ``P_j`` the product of the
chain's later steps -- one pass for the whole chain.

Memory per call: the state and its scratch row, and ``2 G`` co-state rows (co-states and
their gather scratch), whatever the depth and the number of rows. Every sum runs in one
fixed order (see `kernels`), so results are bit-identical run to run.
"""

from __future__ import annotations

import numpy as np

from qpumesh.node.backends.jit import inline as _inline
from qpumesh.node.backends.jit import jit as _jit
from qpumesh.node.backends.kernels import (
    PSI,
    SCRATCH,
    base_index,
    buffers,
    chain_matrix,
    expect,
    forward,
    matrix1,
    offsets,
    parity,
)
from qpumesh.node.backends.tape import CHAIN, FIXK, GATHER, GOFF, HEAD, KIND, MOFF, NT, ROTK, SLOT, T0

__all__ = ["adjoint"]


@_inline
def _pair(S, L, n, q, m00, m01, m10, m11, grad, g00, g01, g10, g11, acc):
    """One pass over the pairs of qubit q, updating ψ and every co-state.

    With `grad`, first ``acc[g] += Re Σ conj(λ_g) (g.. ψ)``; then ``λ_g ← M λ_g`` and
    ``ψ ← M ψ`` with ``M = m..``.
    """
    stride = 1 << (n - 1 - q)
    co = L.shape[1]
    if co == 1:  # one co-state (a VJP): no inner loop, so the pair loop itself vectorises
        total = 0.0
        for base in range(0, S.shape[1], 2 * stride):
            for j in range(base, base + stride):
                a = S[PSI, j]
                b = S[PSI, j + stride]
                la = L[j, 0]
                lb = L[j + stride, 0]
                if grad:
                    ga = g00 * a + g01 * b
                    gb = g10 * a + g11 * b
                    total += (la.conjugate() * ga + lb.conjugate() * gb).real
                L[j, 0] = m00 * la + m01 * lb
                L[j + stride, 0] = m10 * la + m11 * lb
                S[PSI, j] = m00 * a + m01 * b
                S[PSI, j + stride] = m10 * a + m11 * b
        acc[0] += total
        return
    for base in range(0, S.shape[1], 2 * stride):
        for j in range(base, base + stride):
            a = S[PSI, j]
            b = S[PSI, j + stride]
            if grad:
                ga = g00 * a + g01 * b
                gb = g10 * a + g11 * b
                for g in range(co):
                    acc[g] += (L[j, g].conjugate() * ga + L[j + stride, g].conjugate() * gb).real
            for g in range(co):
                la = L[j, g]
                lb = L[j + stride, g]
                L[j, g] = m00 * la + m01 * lb
                L[j + stride, g] = m10 * la + m11 * lb
            S[PSI, j] = m00 * a + m01 * b
            S[PSI, j + stride] = m10 * a + m11 * b


@_jit
def _pairk(S, L, n, code, i, k, m, mo, grad, gm, go, acc, offs, vec, lvec):
    """`_pair` for a k-qubit matrix m[mo:] (gradient matrix gm[go:]) on step i's targets."""
    size = 1 << k
    co = L.shape[1]
    offsets(n, code, i, k, offs)
    for index in range(S.shape[1] >> k):
        base = base_index(index, n, code, i, k)
        for a in range(size):
            vec[a] = S[PSI, base + offs[a]]
            for g in range(co):
                lvec[a, g] = L[base + offs[a], g]
        if grad:
            for a in range(size):
                h = gm[go + a * size] * vec[0]
                for b in range(1, size):
                    h += gm[go + a * size + b] * vec[b]
                for g in range(co):
                    acc[g] += (lvec[a, g].conjugate() * h).real
        for a in range(size):
            y = base + offs[a]
            t = m[mo + a * size] * vec[0]
            for b in range(1, size):
                t += m[mo + a * size + b] * vec[b]
            S[PSI, y] = t
            for g in range(co):
                t = m[mo + a * size] * lvec[0, g]
                for b in range(1, size):
                    t += m[mo + a * size + b] * lvec[b, g]
                L[y, g] = t


@_inline
def _chain(S, L, grads, r, n, code, i, mats, cos, sin, acc, rho):
    """Backward through the chain headed at row i: gradients of its steps, then A† on ψ and λ."""
    q = code[i, T0]
    co = L.shape[1]
    one = S[PSI, 0] * 0.0 + 1.0
    a00, a01, a10, a11 = chain_matrix(code, i, mats, cos, sin, r, one)
    stride = 1 << (n - 1 - q)
    rho[:, :] = 0.0
    for base in range(0, S.shape[1], 2 * stride):
        for j in range(base, base + stride):
            pa = S[PSI, j]
            pb = S[PSI, j + stride]
            for g in range(co):
                la = L[j, g].conjugate()
                lb = L[j + stride, g].conjugate()
                rho[g, 0] += la * pa
                rho[g, 1] += la * pb
                rho[g, 2] += lb * pa
                rho[g, 3] += lb * pb
    p00 = one
    p01 = one * 0.0
    p10 = p01
    p11 = one
    for j in range(i + code[i, NT], i, -1):
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
        b00, b01, b10, b11 = matrix1(code, j, mats, cos, sin, r)
        p00, p01, p10, p11 = (
            p00 * b00 + p01 * b10, p00 * b01 + p01 * b11, p10 * b00 + p11 * b10, p10 * b01 + p11 * b11
        )  # fmt: skip
    d00, d01, d10, d11 = a00.conjugate(), a10.conjugate(), a01.conjugate(), a11.conjugate()
    z = one * 0.0
    _pair(S, L, n, q, d00, d01, d10, d11, False, z, z, z, z, acc)


@_jit
def _backward(S, L, LS, grads, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec, lvec, acc, rho):
    """Sweep the tape backwards for row r: gradients into grads[g, slot], ψ and λ un-computed."""
    dim = S.shape[1]
    co = L.shape[1]
    i = code.shape[0] - 1
    while i >= 0:
        i = code[i, HEAD]
        kd = code[i, KIND]
        o = code[i, MOFF]
        k = code[i, NT]
        q = code[i, T0]
        if kd == CHAIN:
            _chain(S, L, grads, r, n, code, i, mats, cos, sin, acc, rho)
        elif kd <= ROTK:  # ROT1, ROTD or ROTK: the adjoint is c I − s (−iG)
            slot = code[i, SLOT]
            c = cos[r, slot]
            sn = -sin[r, slot]
            acc[:] = 0.0
            if kd == ROTK:
                size = 1 << k
                for a in range(size):
                    for b in range(size):
                        mbuf[a * size + b] = sn * mats[o + a * size + b]
                    mbuf[a * size + a] += c
                _pairk(S, L, n, code, i, k, mbuf, 0, True, mats, o, acc, offs, vec, lvec)
            else:
                m00 = c + sn * mats[o]
                m11 = c + sn * mats[o + 3]
                m01 = sn * mats[o + 1]
                m10 = sn * mats[o + 2]
                g00, g01, g10, g11 = mats[o], mats[o + 1], mats[o + 2], mats[o + 3]
                _pair(S, L, n, q, m00, m01, m10, m11, True, g00, g01, g10, g11, acc)
            for g in range(co):
                grads[g, slot] += acc[g]
        elif kd == FIXK:
            o += 1 << (2 * k)  # U† follows U
            if k == 1:
                z = mats[o] * 0.0
                _pair(S, L, n, q, mats[o], mats[o + 1], mats[o + 2], mats[o + 3], False, z, z, z, z, acc)
            else:
                _pairk(S, L, n, code, i, k, mats, o, False, mats, o, acc, offs, vec, lvec)
        elif kd == GATHER:
            off = code[i, GOFF] + dim  # the inverse gather follows the gather
            for y in range(dim):
                src = gidx[off + y]
                ph = phases[off + y]
                S[SCRATCH, y] = ph * S[PSI, src]
                for g in range(co):
                    LS[y, g] = ph * L[src, g]
            S[PSI, :] = S[SCRATCH, :]
            L[:, :] = LS
        else:  # DENSE: U† follows U
            off = o + dim * dim
            for a in range(dim):
                t = mats[off + a * dim] * S[PSI, 0]
                for b in range(1, dim):
                    t += mats[off + a * dim + b] * S[PSI, b]
                S[SCRATCH, a] = t
                for g in range(co):
                    t = mats[off + a * dim] * L[0, g]
                    for b in range(1, dim):
                        t += mats[off + a * dim + b] * L[b, g]
                    LS[a, g] = t
            S[PSI, :] = S[SCRATCH, :]
            L[:, :] = LS
        i -= 1


@_jit
def _costates(S, L, weights, r, xmask, yzmask, tc):
    """L[y, g] = (Σ_t weights[r, t, g] P_t ψ)[y] (row 0 of weights when it has one row)."""
    wr = r if weights.shape[0] > 1 else 0
    L[:, :] = 0.0
    for t in range(xmask.shape[0]):
        for y in range(S.shape[1]):
            x = y ^ xmask[t]
            v = -S[PSI, x] if parity(x & yzmask[t]) else S[PSI, x]
            for g in range(L.shape[1]):
                w = weights[wr, t, g] * tc[t]
                if w != 0.0:
                    L[y, g] += w * v


@_jit
def adjoint(initial, n, code, mats, gidx, phases, cos, sin, xmask, yzmask, tc, weights, values, grads):
    """Adjoint differentiation of weighted Pauli sums, row by row.

    Args:
        initial: As `kernels.expectations`.
        n: As `kernels.expectations`.
        code: As `kernels.expectations`.
        mats: As `kernels.expectations`.
        gidx: As `kernels.expectations`.
        phases: As `kernels.expectations`.
        cos: As `kernels.expectations`.
        sin: As `kernels.expectations`.
        xmask: As `kernels.expectations`.
        yzmask: As `kernels.expectations`.
        tc: As `kernels.expectations`.
        weights: (rows or 1, terms, G) float64: co-state g of row r is
            ``λ = Σ_t weights[r, t, g] P_t ψ`` (one row of weights is shared by every row).
        values: (rows, terms) float64, written: ⟨P_t⟩ of each row, exactly as `expectations`.
        grads: (rows, G, slots) float64, zeroed by the caller, accumulated:
            ``∂(Σ_t weights[r, t, g] ⟨P_t⟩)/∂θ_slot``.
    """
    co = weights.shape[2]
    dim = initial.shape[0]
    S, mbuf, offs, vec = buffers(initial)
    L = np.empty((dim, co), dtype=initial.dtype)
    LS = np.empty((dim, co), dtype=initial.dtype)
    lvec = np.empty((8, co), dtype=initial.dtype)
    rho = np.empty((co, 4), dtype=initial.dtype)
    acc = np.empty(co, dtype=np.float64)
    for r in range(cos.shape[0]):
        S[PSI, :] = initial
        forward(S, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec)
        for t in range(xmask.shape[0]):
            values[r, t] = expect(S, xmask[t], yzmask[t], tc[t])
        _costates(S, L, weights, r, xmask, yzmask, tc)
        gr = grads[r]
        _backward(S, L, LS, gr, r, n, code, mats, gidx, phases, cos, sin, mbuf, offs, vec, lvec, acc, rho)
