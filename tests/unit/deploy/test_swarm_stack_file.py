"""The Swarm stack file's wiring, checked without Docker (the e2e test deploys it for real).

These are the mistakes that ``docker stack deploy`` accepts silently and that only show
on a running swarm: a node class the coordinator does not look for, a class with a
virtual IP (the coordinator would see one node), a class placed on no label, a secret
that is declared but not mounted where the entry point reads it, a TLS file path that
is no mounted secret, a service left on the loopback address, certificate names the
coordinator would reject; and ``create-secrets.sh`` makes exactly the secrets the file
names (run against a ``docker`` that only records its arguments).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
STACK_FILE = ROOT / "deploy" / "swarm" / "qpumesh-stack.yml"
CREATE_SECRETS = ROOT / "deploy" / "swarm" / "create-secrets.sh"


def _stack() -> dict[str, Any]:
    return dict(yaml.safe_load(STACK_FILE.read_text()))


def _node_services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in stack["services"].items() if name != "coordinator"}


def test_file_is_in_the_format_stack_deploy_reads() -> None:
    stack = _stack()
    assert str(stack["version"]).startswith("3.")
    assert "name" not in stack  # "Additional property name is not allowed"
    for name, service in stack["services"].items():
        assert "build" not in service, name  # ignored by stack deploy: images must exist
        assert "depends_on" not in service, name  # ignored; the coordinator waits itself


def test_coordinator_looks_for_every_node_class_by_dns_round_robin() -> None:
    stack = _stack()
    targets = stack["services"]["coordinator"]["environment"]["QPUMESH_NODES"].split(",")
    nodes = _node_services(stack)
    assert targets == [f"dns:{name}:50051" for name in nodes]
    for name, service in nodes.items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert service["environment"]["QPUMESH_PORT"] == "50051", name


def test_every_class_is_placed_by_its_own_label() -> None:
    stack = _stack()
    constraints = {
        name: service["deploy"]["placement"]["constraints"] for name, service in stack["services"].items()
    }
    assert constraints["coordinator"] == ["node.labels.qpumesh.coordinator == true"]
    for name in _node_services(stack):
        assert constraints[name] == [f"node.labels.qpumesh.{name} == true"]
    # Every label is documented in the file's header.
    header = STACK_FILE.read_text().split("version:")[0]
    for name in constraints:
        label = "qpumesh.coordinator" if name == "coordinator" else f"qpumesh.{name}"
        assert label in header, label


def test_coordinator_port_is_published_in_host_mode_with_its_volume() -> None:
    coordinator = _stack()["services"]["coordinator"]
    assert [(p["target"], p["mode"]) for p in coordinator["ports"]] == [(50050, "host"), (8080, "host")]
    assert coordinator["environment"]["QPUMESH_HTTP_PORT"] == "8080"
    assert coordinator["volumes"] == ["coordinator-data:/data"]
    assert coordinator["environment"]["QPUMESH_DATA_DIR"] == "/data"
    assert coordinator["deploy"]["update_config"]["order"] == "stop-first"


def _mounted(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The secrets of a service by their file under /run/secrets (long and short syntax)."""
    mounted = {}
    for item in service["secrets"]:
        entry = {"source": item} if isinstance(item, str) else dict(item)
        mounted[entry.get("target", entry["source"])] = entry
    return mounted


def test_nodes_read_the_admin_token_from_the_mounted_secret() -> None:
    stack = _stack()
    assert stack["secrets"]["qpumesh_admin_token"]["external"] is True
    for name, service in _node_services(stack).items():
        assert "qpumesh_admin_token" in _mounted(service), name
        env = service["environment"]
        assert env["QPUMESH_ADMIN_TOKEN_FILE"] == "/run/secrets/qpumesh_admin_token", name
        assert "QPUMESH_ADMIN_TOKEN" not in env, name


def test_every_service_speaks_mutual_tls_from_mounted_secrets() -> None:
    stack = _stack()
    for name, service in stack["services"].items():
        env = service["environment"]
        mounted = _mounted(service)
        files = {key: env[key] for key in ("QPUMESH_TLS_CERT", "QPUMESH_TLS_KEY", "QPUMESH_TLS_CA")}
        if name == "coordinator":
            files["QPUMESH_AUTH_TOKENS"] = env["QPUMESH_AUTH_TOKENS"]
        for key, path in files.items():
            directory, _, target = path.rpartition("/")
            assert directory == "/run/secrets" and target in mounted, (name, key, path)
            assert stack["secrets"][mounted[target]["source"]]["external"] is True
        # A CA on a server = clients must present a certificate (nodes: always).
        assert env["QPUMESH_TLS_CA"] == "/run/secrets/qpumesh_ca", name
        # Keys and tokens readable by the images' user only, not world-readable (0444).
        for secret in ("QPUMESH_TLS_KEY", "QPUMESH_AUTH_TOKENS"):
            if secret in files:
                entry = mounted[files[secret].rpartition("/")[2]]
                owner_and_mode = (entry["uid"], entry["gid"], entry["mode"])
                assert owner_and_mode == ("10001", "10001", 0o400), (name, secret)
        # Health checks run inside the task over TLS to 127.0.0.1 with these files.
        assert service["healthcheck"]["test"][-1] == "/usr/local/bin/qpumesh-healthcheck", name
    assert stack["services"]["coordinator"]["environment"]["QPUMESH_TLS_CLIENT_AUTH"] == (
        "${QPUMESH_TLS_CLIENT_AUTH:-require}"
    )


