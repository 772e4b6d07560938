"""Who may use the HTTP side when the coordinator has bearer tokens (``--auth-tokens``).

``TokenAccess`` is the ``AccessPolicy`` of such a coordinator: every page, JSON answer
and ``/metrics`` needs a token of the same table the gRPC service checks
(``qpumesh.coordinator.auth``), sent as ``Authorization: Bearer <token>`` (scripts,
Prometheus's ``authorization`` setting) or as the ``qpumesh_token`` cookie that the
dashboard's login form sets (the token, base64url; HttpOnly, so the page's scripts cannot
read it; SameSite=Strict, so another site cannot make the browser use it; Secure over
HTTPS). Then:

- a ``user`` sees the mesh and only its own jobs (another's job answers 404);
- an ``admin`` sees every job and may use the fault controls (which still need the node
  admin token: the node decides);
- a ``metrics`` principal may only read ``/metrics`` (a scrape token for Prometheus);
  ``/metrics`` is for ``admin`` and ``metrics`` principals, as it names every job.

Unknown tokens are throttled per client address exactly as on the gRPC port (the same
``FailureThrottle``), so the HTTP side is no faster way to guess tokens.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

from qpumesh.coordinator.auth import Principal, TokenTable
from qpumesh.wire.throttle import FailureThrottle, retry_message

COOKIE = "qpumesh_token"
"""The cookie the login form sets (the token itself, HttpOnly)."""
_NOBODY = "\x00"
"""An owner no job has."""


def presented_token(headers: Mapping[str, str]) -> str | None:
    """Return the token of a request: the Bearer header's, else the login cookie's; None: none."""
    lowered = {key.lower(): value for key, value in headers.items()}
    authorization = lowered.get("authorization", "")
    if authorization.strip():
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and not token.strip():
            return None  # "Bearer" and nothing (e.g. Prometheus with an empty token file): no token
        return token.strip() if scheme.lower() == "bearer" else ""
    cookies = SimpleCookie()
    try:
        cookies.load(lowered.get("cookie", ""))
    except CookieError:
        return ""
    morsel = cookies.get(COOKIE)
    if morsel is None or not morsel.value:
        return None
    try:
        return base64.urlsafe_b64decode(morsel.value + "=" * (-len(morsel.value) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""


def cookie_value(token: str) -> str:
    """Return the login cookie's value of ``token`` (base64url: any token fits a cookie)."""
    return base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")


class TokenAccess:
    """The HTTP side's policy with bearer tokens (see the module docstring).

    Args:
        tokens: the coordinator's token table.
        throttle: failed attempts per client address.
    """

    def __init__(self, tokens: TokenTable, throttle: FailureThrottle | None = None) -> None:
        self.tokens = tokens
        self.throttle = throttle or FailureThrottle()

    def principal(self, headers: Mapping[str, str]) -> Principal | None:
        """Return the caller of a request; None without a valid token."""
        token = presented_token(headers)
        return self.tokens.authenticate(token) if token else None

    def check(self, headers: Mapping[str, str], action: str, peer: str = "") -> tuple[int, str] | None:
        """Allow a request (None) or refuse it with (401 or 403 or 429, what to do)."""
        wait = self.throttle.blocked_for(peer)
        if wait > 0:
            return 429, retry_message("authentication attempts", wait)
        token = presented_token(headers)
        if token is None:
            return 401, "this coordinator requires a token: log in, or send 'Authorization: Bearer <token>'"
        principal = self.tokens.authenticate(token) if token else None
        if principal is None:
            self.throttle.failure(peer)
            return 401, "invalid token"
        self.throttle.success(peer)
        if action == "metrics":
            if principal.role not in ("admin", "metrics"):
                return 403, "/metrics names every job: it needs an admin or a metrics token"
        elif principal.role == "metrics":
            return 403, "a metrics token may only read /metrics"
        elif action == "admin" and not principal.is_admin:
            return 403, "the fault controls need an admin token"
        return None

    def owner(self, headers: Mapping[str, str]) -> str | None:
        """Whose jobs the caller sees: its own (a user), None: every job (an admin)."""
        principal = self.principal(headers)
        if principal is None:  # refused by ``check`` first; should it get here, it sees nothing
            return _NOBODY
        return None if principal.is_admin else principal.name

    def authenticate(self, token: str, peer: str = "") -> tuple[int, str] | None:
        """Check a token typed into the login form: None if valid, else (status, message)."""
        return self.check({"Authorization": f"Bearer {token}"}, "read", peer)
