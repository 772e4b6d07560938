"""The images' entry point (scripts/docker-entrypoint.sh), run with the local ``sh``.

Orchestrators mount secrets as files; the entry point turns ``QPUMESH_ADMIN_TOKEN_FILE``
and ``QPUMESH_TOKEN_FILE`` into the variables the services read, then ``exec``s the
command. A misconfiguration must stop the container with a message naming the variable.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
SHOW = [
    "sh",
    "-c",
    'echo "admin=${QPUMESH_ADMIN_TOKEN:-} token=${QPUMESH_TOKEN:-} '
    'file=${QPUMESH_ADMIN_TOKEN_FILE:-}"',
]


def _run(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("QPUMESH_")}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command], env={**base, **env}, capture_output=True, text=True, check=False
    )


def test_secret_files_become_variables_and_the_command_runs(tmp_path: Path) -> None:
    admin, token = tmp_path / "admin", tmp_path / "token"
    admin.write_text("s3cret\n")  # secret files often end with a newline: dropped
    token.write_text("client-token")
    proc = _run({"QPUMESH_ADMIN_TOKEN_FILE": str(admin), "QPUMESH_TOKEN_FILE": str(token)}, *SHOW)
    assert proc.returncode == 0, proc.stderr
    # The *_FILE variables are consumed, so the service sees only the value.
    assert proc.stdout.strip() == "admin=s3cret token=client-token file="


def test_without_files_the_environment_passes_through() -> None:
    proc = _run({"QPUMESH_ADMIN_TOKEN": "plain"}, *SHOW)
    assert proc.returncode == 0 and proc.stdout.strip() == "admin=plain token= file="
    proc = _run({}, "sh", "-c", "exit 7")  # the command's exit status is the container's
    assert proc.returncode == 7


def test_misconfigurations_stop_with_a_message_naming_the_variable(tmp_path: Path) -> None:
    secret = tmp_path / "admin"
    secret.write_text("s3cret")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = {
        "both QPUMESH_ADMIN_TOKEN and QPUMESH_ADMIN_TOKEN_FILE are set": {
            "QPUMESH_ADMIN_TOKEN": "x", "QPUMESH_ADMIN_TOKEN_FILE": str(secret),
        },
        "QPUMESH_ADMIN_TOKEN_FILE=/nonexistent/admin is not a readable file": {
            "QPUMESH_ADMIN_TOKEN_FILE": "/nonexistent/admin",
        },
        f"QPUMESH_TOKEN_FILE={tmp_path} is not a readable file": {"QPUMESH_TOKEN_FILE": str(tmp_path)},
        f"QPUMESH_ADMIN_TOKEN_FILE={empty} is empty": {"QPUMESH_ADMIN_TOKEN_FILE": str(empty)},
    }  # fmt: skip
    for message, env in cases.items():
        proc = _run(env, "true")
        assert proc.returncode == 64, (message, proc.stderr)
        assert message in proc.stderr, proc.stderr