def test_every_service_listens_on_every_interface() -> None:
    # The program's default is 127.0.0.1: the task's own health check would pass while the
    # coordinator (another task) could not connect.
    for name, service in _stack()["services"].items():
        assert service["environment"]["QPUMESH_HOST"] == "0.0.0.0", name


def test_documented_certificate_names_cover_what_the_coordinator_checks() -> None:
    from qpumesh.coordinator.mesh.targets import tls_names

    stack = _stack()
    header = STACK_FILE.read_text().split("version:")[0]
    match = re.search(r"qpumesh certs init \S+ --hosts (\S+)", header)
    assert match, "the header shows the certs init command"
    hosts = set(match.group(1).split(","))
    targets = stack["services"]["coordinator"]["environment"]["QPUMESH_NODES"].split(",")
    # Nodes are dialled by IP and their certificates checked for the service name.
    assert set(tls_names(targets).values()) <= hosts
    assert "coordinator" in hosts


def _fake_docker(tmp_path: Path, existing: str = "") -> tuple[dict[str, str], Path]:
    """A ``docker`` on PATH that logs its arguments (and stdin) instead of running."""
    log = tmp_path / "docker.log"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "secret ls" ]; then printf "%s" "{existing}"; exit 0; fi\n'
        f'echo "$*" >> {log}\n'
        f'if [ "$(eval echo \\${{$#}})" = "-" ]; then echo "stdin=$(cat)" >> {log}; fi\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "QPUMESH_SECRET_PREFIX": "qpx"}
    return env, log


def _certs_and_tokens(tmp_path: Path) -> tuple[Path, Path]:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "ca.key"):
        (certs / name).write_text(name)
    tokens = tmp_path / "tokens"
    tokens.write_text("sha256:" + "0" * 64 + " alice\n")
    return certs, tokens


def test_create_secrets_makes_exactly_the_stack_secrets(tmp_path: Path) -> None:
    certs, tokens = _certs_and_tokens(tmp_path)
    env, log = _fake_docker(tmp_path)
    proc = subprocess.run(
        ["sh", str(CREATE_SECRETS), str(certs), str(tokens)],
        env={**env, "QPUMESH_ADMIN_TOKEN": "admin-secret"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    created = {}
    lines = log.read_text().splitlines()
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith("secret create"):
            *_, name, source = line.split()
            created[name] = after.removeprefix("stdin=") if source == "-" else Path(source).name
    # The names the stack file expects under this prefix, each from the right file.
    expected = {
        entry["name"].replace("${QPUMESH_SECRET_PREFIX:-qpumesh}", "qpx")
        for entry in _stack()["secrets"].values()
    }
    assert set(created) == expected
    assert created == {
        "qpx_ca": "ca.crt", "qpx_node_cert": "server.crt", "qpx_node_key": "server.key",
        "qpx_coordinator_cert": "server.crt", "qpx_coordinator_key": "server.key",
        "qpx_auth_tokens": "tokens", "qpx_admin_token": "admin-secret",
    }  # fmt: skip
    # The CA's key never goes into the swarm.
    assert "ca.key" not in log.read_text()


def _run_create_secrets(certs: Path, tokens: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = ["sh", str(CREATE_SECRETS), str(certs), str(tokens)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_create_secrets_creates_nothing_when_a_name_exists_or_a_file_is_missing(tmp_path: Path) -> None:
    certs, tokens = _certs_and_tokens(tmp_path)
    env, log = _fake_docker(tmp_path, existing="other\nqpx_node_key\n")
    proc = _run_create_secrets(certs, tokens, env)
    assert proc.returncode == 1 and "qpx_node_key exists already" in proc.stderr
    assert not log.exists()
    (certs / "server.key").unlink()
    proc = _run_create_secrets(certs, tokens, env)
    assert proc.returncode == 1 and "server.key is not a readable file" in proc.stderr
    assert not log.exists()


def test_nodes_are_replaced_and_updated_without_shrinking_the_pool() -> None:
    for name, service in _node_services(_stack()).items():
        deploy = service["deploy"]
        assert deploy["restart_policy"]["condition"] == "any", name
        assert deploy["update_config"]["order"] == "start-first", name
        assert deploy["update_config"]["failure_action"] == "rollback", name
        assert service["healthcheck"]["test"][-1] == "/usr/local/bin/qpumesh-healthcheck", name
