"""Fixed matrices on a few sites of a batch-last register, for the noisy engines.

Both noisy engines keep a whole batch as one tensor of shape ``(d**n, columns)``: ``n`` sites of
dimension ``d`` (``d = 2`` for statevector trajectories, ``d = 4`` for Pauli vectors), big-endian
in the site index, with the batch last so that every step streams over contiguous columns.
`apply_local` applies a ``d**k × d**k`` matrix to ``k`` of the sites for every column; stacking
several matrices in its first dimension applies them all in one matmul (used for the
``A + cos θ B + sin θ C`` form of a rotation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["apply_local"]


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
