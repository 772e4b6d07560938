"""Compiled (numba) kernels for wide registers: cache-sized blocks, split real/imaginary parts.

From about 14 qubits the gate-by-gate kernels (`kernels`) are slow for two reasons: every
gate is one pass over a state that no longer fits the core's cache (4-16 MiB at 18-20
qubits), and complex128 arithmetic on interleaved numbers does not vectorise. These kernels
run the `WidePlan` of a circuit (`wide`) instead:

* the state is kept as two float64 arrays, real and imaginary parts (*split*), so that the
  loop of a gate over amplitude pairs is plain float64 arithmetic the compiler vectorises
  (a real circuit has no imaginary part at all);
* the steps are grouped into *stages*, each acting on at most `wide.BLOCK_QUBITS` qubits;
  a stage copies one block of the state -- the ``2**m`` amplitudes that differ only in its
  ``m`` qubits -- into a buffer that stays in cache, runs all its steps on the buffer, and
  copies it back, block after block: one pass over memory per stage instead of per gate;
* fixed gates that permute basis states (CNOT, X, SWAP, CCX...) are moves, not products.

Arithmetic: a complex product ``m·a`` is computed as ``(m.re a.re − m.im a.im, m.re a.im +
m.im a.re)``, the same operations complex128 code performs; sums run in one fixed order,
no ``fastmath``, so results are deterministic and agree with `kernels` to rounding (the
order of a few products differs: the tests bound the difference by 1e-10).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qpumesh.node.backends.kernels import chain_matrix, matrix1, parity
from qpumesh.node.backends.tape import CHAIN, FIXK, KIND, MOFF, NT, ROTD, ROTK, SLOT, T0

__all__ = ["expectations"]

_jit = njit(cache=True, nogil=True)
_inline = njit(cache=True, nogil=True, inline="always")


@_inline
def _local_bit(n, mask, q):
    """Position of qubit q's bit (``n − 1 − q``) among the set bits of `mask` (its bit in the block)."""
    x = mask & ((1 << (n - 1 - q)) - 1)
    count = 0
    while x:
        x &= x - 1
        count += 1
    return count


@_inline
def _pair(bre, bim, cplx, x, y, a0r, a0i, a1r, a1i, c0r, c0i, c1r, c1i):
    """Amplitudes x, y ← (2x2 matrix) (x, y)."""
    if not cplx:
        p = bre[x]
        q = bre[y]
        bre[x] = a0r * p + a1r * q
        bre[y] = c0r * p + c1r * q
        return
    pr = bre[x]
    pi = bim[x]
    qr = bre[y]
    qi = bim[y]
    bre[x] = (a0r * pr - a0i * pi) + (a1r * qr - a1i * qi)
    bim[x] = (a0r * pi + a0i * pr) + (a1r * qi + a1i * qr)
    bre[y] = (c0r * pr - c0i * pi) + (c1r * qr - c1i * qi)
    bim[y] = (c0r * pi + c0i * pr) + (c1r * qi + c1i * qr)


@_jit
def _apply1(bre, bim, cplx, b, m00, m01, m10, m11):
    """Buffer ← (2x2 matrix on local bit b) buffer.

    The pair loop runs over slices (``x`` the half with bit b clear, ``y`` the other) so
    that the compiler sees unit-stride arrays and vectorises it; bits 0-2, whose runs are
    too short for that, have their own loops (bit 0: adjacent pairs, vectorised as such).
    """
    size = bre.shape[0]
    stride = 1 << b
    a0r, a0i, a1r, a1i = m00.real, m00.imag, m01.real, m01.imag
    c0r, c0i, c1r, c1i = m10.real, m10.imag, m11.real, m11.imag
    if b == 0:
        for j in range(size >> 1):
            _pair(bre, bim, cplx, 2 * j, 2 * j + 1, a0r, a0i, a1r, a1i, c0r, c0i, c1r, c1i)
        return
    if b <= 2:
        for i in range(stride):
            for j in range(size >> (b + 1)):
                x = (j << (b + 1)) + i
                _pair(bre, bim, cplx, x, x + stride, a0r, a0i, a1r, a1i, c0r, c0i, c1r, c1i)
        return
    for base in range(0, size, 2 * stride):
        xr = bre[base : base + stride]
        yr = bre[base + stride : base + 2 * stride]
        if not cplx:
            for j in range(stride):
                x = xr[j]
                y = yr[j]
                xr[j] = a0r * x + a1r * y
                yr[j] = c0r * x + c1r * y
            continue
        xi = bim[base : base + stride]
        yi = bim[base + stride : base + 2 * stride]
        for j in range(stride):
            pr = xr[j]
            pi = xi[j]
            qr = yr[j]
            qi = yi[j]
            xr[j] = (a0r * pr - a0i * pi) + (a1r * qr - a1i * qi)
            xi[j] = (a0r * pi + a0i * pr) + (a1r * qi + a1i * qr)
            yr[j] = (c0r * pr - c0i * pi) + (c1r * qr - c1i * qi)
            yi[j] = (c0r * pi + c0i * pr) + (c1r * qi + c1i * qr)


