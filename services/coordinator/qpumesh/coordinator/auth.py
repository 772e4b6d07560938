"""Who is calling: bearer tokens, principals and roles, checked for every Coordinator call.

``--auth-tokens FILE`` (``QPUMESH_AUTH_TOKENS``) turns authentication on. The file has
one token per line, ``TOKEN PRINCIPAL [ROLE]`` separated by blanks; ``#`` starts a
comment::

    # TOKEN (the secret, >= 16 characters, or sha256:<hex of its SHA-256>)  PRINCIPAL  ROLE
    sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  alice
    c0ffee-2b0e1d9f6a7c4e3b9d8a  ops  admin

A role is ``user`` (the default: sees, cancels and deletes only its own jobs),
``admin`` (every job) or ``metrics`` (only reads the HTTP side's ``/metrics``, e.g.
Prometheus's token; every gRPC call is PERMISSION_DENIED). Storing ``sha256:`` digests
keeps the secrets out of the file.

Every call of ``qpumesh.v1.Coordinator`` (and of any service not listed in
``EXEMPT_SERVICES``: health and reflection, which probes and tools call without a token)
must carry ``authorization: Bearer <token>``. ``AuthInterceptor`` checks it before the
handler runs: no token or an unknown one is UNAUTHENTICATED. An unknown token is logged
with the peer's address (never the token) and counted per address by a
``qpumesh.wire.throttle.FailureThrottle``, which refuses a peer that keeps guessing with
RESOURCE_EXHAUSTED for a growing delay (a call without any token is no guess and is not
counted). The presented token is hashed and compared with
every entry's digest in constant time (``hmac.compare_digest``, no early exit), so the
time taken says nothing about the tokens. The handler then reads the caller with
``current_principal()``.

Without ``--auth-tokens`` every caller is ``ANONYMOUS``, an admin: a coordinator on a
trusted network (or the local mesh, whose callers hold its client certificate) behaves
as before.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from qpumesh.wire.auth import TOKEN_ENV, TOKEN_FLAG, bearer_token
from qpumesh.wire.throttle import FailureThrottle, peer_address, retry_message

logger = logging.getLogger(__name__)

ROLES = ("user", "admin", "metrics")
MIN_TOKEN_CHARS = 16
"""Tokens written in clear in the file must be at least this long (use 32+ random bytes)."""
EXEMPT_SERVICES = frozenset(
    {health.SERVICE_NAME, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"}
)
"""Services answered without a token: health checks (probes, healthchecks) and reflection."""
_PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")


if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class AuthConfigError(ValueError):
    """The token file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Principal:
    """A caller: its name (the owner of the jobs it submits) and its role."""

    name: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        """Admins see, cancel and delete every job."""
        return self.role == "admin"

    def may_access(self, owner: str) -> bool:
        """Whether this caller may see and change a job owned by ``owner``."""
        return self.is_admin or owner == self.name


ANONYMOUS = Principal("", "admin")
"""The caller when authentication is off: it owns its jobs as "" and sees every job."""

_CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar("qpumesh_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    """Return the caller of the RPC being handled (``ANONYMOUS`` when authentication is off)."""
    return _CURRENT.get()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """Token digests and the principals they stand for.

    Args:
        entries: ``(SHA-256 digest of the token, principal)`` pairs.
        source: the file they came from, for messages.
    """

    def __init__(self, entries: list[tuple[bytes, Principal]], source: str = "") -> None:
        if not entries:
            raise AuthConfigError(f"{source or 'token table'}: no tokens; every call would be refused")
        self._entries = entries
        self.source = source

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: Path) -> TokenTable:
        """Read a token file (format in the module docstring).

        Raises:
            AuthConfigError: the file is unreadable, a line is malformed (named by number,
                never by its token), a token is too short or listed twice.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise AuthConfigError(f"cannot read the token file {path}: {error}") from None
        entries: list[tuple[bytes, Principal]] = []
        seen: set[bytes] = set()
        for number, raw in enumerate(text.splitlines(), start=1):
            fields = raw.split("#", 1)[0].split()
            if not fields:
                continue
            where = f"{path}, line {number}"
            if len(fields) not in (2, 3):
                raise AuthConfigError(f"{where}: expected TOKEN PRINCIPAL [ROLE], got {len(fields)} fields")
            token, name = fields[0], fields[1]
            role = fields[2] if len(fields) == 3 else "user"
            if role not in ROLES:
                raise AuthConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
            if not _PRINCIPAL_NAME.fullmatch(name):
                raise AuthConfigError(f"{where}: principal must be 1-64 of A-Z a-z 0-9 . _ @ + - (not first)")
            digest_match = _DIGEST.fullmatch(token)
            if digest_match is not None:
                digest = bytes.fromhex(digest_match.group(1))
            elif token.startswith("sha256:"):
                raise AuthConfigError(f"{where}: a sha256: token needs 64 hex digits")
            elif len(token) < MIN_TOKEN_CHARS:
                raise AuthConfigError(f"{where}: a token must have at least {MIN_TOKEN_CHARS} characters")
            else:
                digest = _digest(token)
            if digest in seen:
                raise AuthConfigError(f"{where}: this token is listed twice")
            seen.add(digest)
            entries.append((digest, Principal(name, role)))
        return cls(entries, str(path))

    def authenticate(self, token: str) -> Principal | None:
        """Return the principal of ``token``; None when it is unknown.

        Compares the token's digest with every entry's in constant time, without
        stopping at a match.
        """
        digest = _digest(token)
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,type-arg]
    """Authenticates every call of a non-exempt service before its handler runs.

    Args:
        tokens: the valid tokens.
        throttle: failed attempts per peer address.
    """

    def __init__(self, tokens: TokenTable, throttle: FailureThrottle | None = None) -> None:
        self.tokens = tokens
        self.throttle = throttle or FailureThrottle()

    async def intercept_service(  # type: ignore[override]
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Wrap the method's handler so that it authenticates first (exempt services pass)."""
        handler = await continuation(details)
        service = str(details.method).lstrip("/").split("/", 1)[0]
        if handler is None or service in EXEMPT_SERVICES:
            return handler
        return _guarded(handler, self.authenticate)

    async def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        """Return the caller of ``context``, or end the call (UNAUTHENTICATED / RESOURCE_EXHAUSTED)."""
        peer = peer_address(context.peer())
        wait = self.throttle.blocked_for(peer)
        if wait > 0:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, retry_message("authentication attempts", wait)
            )
        token = bearer_token(context.invocation_metadata())
        principal = self.tokens.authenticate(token) if token else None
        if principal is None:
            if token is None:  # not a guess: a client without a token, told what to send
                logger.info("call refused for %s: no bearer token", peer)
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"this coordinator requires a token: 'authorization: Bearer <token>' metadata "
                    f"({TOKEN_FLAG} or {TOKEN_ENV})",
                )
            blocked = self.throttle.failure(peer)
            suffix = f"; address blocked for {blocked:g} s" if blocked else ""
            logger.warning("call refused for %s: unknown bearer token%s", peer, suffix)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
        self.throttle.success(peer)
        assert principal is not None
        if principal.role == "metrics":
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "a metrics token only reads /metrics; use a user token"
            )
        return principal


Authenticate = Callable[[Any], Awaitable[Principal]]


def _guarded(handler: Handler, authenticate: Authenticate) -> Handler:
    """Return ``handler`` with every behaviour authenticating first and running as the caller."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            _CURRENT.set(await authenticate(context))
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream: Any = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            _CURRENT.set(await authenticate(context))
            async for response in stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )

    # The Coordinator has no client-streaming methods; fail closed should one appear unguarded.
    async def refuse(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "client-streaming calls are not served")

    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            refuse, handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        refuse, handler.request_deserializer, handler.response_serializer
    )
