"""Bearer tokens of the coordinator: the token file, principals, constant-time lookup."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from qpumesh.coordinator.auth import ANONYMOUS, AuthConfigError, Principal, TokenTable
from qpumesh.wire.auth import bearer_metadata, bearer_token

ALICE = "alice-token-0123456789abcdef"
OPS = "ops-token-fedcba9876543210"


def _table(tmp_path: Path, text: str) -> TokenTable:
    path = tmp_path / "tokens"
    path.write_text(text)
    return TokenTable.load(path)


def test_tokens_in_clear_or_as_digests_map_to_their_principals(tmp_path: Path) -> None:
    digest = hashlib.sha256(OPS.encode()).hexdigest()
    table = _table(tmp_path, f"# comment\n\n{ALICE} alice\nsha256:{digest}  ops  admin  # trailing comment\n")
    assert len(table) == 2
    assert table.authenticate(ALICE) == Principal("alice", "user")
    assert table.authenticate(OPS) == Principal("ops", "admin")
    assert table.authenticate("alice-token-0123456789abcdeX") is None
    assert table.authenticate("") is None
    assert table.authenticate(f"sha256:{digest}") is None  # the digest is not the token


def test_roles_decide_what_a_principal_may_access() -> None:
    alice, ops = Principal("alice"), Principal("ops", "admin")
    assert alice.may_access("alice") and not alice.may_access("bob") and not alice.may_access("")
    assert ops.may_access("bob") and ops.may_access("")
    assert ANONYMOUS.is_admin  # authentication off: one trusted user, as before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no tokens"),
        ("# only a comment\n", "no tokens"),
        (f"{ALICE}\n", "line 1: expected TOKEN PRINCIPAL [ROLE], got 1 fields"),
        (f"{ALICE} alice root\n", "line 1: role must be one of user, admin, metrics"),
        ("short alice\n", "line 1: a token must have at least 16 characters"),
        ("sha256:abc alice\n", "line 1: a sha256: token needs 64 hex digits"),
        (f"{ALICE} -alice\n", "line 1: principal must be"),
        (f"{ALICE} alice\n{ALICE} bob\n", "line 2: this token is listed twice"),
    ],
)
def test_a_bad_token_file_is_refused_naming_the_line_never_the_token(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(AuthConfigError, match=re.escape(message)) as info:
        _table(tmp_path, text)
    assert ALICE not in str(info.value)


def test_an_unreadable_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="cannot read the token file"):
        TokenTable.load(tmp_path / "missing")


def test_the_lookup_compares_every_entry_without_stopping_at_a_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = "".join(f"token-number-{i:04d}-padding user{i}\n" for i in range(50))
    table = _table(tmp_path, lines)
    from qpumesh.coordinator import auth

    compared: list[int] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert table.authenticate("token-number-0000-padding") == Principal("user0")
    assert len(compared) == 50  # the first entry matched; all 50 were still compared
    compared.clear()
    assert table.authenticate("nobody") is None and len(compared) == 50


def test_bearer_metadata_round_trip_and_malformed_values() -> None:
    assert bearer_token(bearer_metadata(ALICE)) == ALICE
    assert bearer_metadata(None) == () and bearer_token(()) is None
    assert bearer_token([("authorization", "Basic abc")]) == ""
    assert bearer_token([("authorization", "Bearer " + "x" * 10_000)]) == ""
    assert bearer_token([("other", "Bearer abc")]) is None
