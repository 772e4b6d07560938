"""Stopping work nobody will read: the caller's deadline and cancellation reach the engines.

The servicer runs each request inside ``abandon_when(caller_gone)``; the engines split a
batch into chunks of rows (`row_chunks`, about `CHUNK_WORK` amplitude operations each, a
few tens of milliseconds) and call `checkpoint` before each, which raises `WorkAbandoned`
once the caller has cancelled or its deadline has passed. A request whose client went away
therefore stops within one chunk instead of running to the end (the issue's "abandoned work
keeps running for hours"), and frees its execution slot for the next request.

Chunks only split rows, and rows are independent in every engine, so the numbers are the
same whatever the chunking (engines whose random streams span the batch are not chunked).
Outside a servicer (the in-process executor, tests, benchmarks) nothing is ever abandoned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["CHUNK_WORK", "WorkAbandoned", "abandon_when", "checkpoint", "row_chunks"]

#: Amplitude operations per chunk of rows between two checks (~20-70 ms on one core).
CHUNK_WORK = 1 << 25

_gone: ContextVar[Callable[[], bool] | None] = ContextVar("qpumesh_node_caller_gone", default=None)


class WorkAbandoned(Exception):  # noqa: N818 (reads as what happened)
    """The caller cancelled or its deadline passed; the request's work was stopped."""


@contextmanager
def abandon_when(gone: Callable[[], bool]) -> Iterator[None]:
    """Within the block, `checkpoint` raises `WorkAbandoned` once ``gone()`` is true."""
    token = _gone.set(gone)
    try:
        yield
    finally:
        _gone.reset(token)


def checkpoint() -> None:
    """Raise `WorkAbandoned` when the current request's caller is gone (no-op outside one).

    Raises:
        WorkAbandoned: The caller cancelled or its deadline passed.
    """
    gone = _gone.get()
    if gone is not None and gone():
        raise WorkAbandoned("the caller cancelled or its deadline passed; the work was stopped")


def row_chunks(rows: int, row_work: int) -> Iterator[slice]:
    """Slices of ``range(rows)`` of about `CHUNK_WORK` / `row_work` rows, checking in between.

    Args:
        rows: Rows of the batch.
        row_work: Estimated amplitude operations of one row (at least 1).

    Raises:
        WorkAbandoned: From `checkpoint`, before a chunk.
    """
    size = max(1, CHUNK_WORK // max(1, row_work))
    for start in range(0, rows, size):
        checkpoint()
        yield slice(start, min(rows, start + size))
