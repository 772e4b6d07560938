"""A second Docker host on this machine, for the two-host Swarm test.

A second ``dockerd`` runs in its own network namespace (``ip netns`` + a veth pair:
10.231.0.1 on this host's side, 10.231.0.2 on the second host's), with its own data
root, exec root and socket, so that the swarm has two hosts that talk over a real link:
Swarm's control plane (TCP 2377, 7946) and the overlay network's VXLAN (UDP 4789) cross
the veth. What was found while building it (docs/deploy.md):

- ``ip netns exec`` must NOT start the daemon: it also unshares the mount namespace and
  mounts a fresh /sys, which hides the cgroup hierarchy ("failed to start daemon: Devices
  cgroup isn't mounted"); ``nsenter --net=/run/netns/NAME`` enters the network namespace
  alone.
- Both hosts share the kernel's UTS name, so ``docker node ls`` shows two hosts named
  alike; nodes are told apart by their IDs.
- The second host has no images and there is no registry: ``docker save | docker load``.
- Its data root is a tmpfs: removing the loaded image's layers from disk file by file
  took longer (77 s) than everything else in the teardown together.

Only what ``start`` made is removed by ``stop`` (its PID file names the daemon).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from e2e_swarm import docker

NETNS = "qpmh2"
VETH_HOST, VETH_PEER = "qpmh2-a", "qpmh2-b"
HOST_IP, PEER_IP = "10.231.0.1", "10.231.0.2"
DATA_ROOT = Path("/var/lib/qpumesh-host2")
RUN_ROOT = Path("/run/qpumesh-host2")
PIDFILE = RUN_ROOT / "docker.pid"
TMPFS_SIZE = "6g"
"""Memory for the second host's data root: the node image (1.5 GB) and its containers."""
SOCKET = f"unix://{RUN_ROOT}/docker.sock"


def _run(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc


@dataclass
class SecondHost:
    """A running second dockerd in network namespace ``NETNS``."""

    pid: int

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker -H SOCKET ARGS`` on the second host."""
        return docker("-H", SOCKET, *args, timeout=timeout, check=check)

    @classmethod
    def start(cls, log: Path, timeout: float = 60) -> SecondHost:
        """Make the namespace and the veth link, start dockerd in it, wait until it answers."""
        for tool in ("ip", "nsenter", "dockerd"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not found (iproute2, util-linux, docker.io)")
        stop()  # leftovers of an interrupted run
        _run("ip", "netns", "add", NETNS)
        _run("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_PEER)
        _run("ip", "link", "set", VETH_PEER, "netns", NETNS)
        _run("ip", "addr", "add", f"{HOST_IP}/24", "dev", VETH_HOST)
        _run("ip", "link", "set", VETH_HOST, "up")
        inside = ("ip", "netns", "exec", NETNS)
        _run(*inside, "ip", "addr", "add", f"{PEER_IP}/24", "dev", VETH_PEER)
        _run(*inside, "ip", "link", "set", VETH_PEER, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        # The second host's images and containers live in memory: deleting 1.5 GB of image
        # layers file by file took 77 s on the dev machine's disk; unmounting is instant.
        _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "qpumesh-host2", str(DATA_ROOT))
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{NETNS}", "dockerd",
                 "--data-root", str(DATA_ROOT / "docker"), "--exec-root", str(RUN_ROOT / "docker"),
                 "--pidfile", str(PIDFILE), "-H", SOCKET],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while docker("-H", SOCKET, "info", check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"the second dockerd did not answer within {timeout:.0f}s:\n{tail}")
            time.sleep(1)
        return cls(pid=int(PIDFILE.read_text()))

    def load(self, *images: str) -> None:
        """Copy local images to the second host (``docker save | docker -H ... load``)."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "-H", SOCKET, "load"], stdin=save.stdout, capture_output=True, text=True, check=False
        )
        assert save.stdout is not None
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"copying {images} to the second host failed: {load.stderr[-2000:]}")

    def join(self, manager: str) -> str:
        """Join the swarm managed at ``manager`` (ip) as a worker; return the new node's ID."""
        token = docker("swarm", "join-token", "-q", "worker").stdout.strip()
        self.docker("swarm", "join", "--token", token, f"{manager}:2377")
        return self.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if this process started it (``SecondHost.start``)."""
    # Not our child (the exit trap's teardown runs in another process): its parent reaps it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(phases: dict[str, float] | None = None) -> None:
    """Leave the swarm, stop the second dockerd (by its PID file), remove link, namespace, data.

    Args:
        phases: if given, gets the seconds from the start of ``stop`` to the end of each
            step (for the timings report).
    """
    phases = {} if phases is None else phases
    started = time.monotonic()

    def done(step: str) -> None:
        phases[step] = time.monotonic() - started

    if PIDFILE.exists():
        pid = int(PIDFILE.read_text())
        comm = Path(f"/proc/{pid}/comm")
        if comm.exists() and comm.read_text().strip() == "dockerd":
            docker("-H", SOCKET, "swarm", "leave", "--force", check=False, timeout=60)
            done("second host: swarm leave")
            docker("-H", SOCKET, "network", "rm", "docker_gwbridge", check=False)
            _run("kill", "-TERM", str(pid), check=False)
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                _run("kill", "-KILL", str(pid), check=False)
            _reap(pid)
            done("second host: dockerd stopped")
        PIDFILE.unlink(missing_ok=True)
    _run("ip", "link", "del", VETH_HOST, check=False)
    _run("ip", "netns", "del", NETNS, check=False)
    if DATA_ROOT.is_mount():
        # Mounts the daemon left below it (overlay layers of killed containers) go first.
        _run("umount", "--recursive", "--lazy", str(DATA_ROOT), check=False)
    shutil.rmtree(DATA_ROOT, ignore_errors=True)
    shutil.rmtree(RUN_ROOT, ignore_errors=True)
    done("second host: link, namespace, data removed")
