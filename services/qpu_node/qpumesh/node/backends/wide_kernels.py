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
* one-qubit and wider matrices act on a block by `wide_gates`; fixed gates that permute
  basis states (CNOT, X, SWAP, CCX...) are moves, not products (`wide_moves`), and a run
  of them in a stage is one move composed at plan time;
* the leading one-qubit layer (each qubit's first gates, on ``|0⟩``) is not run gate by
  gate: the state starts as their product (`product_state`), written in one pass;
* the last stage sums the Pauli terms of each block while it is in cache (`wide_terms`)
  instead of copying it back, when every term's X/Y mask lies inside the block;
* the state arrays come from the caller (`compiled`), allocated by numpy: large numpy
  arrays get transparent huge pages, on which the stages' strided copies run ~1.8x faster
  than on the 4 KiB pages of an allocation inside the kernel (measured at 20 qubits).

Arithmetic: a complex product ``m·a`` is computed as ``(m.re a.re − m.im a.im, m.re a.im +
m.im a.re)``, the same operations complex128 code performs; sums run in one fixed order,
no ``fastmath``, so results are deterministic and agree with `kernels` to rounding (the
order of a few products differs: the tests bound the difference by 1e-10).
"""

from __future__ import annotations

import numpy as np

from qpumesh.node.backends.jit import inline as _inline
from qpumesh.node.backends.jit import jit as _jit
from qpumesh.node.backends.kernels import chain_matrix, matrix1
from qpumesh.node.backends.product_state import product_state
from qpumesh.node.backends.tape import CHAIN, FIXK, KIND, MOFF, NT, ROTD, ROTK, SLOT, T0
from qpumesh.node.backends.wide_gates import apply1, apply_diag, applyk
from qpumesh.node.backends.wide_moves import gather_block, permute, permute2, run_copy
from qpumesh.node.backends.wide_terms import block_terms, expect, fits_block

__all__ = ["expectations"]


@_inline
def _local_bit(n, mask, q):
    """Position of qubit q's bit (``n − 1 − q``) among the set bits of `mask` (its bit in the block)."""
    x = mask & ((1 << (n - 1 - q)) - 1)
    count = 0
    while x:
        x &= x - 1
        count += 1
    return count


@_jit
def _block(
    bre,
    bim,
    cplx,
    n,
    r,
    mask,
    lo,
    hi,
    units,
    unit_perm,
    perm,
    unit_gather,
    gather,
    code,
    mats,
    cos,
    sin,
    mbuf,
    offs,
    vre,
    vim,
    sre,
    sim,
):
    """Run the units lo..hi of a stage (block `mask`) on the buffer with the angles of row r.

    Returns:
        Whether the result is in the scratch (``sre``, ``sim``) instead of the buffer: a
        gather writes the scratch and the two swap roles (no copy back).
    """
    one = mats[0] * 0.0 + 1.0
    cre = bre
    cim = bim
    ore = sre[: bre.shape[0]]
    oim = sim[: bim.shape[0]]
    swapped = False
    for u in range(lo, hi):
        i = units[u]
        if unit_gather[u] >= 0:
            gather_block(cre, cim, cplx, gather, unit_gather[u], ore, oim)
            cre, ore = ore, cre
            cim, oim = oim, cim
            swapped = not swapped
            continue
        kd = code[i, KIND]
        o = code[i, MOFF]
        k = code[i, NT]
        if kd == CHAIN:
            a00, a01, a10, a11 = chain_matrix(code, i, mats, cos, sin, r, one)
            apply1(cre, cim, cplx, _local_bit(n, mask, code[i, T0]), a00, a01, a10, a11)
            continue
        if kd != ROTK and (kd != FIXK or k == 1):  # ROT1, ROTD, one-qubit FIXK
            m00, m01, m10, m11 = matrix1(code, i, mats, cos, sin, r)
            b = _local_bit(n, mask, code[i, T0])
            if kd == ROTD and cplx:
                apply_diag(cre, cim, b, m00, m11)
            else:
                apply1(cre, cim, cplx, b, m00, m01, m10, m11)
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
            applyk(cre, cim, cplx, k, offs, mbuf, 0, vre, vim)
        elif unit_perm[u] >= 0 and k == 2:
            permute2(
                cre,
                cim,
                cplx,
                _local_bit(n, mask, code[i, T0]),
                _local_bit(n, mask, code[i, T0 + 1]),
                perm,
                unit_perm[u],
            )
        elif unit_perm[u] >= 0:
            permute(cre, cim, cplx, k, offs, perm, unit_perm[u], vre, vim)
        else:
            applyk(cre, cim, cplx, k, offs, mats, o, vre, vim)
    return swapped


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
            run_copy(bre[at : at + run], re[start : start + run])
            if cplx:
                run_copy(bim[at : at + run], im[start : start + run])
        else:
            run_copy(re[start : start + run], bre[at : at + run])
            if cplx:
                run_copy(im[start : start + run], bim[at : at + run])
        at += run
        cur = (cur - hmask) & hmask
        if cur == 0:
            break


@_jit
def forward(
    re,
    im,
    bre,
    bim,
    r,
    code,
    mats,
    cos,
    sin,
    stage_mask,
    stage_start,
    units,
    unit_perm,
    perm,
    unit_gather,
    gather,
    sre,
    sim,
    xmask,
    yzmask,
    accr,
    acci,
):
    """Apply every stage of the plan to the split state (re, im) with the angles of row r.

    ``sre``/``sim`` are scratch buffers of the block's size (for the composed gathers). A
    stage whose block is the whole register runs on the state itself (no copies).

    Returns:
        Whether the term sums are in ``accr``/``acci`` (`wide_terms.block_terms`): the last
        stage then summed every block in cache and did not copy it back (the state is left
        incomplete). Otherwise the state holds the result.
    """
    dim = re.shape[0]
    n = 0
    while (1 << n) < dim:
        n += 1
    cplx = im.shape[0] == dim
    mbuf = np.empty(64, mats.dtype)
    offs = np.empty(8, np.int64)
    vre = np.empty(8, np.float64)
    vim = np.empty(8, np.float64)
    stages = stage_mask.shape[0]
    fused = stages > 0 and stage_mask[stages - 1] != dim - 1 and fits_block(stage_mask[stages - 1], xmask)
    if fused:
        accr[:] = 0.0
        acci[:] = 0.0
    for s in range(stages):
        mask = stage_mask[s]
        whole = mask == dim - 1
        size = 1
        x = mask
        while x:
            x &= x - 1
            size <<= 1
        pre = re if whole else bre[:size]
        pim = im if whole else bim[: size if cplx else 0]
        ore = sre[:size]
        oim = sim[: size if cplx else 0]
        omask = (dim - 1) & ~mask
        base = 0
        while True:
            if not whole:
                _copy(re, im, pre, pim, cplx, base, mask, True)
            swapped = _block(
                pre, pim, cplx, n, r, mask, stage_start[s], stage_start[s + 1], units, unit_perm, perm,
                unit_gather, gather, code, mats, cos, sin, mbuf, offs, vre, vim, sre, sim,
            )  # fmt: skip
            if whole and swapped:
                run_copy(re, ore)
                if cplx:
                    run_copy(im, oim)
            elif fused and s == stages - 1:
                if swapped:
                    block_terms(ore, oim, cplx, mask, base, xmask, yzmask, accr, acci)
                else:
                    block_terms(pre, pim, cplx, mask, base, xmask, yzmask, accr, acci)
            elif not whole:
                _copy(re, im, ore if swapped else pre, oim if swapped else pim, cplx, base, mask, False)
            base = (base - omask) & omask
            if base == 0:
                break
    return fused


@_jit
def expectations(
    re,
    im,
    initial,
    lead,
    code,
    mats,
    cos,
    sin,
    stage_mask,
    stage_start,
    units,
    unit_perm,
    perm,
    unit_gather,
    gather,
    block,
    xmask,
    yzmask,
    tc,
    out,
):
    """out[r, t] = ⟨ψ_r| P_t |ψ_r⟩ for every angle row r (see `kernels.expectations`).

    Args:
        re: The state's real parts, ``2**n`` float64 (work space, overwritten): allocated by
            the caller with numpy, whose large arrays get transparent huge pages -- the
            stages' strided copies run ~1.8x faster on them than on 4 KiB pages.
        im: The state's imaginary parts (work space; empty for a real circuit).
        initial: The tape's initial state (float64 for real circuits, else complex128).
        lead: The plan's leading one-qubit units per qubit (`product_state`), or empty when
            the state starts from `initial` instead.
        code: The tape's step table.
        mats: The tape's matrices.
        cos: ``cos(θ/2)``, (rows, slots).
        sin: ``sin(θ/2)``, (rows, slots).
        stage_mask: Bit mask of each stage's block.
        stage_start: Units of stage s are ``units[stage_start[s]:stage_start[s + 1]]``.
        units: Tape rows of the plan's units (steps, or chain headers), stage by stage.
        unit_perm: Offset of each unit's permutation in `perm`, −1 for a matrix.
        perm: Local basis permutations.
        unit_gather: Offset of each unit's block gather in `gather`, −1 for none.
        gather: Composed block permutations (uint16).
        block: Amplitudes of the largest block (the buffer size).
        xmask: X/Y mask of each term.
        yzmask: Y/Z mask of each term.
        tc: ``i^{#Y}`` of each term (0 for odd-Y terms of real circuits).
        out: (rows, terms) float64, written.
    """
    dim = initial.shape[0]
    cplx = im.shape[0] == dim
    bre = np.empty(block, np.float64)
    bim = np.empty(block if cplx else 0, np.float64)
    sre = np.empty(block, np.float64)
    sim = np.empty(block if cplx else 0, np.float64)
    accr = np.empty(xmask.shape[0], np.float64)
    acci = np.empty(xmask.shape[0], np.float64)
    for r in range(cos.shape[0]):
        if lead.shape[0]:
            product_state(re, im, lead, code, mats, cos, sin, r)
        else:
            for y in range(dim):
                re[y] = initial[y].real
                if cplx:
                    im[y] = initial[y].imag
        fused = forward(
            re, im, bre, bim, r, code, mats, cos, sin, stage_mask, stage_start, units, unit_perm, perm,
            unit_gather, gather, sre, sim, xmask, yzmask, accr, acci,
        )  # fmt: skip
        for t in range(xmask.shape[0]):
            if fused:
                out[r, t] = tc[t].real * accr[t] - tc[t].imag * acci[t]
            else:
                out[r, t] = expect(re, im, xmask[t], yzmask[t], tc[t])
