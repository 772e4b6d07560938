"""Domain errors to gRPC status codes, at the edge of every servicer.

Domain code raises domain exceptions; a servicer runs each handler body through
``answer`` (``answer_async`` on an asyncio server) with its ``StatusMap``, which
aborts the call with the mapped status and
the error's message (a message that says what to fix). An exception the map does not
know is a bug: it is logged with its traceback and answered INTERNAL, and the server
keeps serving; the caller is told only that there was an internal error and the incident
id under which the server logged it, never the exception's text (a foreign client must not
see Python reprs of the server's internals). While a server shuts down every failure is
UNAVAILABLE, so clients try again once it is back. Clients turn statuses back into
exceptions with ``qpumesh.wire.errors.from_rpc_error``.

Messages may quote the offending input (a symbol, a job id); ``excerpt`` shortens such a
quote, and ``answer`` clips every message to ``MAX_DETAILS_BYTES``: a status message
travels in a trailing metadata entry, and a 1 MB echo would turn the answer into
RESOURCE_EXHAUSTED ("metadata size exceeds hard limit") on the caller's side.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]

MAX_DETAILS_BYTES = 1024
"""Longest status message sent, in UTF-8 bytes (gRPC percent-encodes it at most 3x, well
under the 8 KiB of metadata a peer accepts by default)."""


_OBJECT_REPR = re.compile(r"<[^<>]{0,200} at 0x[0-9a-fA-F]+>")


def clip(text: str, limit: int = MAX_DETAILS_BYTES) -> str:
    """Return ``text`` cut to at most ``limit`` UTF-8 bytes, saying how much was left out."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    marker = f" ... [{len(data)} bytes, clipped]"
    return data[: max(0, limit - len(marker))].decode("utf-8", errors="ignore") + marker


def excerpt(value: object, limit: int = 80) -> str:
    """Quote an input in a message as JSON would (``"abc"``, ``["a", 1]``), cut to ~``limit`` chars.

    JSON rather than Python's repr: the caller may not be written in Python.
    """
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...[{len(text)} chars]"


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
    """End the call with ``code`` and ``message``.

    The message is clipped to ``MAX_DETAILS_BYTES`` and object reprs with addresses
    (``<foo.Bar object at 0x7f...>``) become ``<object>``: they tell a caller nothing.
    """
    context.abort(code, clip(_OBJECT_REPR.sub("<object>", message)))
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
    await context.abort(code, clip(_OBJECT_REPR.sub("<object>", message)))
    raise AssertionError("grpc.aio.ServicerContext.abort returned")  # abort always raises


def status_of(
    method: str, error: Exception, statuses: StatusMap, stopping: threading.Event | None = None
) -> tuple[grpc.StatusCode, str]:
    """Return the status and message a failed handler answers with (and log it)."""
    if stopping is not None and stopping.is_set():
        return grpc.StatusCode.UNAVAILABLE, "server shutting down; try again later"
    code = statuses.code_of(error)
    if code is None:
        incident = uuid.uuid4().hex[:12]
        logger.error("%s failed unexpectedly (incident %s)", method, incident, exc_info=error)
        return (
            grpc.StatusCode.INTERNAL,
            f"{method}: internal error (incident {incident} in the server's log); please report it",
        )
    # NOT_FOUND is the node's normal "resend the circuit" handshake, not worth an INFO line.
    level = logging.DEBUG if code == grpc.StatusCode.NOT_FOUND else logging.INFO
    logger.log(level, "%s rejected (%s): %s", method, code.name, clip(str(error), 300))
    return code, str(error)
