"""The one exception type every qpumesh client raises for a failed RPC.

gRPC reports failures as ``grpc.RpcError`` objects whose code and message hide behind
methods of the call object (and are absent on some error types). Clients convert them
into ``QpuMeshError`` so that callers catch one exception with plain ``code`` and
``details`` attributes and can decide on retries by status code.
"""

from __future__ import annotations

import grpc


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

    def __reduce__(self) -> tuple[type[QpuMeshError], tuple[grpc.StatusCode, str]]:
        # Keep code and details when the error crosses a process boundary
        # (multiprocessing, concurrent.futures): the default would pass only the text.
        return (type(self), (self.code, self.details))


def from_rpc_error(error: grpc.RpcError) -> QpuMeshError:
    """Convert a ``grpc.RpcError`` raised by a stub call into a ``QpuMeshError``.

    Errors raised by ordinary unary calls are also ``grpc.Call`` objects carrying a code
    and details; any other ``RpcError`` becomes ``UNKNOWN`` with its text.
    """
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code = code_of() if callable(code_of) else None
    details = details_of() if callable(details_of) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return QpuMeshError(code, details if isinstance(details, str) and details else str(error))
