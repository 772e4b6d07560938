"""The processes of a local mesh: how they are started, described and stopped.

Each child runs in its own process group and, on Linux, gets ``PR_SET_PDEATHSIG`` =
SIGTERM when started from the main thread (``DEATHSIG_LAUNCHER``), so it never outlives
the mesh; ``terminate`` sends SIGTERM to the groups and SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STDERR_TAIL_LINES = 30

# Started with ``python -c`` before exec'ing the real command. Given the parent's
# pid, ask the kernel to SIGTERM this process when its parent dies, then exit at
# once if the parent is already gone (it could have died before prctl ran);
# ``os.execv`` keeps the setting. Given 0, just exec.
DEATHSIG_LAUNCHER = (
    "import ctypes, os, sys\n"
    "parent = int(sys.argv[1])\n"
    "if parent:\n"
    "    try:\n"
    "        ctypes.CDLL(None, use_errno=True).prctl(1, 15, 0, 0, 0)\n"  # PR_SET_PDEATHSIG, SIGTERM
    "    except (OSError, AttributeError):\n"
    "        pass\n"
    "    if os.getppid() != parent:\n"
    "        sys.exit(1)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


@dataclass
class Child:
    """One child process of the mesh and its files."""

    name: str
    process: subprocess.Popen[bytes]
    port_file: Path
    stderr_path: Path
    stderr_file: IO[bytes]
    arguments: list[str]
    port: int = 0
    deaths: list[float] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` (the port is 0 until the child wrote its port file)."""
        return f"127.0.0.1:{self.port}"

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """Return the last ``lines`` lines the child wrote to stderr."""
        try:
            self.stderr_file.flush()
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def how(code: int) -> str:
    """Say how a child with exit status ``code`` ended (negative: killed by that signal)."""
    return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"


def exit_message(child: Child, code: int) -> str:
    """Describe a child that exited, with the tail of its output."""
    return f"{child.name} (pid {child.process.pid}) {how(code)}; last output:\n{child.stderr_tail()}"


def signal_group(child: Child, sig: int) -> None:
    """Send ``sig`` to the child's process group (the child and anything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)


def terminate(children: Sequence[Child], grace: float) -> None:
    """SIGTERM the children, wait up to ``grace`` seconds, SIGKILL the rest and reap all."""
    for child in children:
        if child.process.poll() is None:
            signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.process.poll() is None:
            signal_group(child, signal.SIGKILL)
            child.process.wait()
