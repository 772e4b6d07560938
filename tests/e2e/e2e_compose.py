"""Helpers of the end-to-end tests: a compose project driven by ``docker compose`` and the SDK."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HETERO_FILE = ROOT / "docker-compose.hetero.yml"
NODE_PORT = 50051
REPLICAS = 4

# (what, seconds) pairs printed at the end of the run (conftest.pytest_terminal_summary).
TIMINGS: list[tuple[str, float]] = []
# Free-text lines (what the faults did) printed after the timings.
NOTES: list[str] = []


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Compose:
    """A compose project driven through ``docker compose`` (Compose v2) and the docker SDK."""

    project: str
    files: Sequence[Path]
    env: dict[str, str]
    docker: Any = field(repr=False)

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``docker compose -p PROJECT -f FILE... ARGS`` and return the finished process."""
        cmd = ["docker", "compose", "-p", self.project]
        for path in self.files:
            cmd += ["-f", str(path)]
        cmd += list(args)
        proc = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def containers(self, service: str, *, all_states: bool = False) -> list[Any]:
        """Containers of one service of this project, ordered by replica number."""
        found = self.docker.containers.list(
            all=all_states,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        return sorted(found, key=lambda c: int(c.labels.get("com.docker.compose.container-number", "0")))

    def address(self, container: Any, port: int = NODE_PORT) -> str:
        """``ip:port`` of a container on the project's network (what the coordinator sees)."""
        container.reload()
        networks = container.attrs["NetworkSettings"]["Networks"]
        ips = [net["IPAddress"] for name, net in networks.items() if name.startswith(self.project)]
        assert ips and ips[0], f"{container.name} has no address on the project network: {networks}"
        return f"{ips[0]}:{port}"

    def save_logs(self, path: Path) -> None:
        """Write every service's log to ``path`` (kept for CI failures)."""
        proc = self.run("logs", "--no-color", "--timestamps", check=False, timeout=60)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(proc.stdout + proc.stderr)

    def down(self) -> None:
        """Remove the project's containers, networks and volumes."""
        self.run("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False, timeout=180)


@dataclass
class Mesh:
    """A running compose mesh: the coordinator address on the host, its client TLS and tokens.

    Attributes:
        compose: the project.
        coordinator: ``127.0.0.1:PORT`` (the published port).
        admin_token: the nodes' NodeAdmin token.
        tls: the client's TLS (``ca.crt``, ``client.crt/.key`` copied from the ``certs`` volume).
        token: a bearer token of the coordinator (principal "e2e", role admin).
        certs_dir: where the certificates were copied to on the host.
    """

    compose: Compose
    coordinator: str
    admin_token: str
    tls: Any = None
    token: str = ""
    certs_dir: Path | None = None
