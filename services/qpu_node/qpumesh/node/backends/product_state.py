"""The product state of a circuit's leading one-qubit layer, built directly (wide kernels).

Nearly every circuit a node sees starts with one-qubit gates on ``|0…0⟩`` (the QLSTM's
encoding: H, RY, RZ on every qubit), and until the first multi-qubit gate on a qubit the
state is a product ``⊗_q v_q`` with ``v_q`` the first column of the qubit's leading chain.
Applying those chains as gates costs one pass over the state per qubit (20 passes over
16 MiB at 20 qubits); `product_state` writes the product in ONE pass instead: the
amplitudes of the upper and the lower half of the qubits are tabulated (``2**(n/2)``
entries each), and every amplitude is one complex product of two table entries.

Arithmetic: the same complex products as a gate applied to a product state (the other
column meets exact zeros), in a different but fixed order, so the values agree with the
gate-by-gate kernels to rounding and are identical run to run.
"""

from __future__ import annotations

import numpy as np

from qpumesh.node.backends.jit import jit as _jit
from qpumesh.node.backends.kernels import chain_matrix, matrix1
from qpumesh.node.backends.tape import CHAIN, KIND

__all__ = ["product_state"]


@_jit
def _table(tre, tim, cplx, first, count, lead, code, mats, cos, sin, r, one):
    """t[i] = Π_j v_{first + j}[bit j of i] (big-endian: qubit `first` is the top bit of i)."""
    tre[0] = 1.0
    if cplx:
        tim[0] = 0.0
    size = 1
    for q in range(first, first + count):
        i = lead[q]
        if i < 0:
            v0 = one
            v1 = one * 0.0
        elif code[i, KIND] == CHAIN:
            v0, _, v1, _ = chain_matrix(code, i, mats, cos, sin, r, one)
        else:
            v0, _, v1, _ = matrix1(code, i, mats, cos, sin, r)
        for a in range(size - 1, -1, -1):  # in place, from the top: t[2a + b] = t[a] · v_b
            pr = tre[a]
            if not cplx:
                tre[2 * a] = pr * v0.real
                tre[2 * a + 1] = pr * v1.real
                continue
            pi = tim[a]
            tre[2 * a] = pr * v0.real - pi * v0.imag
            tim[2 * a] = pr * v0.imag + pi * v0.real
            tre[2 * a + 1] = pr * v1.real - pi * v1.imag
            tim[2 * a + 1] = pr * v1.imag + pi * v1.real
        size <<= 1


@_jit
def product_state(re, im, lead, code, mats, cos, sin, r):
    """Write ``⊗_q v_q`` into the split state (re, im): v_q the first column of qubit q's leading unit.

    Args:
        re: Real parts, ``2**n``, written.
        im: Imaginary parts (empty for a real circuit), written.
        lead: Tape row of each qubit's leading one-qubit unit (a chain header or a single
            step), −1 for a qubit whose first unit is wider (it stays ``|0⟩``).
        code: The tape's step table.
        mats: The tape's matrices.
        cos: ``cos(θ/2)``, (rows, slots).
        sin: ``sin(θ/2)``, (rows, slots).
        r: The angle row.
    """
    n = lead.shape[0]
    cplx = im.shape[0] == re.shape[0]
    one = mats[0] * 0.0 + 1.0
    top = n // 2
    low = n - top
    hre = np.empty(1 << top, np.float64)
    him = np.empty(1 << top if cplx else 0, np.float64)
    lre = np.empty(1 << low, np.float64)
    lim = np.empty(1 << low if cplx else 0, np.float64)
    _table(hre, him, cplx, 0, top, lead, code, mats, cos, sin, r, one)
    _table(lre, lim, cplx, top, low, lead, code, mats, cos, sin, r, one)
    run = 1 << low
    for h in range(1 << top):
        xr = re[h * run : (h + 1) * run]
        ar = hre[h]
        if not cplx:
            for j in range(run):
                xr[j] = ar * lre[j]
            continue
        xi = im[h * run : (h + 1) * run]
        ai = him[h]
        for j in range(run):
            xr[j] = ar * lre[j] - ai * lim[j]
            xi[j] = ar * lim[j] + ai * lre[j]
