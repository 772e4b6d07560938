"""Stopping work nobody will read: the caller's deadline and cancellation reach the engines.

The servicer runs each request between ``watch_caller(still_waiting)`` and
``forget_caller(token)``; the engines split a
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
from contextvars import ContextVar, Token

__all__ = ["CHUNK_WORK", "WorkAbandoned", "checkpoint", "forget_caller", "row_chunks", "watch_caller"]

#: Amplitude operations per chunk of rows between two checks (~20-70 ms on one core).
CHUNK_WORK = 1 << 25

# What the current request's caller answers to "still waiting?" (a gRPC context's
# ``is_active``); None outside a request.
_waiting: ContextVar[Callable[[], bool] | None] = ContextVar("qpumesh_node_caller_waiting", default=None)


class WorkAbandoned(Exception):  # noqa: N818 (reads as what happened)
    """The caller cancelled or its deadline passed; the request's work was stopped."""


def watch_caller(waiting: Callable[[], bool]) -> Token[Callable[[], bool] | None]:
    """Until ``forget_caller(token)``, `checkpoint` raises `WorkAbandoned` once ``waiting()`` is false."""
    return _waiting.set(waiting)


def forget_caller(token: Token[Callable[[], bool] | None]) -> None:
    """End what `watch_caller` began."""
    _waiting.reset(token)


def checkpoint() -> None:
    """Raise `WorkAbandoned` when the current request's caller is gone (no-op outside one).

    Raises:
        WorkAbandoned: The caller cancelled or its deadline passed.
    """
    waiting = _waiting.get()
    if waiting is not None and not waiting():
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
