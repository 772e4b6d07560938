"""Bearer tokens on the wire: how a client presents one to the coordinator.

A coordinator started with ``--auth-tokens FILE`` (``QPUMESH_AUTH_TOKENS``) answers only
calls carrying ``authorization: Bearer <token>`` metadata with a token of that file
(the standard health and reflection services excepted); clients take the token from
``--token`` or ``QPUMESH_TOKEN``. What a token may do (its principal and role) is the
coordinator's business (``qpumesh.coordinator.auth``). The node's NodeAdmin token is a
separate secret (``QPUMESH_ADMIN_TOKEN``, ``qpumesh.wire.fault_config``).
"""

from __future__ import annotations

from collections.abc import Iterable

from qpumesh.wire.settings import Option, nonempty

AUTHORIZATION_METADATA = "authorization"
"""The metadata key of the token (lower case, as gRPC requires)."""
BEARER = "Bearer "
TOKEN_ENV = "QPUMESH_TOKEN"
TOKEN_FLAG = "--token"
MAX_TOKEN_CHARS = 512
"""Longer ``authorization`` values are refused before they are compared."""

TOKEN_OPTION = Option(
    "token", TOKEN_ENV, TOKEN_FLAG, nonempty, "bearer token of a coordinator with --auth-tokens", "TOKEN"
)
"""The client's token setting."""


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Return the call metadata presenting ``token`` (none for an empty or None token)."""
    return ((AUTHORIZATION_METADATA, BEARER + token),) if token else ()


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """Return the token of the first ``authorization: Bearer ...`` entry; None without one.

    A value that is not ``Bearer <token>``, or longer than ``MAX_TOKEN_CHARS``, gives "",
    which matches no token.
    """
    for key, value in metadata or ():
        if key != AUTHORIZATION_METADATA:
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if len(text) > MAX_TOKEN_CHARS + len(BEARER) or not text.startswith(BEARER):
            return ""
        return text[len(BEARER) :].strip()
    return None