@_jit
def _apply_diag(bre, bim, b, d0, d1):
    """Buffer ← diag(d0, d1) on local bit b (complex circuits only)."""
    size = bre.shape[0]
    stride = 1 << b
    d0r, d0i, d1r, d1i = d0.real, d0.imag, d1.real, d1.imag
    for base in range(0, size, 2 * stride):
        xr = bre[base : base + stride]
        xi = bim[base : base + stride]
        for j in range(stride):
            pr = xr[j]
            pi = xi[j]
            xr[j] = d0r * pr - d0i * pi
            xi[j] = d0r * pi + d0i * pr
        yr = bre[base + stride : base + 2 * stride]
        yi = bim[base + stride : base + 2 * stride]
        for j in range(stride):
            pr = yr[j]
            pi = yi[j]
            yr[j] = d1r * pr - d1i * pi
            yi[j] = d1r * pi + d1i * pr


@_jit
def _applyk(bre, bim, cplx, k, offs, m, mo, vre, vim):
    """Buffer ← (row-major 2^k x 2^k matrix at m[mo:]) on the local bits of offs."""
    size = 1 << k
    tmask = offs[size - 1]
    cmask = (bre.shape[0] - 1) & ~tmask
    base = 0
    while True:
        for a in range(size):
            vre[a] = bre[base + offs[a]]
            if cplx:
                vim[a] = bim[base + offs[a]]
        for a in range(size):
            accr = 0.0
            acci = 0.0
            for c in range(size):
                e = m[mo + a * size + c]
                er = e.real
                ei = e.imag
                if cplx:
                    accr += er * vre[c] - ei * vim[c]
                    acci += er * vim[c] + ei * vre[c]
                else:
                    accr += er * vre[c]
            bre[base + offs[a]] = accr
            if cplx:
                bim[base + offs[a]] = acci
        base = (base - cmask) & cmask
        if base == 0:
            break


@_jit
def _permute(bre, bim, cplx, k, offs, perm, po, vre, vim):
    """Buffer ← the basis permutation ``new[a] = old[perm[po + a]]`` on the local bits of offs."""
    size = 1 << k
    tmask = offs[size - 1]
    cmask = (bre.shape[0] - 1) & ~tmask
    base = 0
    while True:
        for a in range(size):
            vre[a] = bre[base + offs[a]]
            if cplx:
                vim[a] = bim[base + offs[a]]
        for a in range(size):
            src = perm[po + a]
            if src != a:
                bre[base + offs[a]] = vre[src]
                if cplx:
                    bim[base + offs[a]] = vim[src]
        base = (base - cmask) & cmask
        if base == 0:
            break


@_inline
def _move4(arr, base, run, o1, o2, t0, t1, t2, t3):
    """Quarter ``a`` (offset 0, o1, o2, o1 + o2) of a group ← the quarter at offset t_a."""
    q0 = arr[base : base + run]
    q1 = arr[base + o1 : base + o1 + run]
    q2 = arr[base + o2 : base + o2 + run]
    q3 = arr[base + o1 + o2 : base + o1 + o2 + run]
    v0 = arr[base + t0 : base + t0 + run]
    v1 = arr[base + t1 : base + t1 + run]
    v2 = arr[base + t2 : base + t2 + run]
    v3 = arr[base + t3 : base + t3 + run]
    for j in range(run):
        w0 = v0[j]
        w1 = v1[j]
        w2 = v2[j]
        w3 = v3[j]
        q0[j] = w0
        q1[j] = w1
        q2[j] = w2
        q3[j] = w3


@_inline
def _swap(arr, base, run, x, y):
    """Swap the runs at base + x and base + y."""
    p = arr[base + x : base + x + run]
    q = arr[base + y : base + y + run]
    for j in range(run):
        w = p[j]
        p[j] = q[j]
        q[j] = w


