"""``qpumesh.v1.NodeAdmin``: read and replace a node's faults at runtime, guarded by a token.

Enabled when the node has an admin token (``QPUMESH_ADMIN_TOKEN`` / ``--admin-token``);
every call must carry it as ``x-qpumesh-admin-token`` metadata: missing ->
UNAUTHENTICATED, wrong -> PERMISSION_DENIED, no token on the node -> FAILED_PRECONDITION.
Failed attempts are throttled per peer address (``qpumesh.wire.throttle``: after 5 in a
row the address is refused with RESOURCE_EXHAUSTED for 1 s, doubling up to 60 s) and
logged; the token itself is compared in constant time and never logged.
``qpumesh fault NODE ...`` is its client.
"""

from __future__ import annotations

import hmac
import logging

import grpc

from qpumesh.node.fault_injection import FaultInjector
from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.v1 import node_admin_pb2_grpc as apb_grpc
from qpumesh.wire.fault_config import (
    ADMIN_TOKEN_ENV,
    ADMIN_TOKEN_FLAG,
    ADMIN_TOKEN_METADATA,
    FaultConfig,
    FaultConfigError,
)
from qpumesh.wire.status import abort
from qpumesh.wire.throttle import FailureThrottle, peer_address, retry_message

logger = logging.getLogger(__name__)


class NodeAdmin(apb_grpc.NodeAdminServicer):  # type: ignore[misc]
    """``qpumesh.v1.NodeAdmin`` over a node's ``FaultInjector``.

    Args:
        injector: the node's fault injector.
        token: the secret callers must send as ``x-qpumesh-admin-token`` metadata;
            "" disables the service (every call gets FAILED_PRECONDITION).
        throttle: failed attempts per peer (default: 5 free, then 1 s doubling to 60 s).
    """

    def __init__(self, injector: FaultInjector, token: str, throttle: FailureThrottle | None = None) -> None:
        self._injector = injector
        self._token = token
        self.throttle = throttle or FailureThrottle()

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if not self._token:
            abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"fault administration is disabled on this node; start it with {ADMIN_TOKEN_ENV}=<secret> "
                f"(or {ADMIN_TOKEN_FLAG} <secret>) and send that token as '{ADMIN_TOKEN_METADATA}' metadata",
            )
        peer = peer_address(context.peer())
        wait = self.throttle.blocked_for(peer)
        if wait > 0:
            abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, retry_message("admin token attempts", wait))
        sent = [value for key, value in context.invocation_metadata() if key == ADMIN_TOKEN_METADATA]
        if not sent:  # not a guess: told what to send, not counted
            abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                f"missing '{ADMIN_TOKEN_METADATA}' metadata (qpumesh fault --token, or {ADMIN_TOKEN_ENV})",
            )
        given = sent[0].encode() if isinstance(sent[0], str) else bytes(sent[0])
        if not hmac.compare_digest(given, self._token.encode()):
            self._failed(peer, "wrong admin token")
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "wrong admin token")
        self.throttle.success(peer)

    def _failed(self, peer: str, reason: str) -> None:
        """Count a failed attempt; log it (never the token)."""
        blocked = self.throttle.failure(peer)
        suffix = f"; address blocked for {blocked:g} s" if blocked else ""
        logger.warning("NodeAdmin call from %s refused: %s%s", peer, reason, suffix)

    def SetFaults(  # noqa: N802 (name fixed by the proto)
        self, request: apb.SetFaultsRequest, context: grpc.ServicerContext
    ) -> apb.SetFaultsResponse:
        """Replace the node's faults; an empty config clears them."""
        self._authorize(context)
        try:
            config = FaultConfig.from_proto(request.faults)
        except FaultConfigError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        self._injector.set_config(config, source=f"NodeAdmin.SetFaults from {context.peer()}")
        return apb.SetFaultsResponse(faults=config.to_proto(), counters=self._injector.counters())

    def GetFaults(  # noqa: N802 (name fixed by the proto)
        self, request: apb.GetFaultsRequest, context: grpc.ServicerContext
    ) -> apb.GetFaultsResponse:
        """Return the node's faults and counters."""
        self._authorize(context)
        return apb.GetFaultsResponse(
            faults=self._injector.config.to_proto(),
            counters=self._injector.counters(),
            node_id=self._injector.node_id,
        )

    def add_to_server(self, server: grpc.Server) -> None:
        """Register the service on ``server`` (before it starts)."""
        apb_grpc.add_NodeAdminServicer_to_server(self, server)  # type: ignore[no-untyped-call]
