"""Domain errors to gRPC status codes, at the edge of every servicer.

Domain code raises domain exceptions; a servicer runs each handler body through
``answer`` (``answer_async`` on an asyncio server) with its ``StatusMap``, which
aborts the call with the mapped status and
the error's message (a message that says what to fix). An exception the map does not
know is a bug: it is logged with its traceback and answered INTERNAL, and the server
keeps serving. While a server shuts down every failure is UNAVAILABLE, so clients try
again once it is back. Clients turn statuses back into exceptions with
``qpumesh.wire.errors.from_rpc_error``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]


class StatusMap:
    """Which status code each kind of domain error gets; the first matching entry wins.

    Args:
        entries: ``(exception type or types, status code)`` pairs, most specific first.
    """

    def __init__(self, *entries: tuple[ErrorTypes, grpc.StatusCode]) -> None:
        self.entries = entries

    def code_of(self, error: BaseException) -> grpc.StatusCode | None:
        """Return the status code of an expected error; None for a bug."""
        for types, code in self.entries:
            if isinstance(error, types):
                return code
        return None


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` and ``message``."""
    context.abort(code, message)
    raise AssertionError("grpc.ServicerContext.abort returned")  # abort always raises


def answer(
    method: str,
    context: grpc.ServicerContext,
    run: Callable[[], _T],
    statuses: StatusMap,
    *,
    stopping: threading.Event | None = None,
) -> _T:
    """Run a handler body; turn any exception into a status, so the server keeps serving.

    Args:
        method: the RPC's name, for messages and logs.
        context: the call's context.
        run: the handler body.
        statuses: the domain errors this service expects.
        stopping: set while the server shuts down; then every failure is UNAVAILABLE.
    """
    try:
        return run()
    except Exception as error:  # the servicer edge: nothing may escape unmapped
        abort(context, *status_of(method, error, statuses, stopping))


async def answer_async(
    method: str,
    context: grpc.aio.ServicerContext[Any, Any],
    run: Callable[[], Awaitable[_T]],
    statuses: StatusMap,
    *,
    stopping: threading.Event | None = None,
) -> _T:
    """``answer`` for asyncio servicers: await the handler body, map any exception to a status."""
    try:
        return await run()
    except grpc.aio.AbortError:  # the body ended the call itself
        raise
    except Exception as error:  # the servicer edge: nothing may escape unmapped
        code, message = status_of(method, error, statuses, stopping)
    await context.abort(code, message)
    raise AssertionError("grpc.aio.ServicerContext.abort returned")  # abort always raises


def status_of(
    method: str, error: Exception, statuses: StatusMap, stopping: threading.Event | None = None
) -> tuple[grpc.StatusCode, str]:
    """Return the status and message a failed handler answers with (and log it)."""
    if stopping is not None and stopping.is_set():
        return grpc.StatusCode.UNAVAILABLE, "server shutting down; try again later"
    code = statuses.code_of(error)
    if code is None:
        logger.error("%s failed unexpectedly", method, exc_info=error)
        return grpc.StatusCode.INTERNAL, f"{method}: internal error: {type(error).__name__}: {error}"
    # NOT_FOUND is the node's normal "resend the circuit" handshake, not worth an INFO line.
    level = logging.DEBUG if code == grpc.StatusCode.NOT_FOUND else logging.INFO
    logger.log(level, "%s rejected (%s): %s", method, code.name, error)
    return code, str(error)