@_jit
def _permute2(bre, bim, cplx, b0, b1, perm, po):
    """Buffer ← the two-qubit basis permutation ``new[a] = old[perm[po + a]]`` on local bits b0, b1.

    ``a = 2·(bit b0) + (bit b1)``. The quarters of each group are moved as runs of
    ``2**min(b0, b1)`` amplitudes so that the loops vectorise; a transposition (CNOT, SWAP)
    swaps two quarters and leaves the others alone.
    """
    lo = min(b0, b1)
    hi = max(b0, b1)
    run = 1 << lo
    o1 = 1 << b1
    o2 = 1 << b0
    offs = np.array([0, o1, o2, o1 | o2])
    t0 = offs[perm[po]]
    t1 = offs[perm[po + 1]]
    t2 = offs[perm[po + 2]]
    t3 = offs[perm[po + 3]]
    moved = np.empty(4, np.int64)
    count = 0
    for a in range(4):
        if perm[po + a] != a:
            moved[count] = offs[a]
            count += 1
    x = moved[0]
    y = moved[1]
    for outer in range(0, bre.shape[0], 1 << (hi + 1)):
        for base in range(outer, outer + (1 << hi), 1 << (lo + 1)):
            if count == 2:
                _swap(bre, base, run, x, y)
                if cplx:
                    _swap(bim, base, run, x, y)
            else:
                _move4(bre, base, run, o1, o2, t0, t1, t2, t3)
                if cplx:
                    _move4(bim, base, run, o1, o2, t0, t1, t2, t3)


@_jit
def _block(
    bre, bim, cplx, n, r, mask, lo, hi, units, unit_perm, perm, code, mats, cos, sin, mbuf, offs, vre, vim
):
    """Run the units lo..hi of a stage (block `mask`) on the buffer with the angles of row r."""
    one = mats[0] * 0.0 + 1.0
    for u in range(lo, hi):
        i = units[u]
        kd = code[i, KIND]
        o = code[i, MOFF]
        k = code[i, NT]
        if kd == CHAIN:
            a00, a01, a10, a11 = chain_matrix(code, i, mats, cos, sin, r, one)
            _apply1(bre, bim, cplx, _local_bit(n, mask, code[i, T0]), a00, a01, a10, a11)
            continue
        if kd != ROTK and (kd != FIXK or k == 1):  # ROT1, ROTD, one-qubit FIXK
            m00, m01, m10, m11 = matrix1(code, i, mats, cos, sin, r)
            b = _local_bit(n, mask, code[i, T0])
            if kd == ROTD and cplx:
                _apply_diag(bre, bim, b, m00, m11)
            else:
                _apply1(bre, bim, cplx, b, m00, m01, m10, m11)
            continue
        for a in range(1 << k):
            off = 0
            for j in range(k):
                if (a >> (k - 1 - j)) & 1:
                    off |= 1 << _local_bit(n, mask, code[i, T0 + j])
            offs[a] = off
        if kd == ROTK:
            c = cos[r, code[i, SLOT]]
            sn = sin[r, code[i, SLOT]]
            size = 1 << k
            for a in range(size):
                for b in range(size):
                    mbuf[a * size + b] = sn * mats[o + a * size + b]
                mbuf[a * size + a] += c
            _applyk(bre, bim, cplx, k, offs, mbuf, 0, vre, vim)
        elif unit_perm[u] >= 0 and k == 2:
            _permute2(
                bre,
                bim,
                cplx,
                _local_bit(n, mask, code[i, T0]),
                _local_bit(n, mask, code[i, T0 + 1]),
                perm,
                unit_perm[u],
            )
        elif unit_perm[u] >= 0:
            _permute(bre, bim, cplx, k, offs, perm, unit_perm[u], vre, vim)
        else:
            _applyk(bre, bim, cplx, k, offs, mats, o, vre, vim)


