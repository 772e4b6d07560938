"""Fixed matrices on a few sites of a batch-last register, for the noisy engines.

Both noisy engines keep a whole batch as one tensor of shape ``(d**n, columns)``: ``n`` sites of
dimension ``d`` (``d = 2`` for statevector trajectories, ``d = 4`` for Pauli vectors), big-endian
in the site index, with the batch last so that every step streams over contiguous columns.
`apply_local` applies a ``d**k × d**k`` matrix to ``k`` of the sites for every column; stacking
several matrices in its first dimension applies them all in one matmul (used for the
``A + cos θ B + sin θ C`` form of a rotation). A *monomial* matrix (one nonzero per row:
CNOT, SWAP, CZ, X, S... and their Pauli transfer matrices) is cheaper as a gather of the
whole register, ``new[y] = scale[y] · old[src[y]]`` (`as_monomial`, `full_register_gather`);
successive gathers compose into one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["apply_local", "as_monomial", "compose_gathers", "full_register_gather"]

_ATOL = 1e-12


def apply_local(
    state: torch.Tensor, d: int, n: int, targets: Sequence[int], matrix: torch.Tensor
) -> torch.Tensor:
    """Apply ``matrix`` to sites ``targets`` of every column of ``state``.

    Args:
        state: ``(d**n, columns)``.
        d: Dimension of a site.
        n: Number of sites.
        targets: Distinct site indices, in the matrix's (big-endian) order.
        matrix: ``(m · d**k, d**k)``: ``m`` stacked ``d**k × d**k`` matrices.

    Returns:
        ``(m, d**n, columns)`` when ``m > 1``, else ``(d**n, columns)``.
    """
    columns = state.shape[1]
    k = len(targets)
    size = d**k
    stacked = matrix.shape[0] // size
    if k == 1:
        (t,) = targets
        view = state.view(d**t, d, -1)  # broadcast matmul over the leading sites
        out = torch.matmul(matrix, view)  # (d**t, m·d, rest)
        if stacked == 1:
            return out.view(-1, columns)
        return out.view(d**t, stacked, d, -1).transpose(0, 1).reshape(stacked, -1, columns)
    tensor = state.view((d,) * n + (columns,))
    moved = torch.movedim(tensor, list(targets), list(range(k)))
    shape = moved.shape
    flat = moved.reshape(size, -1)
    out = (matrix @ flat).view((stacked, *shape))
    back = torch.movedim(out, list(range(1, k + 1)), [t + 1 for t in targets])
    back = back.reshape(stacked, -1, columns)
    return back[0] if stacked == 1 else back


def as_monomial(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return ``(src, scale)`` with ``matrix[y, src[y]] = scale[y]`` the only nonzeros, or None."""
    nonzero = np.abs(matrix) > _ATOL
    if not np.all(nonzero.sum(axis=1) == 1):
        return None
    src = np.argmax(nonzero, axis=1)
    return src, matrix[np.arange(matrix.shape[0]), src]


def full_register_gather(
    local_src: np.ndarray, local_scale: np.ndarray, d: int, n: int, targets: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the whole-register ``(src, scale)`` of a monomial matrix on sites `targets`.

    Args:
        local_src: ``as_monomial`` source of the ``d**k × d**k`` matrix.
        local_scale: Its nonzero entries.
        d: Dimension of a site (a power of two).
        n: Number of sites.
        targets: The sites, in the matrix's (big-endian) order.
    """
    bits = d.bit_length() - 1
    mask = d - 1
    index = np.arange(d**n, dtype=np.int64)
    shifts = [bits * (n - 1 - t) for t in targets]
    k = len(targets)
    local = np.zeros_like(index)
    for position, shift in enumerate(shifts):
        local |= ((index >> shift) & mask) << (bits * (k - 1 - position))
    chosen = local_src[local]
    src = index.copy()
    for position, shift in enumerate(shifts):
        src &= ~(mask << shift)
        src |= ((chosen >> (bits * (k - 1 - position))) & mask) << shift
    return src, local_scale[local]


def compose_gathers(
    first: tuple[np.ndarray, np.ndarray], then: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the gather of `first` followed by `then` (both ``(src, scale)``).

    ``new[y] = s2[y] · mid[src2[y]]`` with ``mid[x] = s1[x] · old[src1[x]]``.
    """
    (src1, scale1), (src2, scale2) = first, then
    return src1[src2], scale2 * scale1[src2]
