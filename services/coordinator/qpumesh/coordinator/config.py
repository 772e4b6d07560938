"""Deployment settings of the coordinator, from command-line flags and environment.

Containers configure the coordinator with ``QPUMESH_*`` environment variables;
people and the local mesh launcher use ``qpumesh coordinator serve`` flags. One
table (``OPTIONS``) describes both, so a setting has the same name, parser and
limits either way. The environment is read once, at start-up, into a frozen
``CoordinatorConfig``; a bad value stops the coordinator with a message naming
the variable or flag. Flags override the environment, which overrides the
defaults below.

Experiment settings (model, epochs, ...) are *not* here: they travel with each
job in its ``JobSpec``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpumesh.wire import settings
from qpumesh.wire.settings import Option, boolean, integer, non_negative, nonempty, positive

if TYPE_CHECKING:
    from qpumesh.coordinator.pool import PoolOptions

DEFAULT_PORT = 50050
DEFAULT_HOST = "[::]"
DEFAULT_DATA_DIR = "qpumesh-data"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable or flag to fix."""


@dataclass(frozen=True)
class CoordinatorConfig:
    """Everything the coordinator server needs.

    Attributes:
        port: TCP port to listen on; 0 picks a free one.
        host: interface to bind, ``[::]`` for all.
        data_dir: holds ``jobs.db`` (the job store) and ``checkpoints/``.
        nodes: QPU nodes, "host:port,host:port" or "dns:SERVICE:PORT"; empty
            only with ``in_process``.
        in_process: run every circuit in this process (no nodes).
        rpc_timeout_seconds: deadline of every node call.
        max_attempts: attempts per circuit task (first included) before a job fails.
        hedge_after_ms: duplicate a node call unanswered after this many
            milliseconds on a second node; None disables hedging.
        connect_timeout_seconds: how long a job waits for a first healthy node.
        workers: gRPC handler threads (each open WatchJob stream holds one).
        grace_seconds: on shutdown, how long in-flight calls may finish.
    """

    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    nodes: str = ""
    in_process: bool = False
    rpc_timeout_seconds: float = 30.0
    max_attempts: int = 4
    hedge_after_ms: float | None = None
    connect_timeout_seconds: float = 30.0
    workers: int = 16
    grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if not self.host:
            raise ConfigError("host must not be empty; use [::] to listen on every interface")
        if self.in_process and self.nodes:
            raise ConfigError("give either nodes (QPUMESH_NODES / --nodes) or in-process execution, not both")
        if not self.in_process and not self.nodes.strip():
            raise ConfigError(
                "no QPU nodes: set QPUMESH_NODES (--nodes host:port,... or dns:SERVICE:PORT), "
                "or QPUMESH_IN_PROCESS=1 (--in-process) to run circuits in the coordinator"
            )
        if not (math.isfinite(self.rpc_timeout_seconds) and self.rpc_timeout_seconds > 0):
            raise ConfigError(f"rpc timeout must be > 0 seconds, got {self.rpc_timeout_seconds}")
        if self.max_attempts < 1:
            raise ConfigError(f"max attempts must be >= 1, got {self.max_attempts}")
        if self.hedge_after_ms is not None and not (
            math.isfinite(self.hedge_after_ms) and self.hedge_after_ms >= 0
        ):
            raise ConfigError(f"hedge-after must be a number of milliseconds >= 0, got {self.hedge_after_ms}")
        if not (math.isfinite(self.connect_timeout_seconds) and self.connect_timeout_seconds >= 0):
            raise ConfigError(f"connect timeout must be >= 0 seconds, got {self.connect_timeout_seconds}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not (math.isfinite(self.grace_seconds) and self.grace_seconds >= 0):
            raise ConfigError(f"grace seconds must be a finite number >= 0, got {self.grace_seconds}")

    @property
    def bind_address(self) -> str:
        """The ``host:port`` string given to gRPC."""
        return f"{self.host}:{self.port}"

    @property
    def db_path(self) -> Path:
        """The SQLite job store."""
        return self.data_dir / "jobs.db"

    @property
    def checkpoint_dir(self) -> Path:
        """The root of the per-job checkpoint directories."""
        return self.data_dir / "checkpoints"


# --- value parsers: text -> value, ValueError saying what is expected ---------------
# (the shared ones live in qpumesh.wire.settings)


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    # "expected an integer 0..65535": the coordinator's messages have no "in".
    return integer(minimum, maximum, range_prefix="")


def _nodes(text: str) -> str:
    """Check a node list's syntax now (``host:port,...`` or ``dns:SERVICE:PORT``)."""
    from qpumesh.coordinator.pool import parse_targets

    return ",".join(parse_targets(text))


OPTIONS: tuple[Option, ...] = (
    Option("port", "QPUMESH_PORT", "--port", _integer(0, 65535),
           f"TCP port, 0 = any free port (default {DEFAULT_PORT})", "PORT"),
    Option("host", "QPUMESH_HOST", "--host", nonempty,
           f"interface to bind (default {DEFAULT_HOST}, every interface)", "HOST"),
    Option("data_dir", "QPUMESH_DATA_DIR", "--data-dir", lambda text: Path(nonempty(text)),
           f"directory of jobs.db and checkpoints/ (default ./{DEFAULT_DATA_DIR})", "DIR"),
    Option("nodes", "QPUMESH_NODES", "--nodes", _nodes,
           "QPU nodes: host:port,host:port or dns:SERVICE:PORT", "NODES"),
    Option("in_process", "QPUMESH_IN_PROCESS", "--in-process", boolean,
           "run circuits inside the coordinator instead of on nodes", "BOOL", switch=True),
    Option("rpc_timeout_seconds", "QPUMESH_RPC_TIMEOUT", "--rpc-timeout", positive(),
           "deadline of each node call in seconds (default 30)", "S"),
    Option("max_attempts", "QPUMESH_MAX_ATTEMPTS", "--max-attempts", _integer(1, 100),
           "attempts per circuit task before the job fails (default 4)", "N"),
    Option("hedge_after_ms", "QPUMESH_HEDGE_AFTER_MS", "--hedge-after-ms", non_negative(),
           "send a slow node call again to a second node after this many ms (default: never)", "MS"),
    Option("connect_timeout_seconds", "QPUMESH_CONNECT_TIMEOUT", "--connect-timeout", non_negative(),
           "seconds a job waits for a first healthy node (default 30)", "S"),
    Option("workers", "QPUMESH_WORKERS", "--workers", _integer(1, 1024),
           "gRPC handler threads; each open WatchJob stream uses one (default 16)", "N"),
    Option("grace_seconds", "QPUMESH_GRACE_SECONDS", "--grace-seconds", non_negative(),
           "on SIGTERM, how long in-flight calls may finish (default 5)", "S"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per ``OPTIONS`` entry to ``parser``; unset flags parse as None.

    ``--in-process`` is a switch (no value); every other flag takes one.
    """
    settings.add_arguments(parser, OPTIONS)


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse every set variable of ``OPTIONS``; empty variables count as unset.

    Raises:
        ConfigError: naming the first variable whose value is invalid.
    """
    return settings.read_environment(OPTIONS, environ, ConfigError)


def build_config(flags: Mapping[str, Any], environ: Mapping[str, str]) -> CoordinatorConfig:
    """Combine parsed flags and the environment into a ``CoordinatorConfig``.

    Args:
        flags: values by ``Option.dest`` (e.g. ``vars(args)``); None or absent
            means "not given". Other keys are ignored.
        environ: the environment, usually ``os.environ``; read once, here.

    Raises:
        ConfigError: a variable or flag has a bad value, or the combination is
            invalid (no nodes and not in-process, or both).
    """
    given = settings.given_flags(OPTIONS, flags)
    values = read_environment(environ) | given
    # A placement given on the command line replaces the one from the environment.
    if "in_process" in given and "nodes" not in given:
        values.pop("nodes", None)
    elif "nodes" in given and "in_process" not in given:
        values.pop("in_process", None)
    return CoordinatorConfig(**values)


def pool_options(config: CoordinatorConfig) -> PoolOptions:
    """Return the ``pool.PoolOptions`` for ``config`` (imported lazily: it pulls in grpc.aio)."""
    from qpumesh.coordinator.pool import PoolOptions

    return PoolOptions(
        timeout_seconds=config.rpc_timeout_seconds,
        max_attempts=config.max_attempts,
        hedge_after_seconds=None if config.hedge_after_ms is None else config.hedge_after_ms / 1000.0,
        connect_timeout_seconds=config.connect_timeout_seconds,
    )