@_inline
def _run_copy(dst, src):
    """dst[:] = src (equal lengths), as a loop over views the compiler turns into vector moves."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@_jit
def _copy(re, im, bre, bim, cplx, base, mask, to_buffer):
    """Copy the block `base` of the state into the buffer (or back), in runs of its low bits."""
    low = 0
    while (mask >> low) & 1:
        low += 1
    run = 1 << low
    hmask = mask & ~(run - 1)
    cur = 0
    at = 0
    while True:
        start = base | cur
        if to_buffer:
            _run_copy(bre[at : at + run], re[start : start + run])
            if cplx:
                _run_copy(bim[at : at + run], im[start : start + run])
        else:
            _run_copy(re[start : start + run], bre[at : at + run])
            if cplx:
                _run_copy(im[start : start + run], bim[at : at + run])
        at += run
        cur = (cur - hmask) & hmask
        if cur == 0:
            break


@_jit
def forward(re, im, bre, bim, r, code, mats, cos, sin, stage_mask, stage_start, units, unit_perm, perm):
    """Apply every stage of the plan to the split state (re, im) with the angles of row r."""
    dim = re.shape[0]
    n = 0
    while (1 << n) < dim:
        n += 1
    cplx = im.shape[0] == dim
    mbuf = np.empty(64, mats.dtype)
    offs = np.empty(8, np.int64)
    vre = np.empty(8, np.float64)
    vim = np.empty(8, np.float64)
    for s in range(stage_mask.shape[0]):
        mask = stage_mask[s]
        lo = stage_start[s]
        hi = stage_start[s + 1]
        if mask == dim - 1:  # the whole register is one block
            _block(
                re,
                im,
                cplx,
                n,
                r,
                mask,
                lo,
                hi,
                units,
                unit_perm,
                perm,
                code,
                mats,
                cos,
                sin,
                mbuf,
                offs,
                vre,
                vim,
            )
            continue
        size = 1
        x = mask
        while x:
            x &= x - 1
            size <<= 1
        pre = bre[:size]
        pim = bim[:size] if cplx else bim[:0]
        omask = (dim - 1) & ~mask
        base = 0
        while True:
            _copy(re, im, pre, pim, cplx, base, mask, True)
            _block(
                pre,
                pim,
                cplx,
                n,
                r,
                mask,
                lo,
                hi,
                units,
                unit_perm,
                perm,
                code,
                mats,
                cos,
                sin,
                mbuf,
                offs,
                vre,
                vim,
            )
            _copy(re, im, pre, pim, cplx, base, mask, False)
            base = (base - omask) & omask
            if base == 0:
                break


@_jit
def expect(re, im, xmask, yzmask, c):
    """Re(c · Σ_y conj(ψ_y) (−1)^{|(y⊕x)∧z|} ψ_{y⊕x}) of the split state."""
    cplx = im.shape[0] == re.shape[0]
    accr = 0.0
    acci = 0.0
    for y in range(re.shape[0]):
        x = y ^ xmask
        if cplx:
            tr = re[y] * re[x] + im[y] * im[x]
            ti = re[y] * im[x] - im[y] * re[x]
        else:
            tr = re[y] * re[x]
            ti = 0.0
        if parity(x & yzmask):
            accr -= tr
            acci -= ti
        else:
            accr += tr
            acci += ti
    return c.real * accr - c.imag * acci


@_jit
def expectations(
    cplx,
    initial,
    code,
    mats,
    cos,
    sin,
    stage_mask,
    stage_start,
    units,
    unit_perm,
    perm,
    block,
    xmask,
    yzmask,
    tc,
    out,
):
    """out[r, t] = ⟨ψ_r| P_t |ψ_r⟩ for every angle row r (see `kernels.expectations`).

    Args:
        cplx: The circuit is complex (the tape is not real): the state has imaginary parts.
        initial: The tape's initial state (float64 for real circuits, else complex128).
        code: The tape's step table.
        mats: The tape's matrices.
        cos: ``cos(θ/2)``, (rows, slots).
        sin: ``sin(θ/2)``, (rows, slots).
        stage_mask: Bit mask of each stage's block.
        stage_start: Units of stage s are ``units[stage_start[s]:stage_start[s + 1]]``.
        units: Tape rows of the plan's units (steps, or chain headers), stage by stage.
        unit_perm: Offset of each unit's permutation in `perm`, −1 for a matrix.
        perm: Local basis permutations.
        block: Amplitudes of the largest block (the buffer size).
        xmask: X/Y mask of each term.
        yzmask: Y/Z mask of each term.
        tc: ``i^{#Y}`` of each term (0 for odd-Y terms of real circuits).
        out: (rows, terms) float64, written.
    """
    dim = initial.shape[0]
    re = np.empty(dim, np.float64)
    im = np.empty(dim if cplx else 0, np.float64)
    bre = np.empty(block, np.float64)
    bim = np.empty(block if cplx else 0, np.float64)
    for r in range(cos.shape[0]):
        for y in range(dim):
            re[y] = initial[y].real
            if cplx:
                im[y] = initial[y].imag
        forward(re, im, bre, bim, r, code, mats, cos, sin, stage_mask, stage_start, units, unit_perm, perm)
        for t in range(xmask.shape[0]):
            out[r, t] = expect(re, im, xmask[t], yzmask[t], tc[t])
