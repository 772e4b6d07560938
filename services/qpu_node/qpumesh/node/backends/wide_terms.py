"""Pauli-term sums of the wide kernels' split state: over the whole state, or block by block.

``⟨P⟩ = Re(c · Σ_y conj(ψ_y) (−1)^{|(y⊕x)∧z|} ψ_{y⊕x})`` for a term with X/Y mask ``x``,
Y/Z mask ``z`` and ``c = i^{#Y}`` (`tape.TermTable`). `expect` sums over the whole state.
`block_terms` adds one block's share while the block is still in cache, so that the last
stage of a plan need not copy its blocks back nor the state be read once more: valid when
every term's ``x`` lies inside the block (pairs ``y, y⊕x`` share a block), the sign's bits
outside the block being constant over it. The sums run in a fixed order (block after
block, each block in index order), so results are identical run to run; they differ from
`expect`'s order only by rounding.
"""

from __future__ import annotations

from qpumesh.node.backends.jit import inline as _inline
from qpumesh.node.backends.jit import jit as _jit
from qpumesh.node.backends.kernels import parity

__all__ = ["block_terms", "expect", "fits_block"]


@_inline
def _sum(re, im, cplx, xmask, yzmask):
    """(Σ_y ±conj(ψ_y) ψ_{y⊕x}) as (real, imaginary) over the array pair (see the module docstring)."""
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
    return accr, acci


@_jit
def expect(re, im, xmask, yzmask, c):
    """Re(c · Σ_y conj(ψ_y) (−1)^{|(y⊕x)∧z|} ψ_{y⊕x}) of the split state."""
    accr, acci = _sum(re, im, im.shape[0] == re.shape[0], xmask, yzmask)
    return c.real * accr - c.imag * acci


@_inline
def _compress(mask, value):
    """Return the bits of `value` at the set bits of `mask`, packed from bit 0 (its local bits)."""
    out = 0
    k = 0
    while mask:
        low = mask & -mask
        if value & low:
            out |= 1 << k
        k += 1
        mask &= mask - 1
    return out


@_jit
def fits_block(mask, xmask):
    """Whether every term's X/Y mask lies inside the block `mask` (see `block_terms`)."""
    for t in range(xmask.shape[0]):  # noqa: SIM110 (numba compiles no generators here)
        if xmask[t] & ~mask:
            return False
    return True


@_jit
def block_terms(bre, bim, cplx, mask, base, xmask, yzmask, accr, acci):
    """accr[t], acci[t] += the sums of term t over the block `base` (held in bre, bim)."""
    for t in range(xmask.shape[0]):
        sr, si = _sum(bre, bim, cplx, _compress(mask, xmask[t]), _compress(mask, yzmask[t]))
        if parity(base & yzmask[t]):
            accr[t] -= sr
            acci[t] -= si
        else:
            accr[t] += sr
            acci[t] += si
