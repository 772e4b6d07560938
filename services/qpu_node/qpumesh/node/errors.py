"""The node's domain errors; the gRPC servicer maps each to one status code.

| error | status | meaning |
|---|---|---|
| `InvalidRequest` | INVALID_ARGUMENT | malformed request; fails again unchanged |
| `UnknownCircuit` | NOT_FOUND | hash-only request for a circuit the node does not hold; resend the JSON |
| `LimitExceeded` | RESOURCE_EXHAUSTED | over a node limit; split the request |
| `PreconditionFailed` | FAILED_PRECONDITION | well formed, but this node cannot run it as asked |
"""

from __future__ import annotations

__all__ = ["InvalidRequest", "LimitExceeded", "NodeError", "PreconditionFailed", "UnknownCircuit"]


class NodeError(Exception):
    """Base of the node's domain errors (servicer maps them to gRPC codes)."""


class InvalidRequest(NodeError, ValueError):  # noqa: N818 (public API name)
    """The request is malformed; resending it unchanged will fail again (INVALID_ARGUMENT)."""


class UnknownCircuit(NodeError, KeyError):  # noqa: N818 (public API name)
    """Only a hash was sent and this node does not hold it; resend the JSON (NOT_FOUND)."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message.
        return str(self.args[0]) if self.args else ""


class LimitExceeded(NodeError):  # noqa: N818 (public API name)
    """The request exceeds a node limit; split it (RESOURCE_EXHAUSTED)."""


class PreconditionFailed(NodeError):  # noqa: N818 (public API name)
    """The node cannot run the request as asked (adjoint on a noisy node...): FAILED_PRECONDITION.

    The request is well formed; a node configured otherwise, or another gradient method,
    can run it.
    """
