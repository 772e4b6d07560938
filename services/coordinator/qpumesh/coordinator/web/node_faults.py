"""The dashboard's fault controls: read or replace a node's faults through its ``NodeAdmin``.

The coordinator holds no admin token. The person at the dashboard types the node admin
token (``QPUMESH_ADMIN_TOKEN`` of the nodes); it is sent along as the
``x-qpumesh-admin-token`` metadata, and the node decides (UNAUTHENTICATED,
PERMISSION_DENIED, FAILED_PRECONDITION when the node has no token), exactly as for
``qpumesh fault``. Only nodes of the coordinator's own pool can be addressed, so the
dashboard cannot be used to reach other hosts.

Values are text in ``qpumesh fault``'s units and parsed by the same parsers
(``FAULT_OPTIONS``): ``latency_ms: "150ms"``, ``error_rate: "5%"``, ``hang: "true"``...
Setting faults replaces the node's whole configuration, as with ``qpumesh fault``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.v1 import node_admin_pb2_grpc as apb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.errors import from_rpc_error
from qpumesh.wire.fault_config import ADMIN_TOKEN_METADATA, FAULT_OPTIONS, FaultConfig, FaultConfigError

CALL_TIMEOUT_SECONDS = 5.0
FIELDS = tuple(option.dest for option in FAULT_OPTIONS)
"""The fault settings the form may send (``FaultConfig``'s fields)."""


class FaultControlError(Exception):
    """A fault request the dashboard refuses or the node refused.

    Attributes:
        status: the HTTP status to answer (400 bad value, 404 unknown node, 401/403 the
            node refused the token, 412 the node has no token, 502 the node is unreachable).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
}


def parse_faults(values: Mapping[str, Any]) -> FaultConfig:
    """Build a ``FaultConfig`` from form values in ``qpumesh fault``'s units; empty = off.

    Raises:
        FaultControlError: 400 for an unknown field or a bad value (named).
    """
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise FaultControlError(400, f"unknown fault setting(s) {unknown}; known: {', '.join(FIELDS)}")
    parsed: dict[str, Any] = {}
    for option in FAULT_OPTIONS:
        text = str(values.get(option.dest, "")).strip()
        if not text:
            continue
        try:
            parsed[option.dest] = option.parse(text)
        except ValueError as error:
            raise FaultControlError(400, f"{option.dest}: {error}") from None
    try:
        return FaultConfig(**parsed)
    except FaultConfigError as error:
        raise FaultControlError(400, str(error)) from None


def _call(address: str, known: Sequence[str], token: str, method: str, request: Any) -> dict[str, Any]:
    if address not in known:
        raise FaultControlError(
            404, f"node {address!r} is not in the coordinator's pool; pick one of {list(known)}"
        )
    if not token:
        raise FaultControlError(401, "the node admin token is required (QPUMESH_ADMIN_TOKEN of the nodes)")
    channel = open_channel(address)
    try:
        stub = apb_grpc.NodeAdminStub(channel)  # type: ignore[no-untyped-call]
        reply = getattr(stub, method)(
            request, timeout=CALL_TIMEOUT_SECONDS, metadata=((ADMIN_TOKEN_METADATA, token),)
        )
    except grpc.RpcError as rpc_error:
        error = from_rpc_error(rpc_error)
        raise FaultControlError(_HTTP_STATUS.get(error.code, 502), f"node {address}: {error}") from None
    finally:
        channel.close()
    result = MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    result["node"] = address
    result["described"] = FaultConfig.from_proto(reply.faults).describe()
    return result


def get_faults(address: str, known: Sequence[str], token: str) -> dict[str, Any]:
    """Return the node's faults and counters (``GetFaults``).

    Raises:
        FaultControlError: unknown node, no token, or the node refused or is unreachable.
    """
    return _call(address, known, token, "GetFaults", apb.GetFaultsRequest())


def set_faults(address: str, known: Sequence[str], token: str, faults: FaultConfig) -> dict[str, Any]:
    """Replace the node's faults (``SetFaults``) and return the new ones with the counters.

    Raises:
        FaultControlError: unknown node, no token, or the node refused or is unreachable.
    """
    return _call(address, known, token, "SetFaults", apb.SetFaultsRequest(faults=faults.to_proto()))
