"""Helpers of the Swarm end-to-end test: a one-node swarm and a stack driven by the docker CLI.

The test may only undo what it did: it initialises a swarm when the engine has none (and
then leaves it and removes ``docker_gwbridge`` at the end), labels the engine's node
(and removes those labels again), creates its own secrets (``Credentials.create``: the
mesh's certificates, a token file and an admin token, stored with
``deploy/swarm/create-secrets.sh`` under the stack's name as prefix), and removes its own
stack, its volume and its secrets. ``python tests/e2e/e2e_swarm.py teardown STACK`` does all of it
from the shell (``run_e2e.sh``'s exit trap, after an interrupted run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "deploy" / "swarm" / "qpumesh-stack.yml"
CREATE_SECRETS = ROOT / "deploy" / "swarm" / "create-secrets.sh"
STATE = Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e"))
LABELS = ("qpumesh.coordinator", "qpumesh.qpu-large", "qpumesh.qpu-small", "qpumesh.qpu-noisy")
NODE_SERVICES = ("qpu-large", "qpu-small", "qpu-noisy")


def docker(
    *args: str,
    timeout: float = 120,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; raise with its output when it fails and ``check`` is set."""
    proc = subprocess.run(
        ["docker", *args], cwd=ROOT, env=dict(env) if env is not None else None, input=stdin,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@dataclass
class Credentials:
    """What a client of the stack holds, and what the stack's secrets were made from.

    Attributes:
        certs: the files of ``qpumesh certs init`` (the client uses ca.crt, client.crt/.key).
        token: a bearer token of the coordinator (principal ``e2e``, role admin).
        admin_token: the nodes' NodeAdmin token.
    """

    certs: Path
    token: str
    admin_token: str

    @classmethod
    def create(cls, stack: str, hosts: tuple[str, ...]) -> Credentials:
        """Make certificates for ``hosts`` and a token file, and store them as Swarm secrets.

        Exactly the documented path: ``qpumesh certs init DIR --hosts ...``, a token file
        holding the token's SHA-256, then ``deploy/swarm/create-secrets.sh DIR TOKENS``
        with ``QPUMESH_SECRET_PREFIX=STACK`` (the stack is deployed with the same prefix).
        """
        certs = STATE / f"certs-{stack}"
        shutil.rmtree(certs, ignore_errors=True)
        qpumesh = Path(sys.executable).parent / "qpumesh"
        subprocess.run(
            [str(qpumesh), "certs", "init", str(certs), "--hosts", ",".join(hosts)],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        token, admin_token = secrets.token_hex(24), secrets.token_hex(16)
        tokens = STATE / f"tokens-{stack}"
        tokens.write_text(f"# e2e\nsha256:{hashlib.sha256(token.encode()).hexdigest()} e2e admin\n")
        env = {**os.environ, "QPUMESH_SECRET_PREFIX": stack, "QPUMESH_ADMIN_TOKEN": admin_token}
        proc = subprocess.run(
            ["sh", str(CREATE_SECRETS), str(certs), str(tokens)],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"create-secrets.sh exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return cls(certs=certs, token=token, admin_token=admin_token)

    def tls(self) -> Any:
        """The client's TLS: the CA, the client certificate and key."""
        from qpumesh.wire.tls import load_tls

        return load_tls(self.certs / "client.crt", self.certs / "client.key", self.certs / "ca.crt")

    def client(self, address: str, **options: Any) -> Any:
        """A ``CoordinatorClient`` for ``address`` over mutual TLS with the bearer token."""
        from qpumesh.client import CoordinatorClient

        return CoordinatorClient(address, tls=self.tls(), token=self.token, **options)


def _owned_marker(stack: str) -> Path:
    return STATE / f"swarm-owned-by-{stack}"


def _labels_marker(stack: str) -> Path:
    return STATE / f"swarm-labels-by-{stack}"


@dataclass
class Swarm:
    """The engine's swarm, as this test found or made it.

    Attributes:
        node_id: the engine's swarm node.
        owned: whether this test ran ``docker swarm init`` (then it also leaves the swarm).
        stack: the stack this swarm was prepared for (names the ownership marker).
    """

    node_id: str
    owned: bool
    stack: str

    @classmethod
    def ensure(cls, stack: str, advertise: str = "127.0.0.1") -> Swarm:
        """Use the engine's swarm, or ``docker swarm init --advertise-addr ADVERTISE`` one."""
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
        owned = False
        if state == "inactive":
            docker("swarm", "init", "--advertise-addr", advertise)
            STATE.mkdir(parents=True, exist_ok=True)
            _owned_marker(stack).write_text("docker swarm init by the e2e test\n")
            owned = True
        elif state != "active":
            raise RuntimeError(f"the engine's swarm is {state!r}; expected inactive or active")
        node_id = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        return cls(node_id=node_id, owned=owned, stack=stack)

    def label(self, labels: tuple[str, ...] = LABELS) -> None:
        """Give the engine's node ``labels`` (default: every label, one host runs every class)."""
        args = [arg for key in labels for arg in ("--label-add", f"{key}=true")]
        docker("node", "update", *args, self.node_id)
        STATE.mkdir(parents=True, exist_ok=True)
        _labels_marker(self.stack).write_text(" ".join(LABELS) + "\n")

    def node_labels(self) -> dict[str, str]:
        """The engine node's labels."""
        out = docker("node", "inspect", "--format", "{{json .Spec.Labels}}", self.node_id).stdout
        return dict(json.loads(out) or {})


@dataclass
class Stack:
    """A stack of ``deploy/swarm/qpumesh-stack.yml`` deployed under ``name``.

    Attributes:
        name: the stack name (prefix of its services, networks, volumes).
        env: environment of ``docker stack deploy`` (the file's variables).
        client: a docker SDK client, for containers and their health.
        phases: seconds from ``docker stack rm`` to each step of ``remove`` (for the report).
    """

    name: str
    env: dict[str, str]
    client: Any = field(repr=False)
    phases: dict[str, float] = field(default_factory=dict)

    def service(self, short: str) -> str:
        """The full service name of ``short`` (``qpu-large`` -> ``STACK_qpu-large``)."""
        return f"{self.name}_{short}"

    def deploy(self) -> None:
        """``docker stack deploy -c deploy/swarm/qpumesh-stack.yml NAME``."""
        docker("stack", "deploy", "--prune", "-c", str(STACK_FILE), self.name, env=self.env, timeout=180)

    def config(self) -> dict[str, Any]:
        """The stack file as ``docker stack deploy`` reads it (merged and interpolated), as JSON."""
        import yaml

        out = docker("stack", "config", "-c", str(STACK_FILE), env=self.env).stdout
        return dict(yaml.safe_load(out))

    def containers(self, short: str, *, all_states: bool = False) -> list[Any]:
        """The containers of one service on this engine, oldest first."""
        found = self.client.containers.list(
            all=all_states, filters={"label": f"com.docker.swarm.service.name={self.service(short)}"}
        )
        return sorted(found, key=lambda c: str(c.attrs["Created"]))

    def healthy(self, short: str) -> list[Any]:
        """The running containers of ``short`` whose health check passed."""
        result = []
        for container in self.containers(short):
            container.reload()
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                result.append(container)
        return result

    def wait_healthy(self, counts: Mapping[str, int], timeout: float) -> None:
        """Wait until each service has exactly ``counts[service]`` healthy containers."""
        deadline = time.monotonic() + timeout
        seen: dict[str, int] = {}
        while time.monotonic() < deadline:
            seen = {short: len(self.healthy(short)) for short in counts}
            if seen == dict(counts):
                return
            time.sleep(1)
        tasks = docker("stack", "ps", "--no-trunc", self.name, check=False).stdout
        raise TimeoutError(
            f"healthy containers {seen}, expected {dict(counts)} after {timeout:.0f}s:\n{tasks}"
        )

    def address(self, container: Any, port: int = 50051) -> str:
        """``ip:port`` of a task's container on the stack's overlay network."""
        container.reload()
        network = container.attrs["NetworkSettings"]["Networks"][f"{self.name}_mesh"]
        return f"{network['IPAddress']}:{port}"

    def logs(self, path: Path) -> None:
        """Write every service's log to ``path`` (kept for CI failures)."""
        text = []
        for short in ("coordinator", *NODE_SERVICES):
            proc = docker(
                "service", "logs", "--timestamps", "--no-trunc", self.service(short), check=False, timeout=60
            )
            text.append(f"==== {self.service(short)}\n{proc.stdout}{proc.stderr}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(text))

    def leftovers(self) -> dict[str, list[str]]:
        """What of this stack still exists: services, containers, networks, volumes, secrets."""
        label = f"label=com.docker.stack.namespace={self.name}"
        return {
            kind: docker(*cmd, check=False).stdout.split()
            for kind, cmd in {
                "services": ("service", "ls", "-q", "--filter", label),
                "containers": ("ps", "-aq", "--filter", label),
                "networks": ("network", "ls", "-q", "--filter", label),
                "volumes": ("volume", "ls", "-q", "--filter", f"name={self.name}_"),
                "secrets": ("secret", "ls", "-q", "--filter", f"name={self.name}_"),
            }.items()
        }

    def remove(self, timeout: float = 120, network_timeout: float = 60) -> None:
        """``docker stack rm``, then what it leaves behind: the named volume and our secret.

        ``docker stack rm`` returns before the containers are gone, and a volume in use
        cannot be removed, so wait for the services and containers first (``timeout``).
        The overlay network goes last, and across two hosts Swarm may retry its removal
        for a while ("unknown network" errors in the daemon's log): wait for it at most
        ``network_timeout`` more (leaving the swarm removes it in any case). Half-way, a
        network still there is removed by hand, as docs/deploy.md tells users to: Docker's
        libnetwork can drop the stack's removal of it after a race ("Unable to complete
        atomic operation, key modified" in the daemon's log, seen on one host).
        """
        started = time.monotonic()
        docker("stack", "rm", self.name, check=False)
        self._wait_gone(("services", "containers"), timeout)
        self.phases["services and containers gone"] = time.monotonic() - started
        for volume in self.leftovers()["volumes"]:
            docker("volume", "rm", "--force", volume, check=False)
        for secret in self.leftovers()["secrets"]:
            docker("secret", "rm", secret, check=False)
        self._wait_gone(("networks",), network_timeout / 2)
        for network in self.leftovers()["networks"]:
            docker("network", "rm", network, check=False)
        self._wait_gone(("networks",), network_timeout / 2)
        self.phases["... volume, secret, network gone"] = time.monotonic() - started

    def _wait_gone(self, kinds: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.leftovers()
            if not any(left[kind] for kind in kinds):
                return
            time.sleep(1)


def teardown(stack: str) -> dict[str, float]:
    """Remove ``stack`` and undo the test's swarm changes (labels; the swarm if it made it).

    Returns:
        Seconds from the start to the end of each step, for the timings report.
    """
    from e2e_second_host import stop as stop_second_host

    started = time.monotonic()
    phases: dict[str, float] = {}
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=False).stdout.strip()
    if state == "active":
        removed = Stack(stack, dict(os.environ), client=None)
        removed.remove()
        phases.update(removed.phases)
    # The two-host test's second dockerd (its own namespace, PID file), if it runs.
    steps: dict[str, float] = {}
    offset = time.monotonic() - started
    stop_second_host(steps)
    phases.update((step, offset + seconds) for step, seconds in steps.items())
    if state != "active":
        _owned_marker(stack).unlink(missing_ok=True)
        _labels_marker(stack).unlink(missing_ok=True)
        return phases
    node_id = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    marker = _owned_marker(stack)
    if marker.exists():
        docker("swarm", "leave", "--force", check=False, timeout=60)
        # The bridge that swarm init created; left behind by `swarm leave`.
        docker("network", "rm", "docker_gwbridge", check=False)
        marker.unlink()
    elif _labels_marker(stack).exists():
        # Someone else's swarm: take back only our labels.
        labels = docker("node", "inspect", "--format", "{{json .Spec.Labels}}", node_id).stdout
        present = set(json.loads(labels) or {})
        args = [arg for key in LABELS if key in present for arg in ("--label-rm", key)]
        if args:
            docker("node", "update", *args, node_id, check=False)
    _labels_marker(stack).unlink(missing_ok=True)
    phases["swarm left or labels removed"] = time.monotonic() - started
    return phases


def main(argv: list[str] | None = None) -> int:
    """``teardown STACK...``: the exit trap's cleanup (see the module docstring)."""
    parser = argparse.ArgumentParser(description="clean up after the Swarm e2e test")
    parser.add_argument("command", choices=["teardown"])
    parser.add_argument("stacks", nargs="+", metavar="STACK")
    args = parser.parse_args(argv)
    for stack in args.stacks:
        teardown(stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
