"""The exceptions every qpumesh caller sees for a failed call: one hierarchy, status codes inside.

gRPC reports failures as ``grpc.RpcError`` objects whose code and message hide behind
methods of the call object (and are absent on some error types). Callers convert them
into ``QpuMeshError`` so that they catch one exception with plain ``code`` and
``details`` attributes and decide on retries by status code. ``MeshError`` is the
coordinator's node mesh giving up on a task; it is a ``QpuMeshError`` that also names
the node that answered last.
"""

from __future__ import annotations

import grpc

TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
"""Statuses of a call that may succeed when tried again (elsewhere); any other fails again unchanged."""


class QpuMeshError(RuntimeError):
    """A qpumesh service answered with a non-OK status (or could not be reached).

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT`` for a request
            that will fail again unchanged, ``UNAVAILABLE`` for a node that is down.
        details: the server's message, which says what was wrong with the request.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    def __reduce__(self) -> tuple[type[QpuMeshError], tuple[object, ...]]:
        # Keep code and details when the error crosses a process boundary
        # (multiprocessing, concurrent.futures): the default would pass only the text.
        return (type(self), (self.code, self.details))


class MeshError(QpuMeshError):
    """A task on the node mesh failed for good: a non-transient status, or every attempt failed.

    Attributes:
        node: the address of the node that answered last ("" when no node was tried).
        code: the gRPC status code.
        details: ``node ADDRESS: what went wrong``.
    """

    def __init__(self, node: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, f"node {node or '-'}: {details}")
        self.node = node
        self.reason = details

    def __reduce__(self) -> tuple[type[QpuMeshError], tuple[object, ...]]:
        return (type(self), (self.node, self.code, self.reason))


def status_code(error: grpc.RpcError) -> grpc.StatusCode:
    """Return the status code of a failed call (``UNKNOWN`` when the error carries none)."""
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def from_rpc_error(error: grpc.RpcError) -> QpuMeshError:
    """Convert a ``grpc.RpcError`` raised by a stub call into a ``QpuMeshError``.

    Errors raised by ordinary unary calls are also ``grpc.Call`` objects carrying a code
    and details; any other ``RpcError`` becomes ``UNKNOWN`` with its text.
    """
    details_of = getattr(error, "details", None)
    details = details_of() if callable(details_of) else None
    return QpuMeshError(status_code(error), details if isinstance(details, str) and details else str(error))
