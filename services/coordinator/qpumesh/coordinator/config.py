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
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpumesh.coordinator.auth import AuthConfigError, TokenTable
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.targets import parse_targets
from qpumesh.coordinator.watch import DEFAULT_MAX_STREAMS
from qpumesh.wire import settings
from qpumesh.wire.channels import listen_address
from qpumesh.wire.port_file import PORT_FILE_OPTION
from qpumesh.wire.settings import Option, boolean, integer, non_negative, nonempty, positive
from qpumesh.wire.tls import COORDINATOR_OPTIONS as TLS_OPTIONS
from qpumesh.wire.tls import TLS_DESTS, TlsConfig, TlsError, tls_from_values

DEFAULT_PORT = 50050
DEFAULT_HOST = "127.0.0.1"
"""Only this machine by default; containers set ``QPUMESH_HOST=0.0.0.0`` explicitly."""
DEFAULT_DATA_DIR = "qpumesh-data"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest request or reply (a series of 20,000 values is 180 kB)."""


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable or flag to fix."""


@dataclass(frozen=True)
class CoordinatorConfig:
    """Everything the coordinator server needs.

    Attributes:
        port: TCP port to listen on; 0 picks a free one.
        host: interface to bind: 127.0.0.1 by default, ``0.0.0.0`` or ``[::]`` for all.
        data_dir: holds ``jobs.db`` (the job store) and ``checkpoints/``.
        nodes: QPU nodes, "host:port,host:port" or "dns:SERVICE:PORT"; empty
            only with ``in_process``.
        in_process: run every circuit in this process (no nodes).
        pool: how the mesh talks to the nodes (deadline of every node call, attempts
            per circuit task, hedging, how long a job waits for a first healthy node).
        workers: threads running the bodies of unary calls (streams hold none).
        grace_seconds: on shutdown, how long in-flight calls may finish.
        port_file: once serving, ``serve`` writes the bound port there (``--port 0``).
        tls: the server's TLS (None: plaintext); its node connections use the same files
            (the CA verifies the nodes, the certificate is presented to them).
        auth: the bearer tokens every call must carry (None: no authentication).
        data_root: the only directory jobs may name CSV files in (None: none).
        max_streams: WatchJob streams open at once; one more gets RESOURCE_EXHAUSTED.
        http_port: serve the dashboard, its JSON API and ``/metrics`` over HTTP on this port
            (0: any free port); None: no HTTP server.
        http_port_file: once serving, write the bound HTTP port there (``--http-port 0``).
    """

    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    nodes: str = ""
    in_process: bool = False
    pool: PoolOptions = field(default_factory=PoolOptions)
    workers: int = 16
    grace_seconds: float = 5.0
    port_file: Path | None = None
    tls: TlsConfig | None = None
    auth: TokenTable | None = None
    data_root: Path | None = None
    max_streams: int = DEFAULT_MAX_STREAMS
    http_port: int | None = None
    http_port_file: Path | None = None

    def __post_init__(self) -> None:
        try:
            listen_address(self.host, self.port)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.in_process and self.nodes:
            raise ConfigError("give either nodes (QPUMESH_NODES / --nodes) or in-process execution, not both")
        if not self.in_process and not self.nodes.strip():
            raise ConfigError(
                "no QPU nodes: set QPUMESH_NODES (--nodes host:port,... or dns:SERVICE:PORT), "
                "or QPUMESH_IN_PROCESS=1 (--in-process) to run circuits in the coordinator"
            )
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not (math.isfinite(self.grace_seconds) and self.grace_seconds >= 0):
            raise ConfigError(f"grace seconds must be a finite number >= 0, got {self.grace_seconds}")
        if self.max_streams < 1:
            raise ConfigError(f"max streams must be >= 1, got {self.max_streams}")
        if self.tls is not None and self.tls.cert is None:
            raise ConfigError(
                "a TLS coordinator needs --tls-cert and --tls-key (QPUMESH_TLS_CERT, QPUMESH_TLS_KEY)"
            )
        if self.data_root is not None and not self.data_root.is_dir():
            raise ConfigError(
                f"data root {self.data_root} is not a directory (--data-root, QPUMESH_DATA_ROOT)"
            )

    @property
    def bind_address(self) -> str:
        """The ``host:port`` string given to gRPC."""
        return listen_address(self.host, self.port)

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
    return ",".join(parse_targets(text))


_milliseconds = non_negative()


def _milliseconds_as_seconds(text: str) -> float:
    return _milliseconds(text) / 1000.0


# fmt: off
OPTIONS: tuple[Option, ...] = (
    Option("port", "QPUMESH_PORT", "--port", _integer(0, 65535),
           f"TCP port, 0 = any free port (default {DEFAULT_PORT})", "PORT"),
    Option("host", "QPUMESH_HOST", "--host", nonempty,
           f"interface to bind (default {DEFAULT_HOST}; 0.0.0.0 or [::] = every interface)", "HOST"),
    Option("data_dir", "QPUMESH_DATA_DIR", "--data-dir", lambda text: Path(nonempty(text)),
           f"directory of jobs.db and checkpoints/ (default ./{DEFAULT_DATA_DIR})", "DIR"),
    Option("nodes", "QPUMESH_NODES", "--nodes", _nodes,
           "QPU nodes: host:port,host:port or dns:SERVICE:PORT", "NODES"),
    Option("in_process", "QPUMESH_IN_PROCESS", "--in-process", boolean,
           "run circuits inside the coordinator instead of on nodes", "BOOL", switch=True),
    # PoolOptions fields:
    Option("timeout_seconds", "QPUMESH_RPC_TIMEOUT", "--rpc-timeout", positive(),
           "floor of each node call's deadline in seconds; a call may take this plus 4x the "
           "node's recent pace for its work (default 30)", "S"),
    Option("max_attempts", "QPUMESH_MAX_ATTEMPTS", "--max-attempts", _integer(1, 100),
           "attempts per circuit task before the job fails (default 4)", "N"),
    Option("hedge_after_seconds", "QPUMESH_HEDGE_AFTER_MS", "--hedge-after-ms", _milliseconds_as_seconds,
           "send a slow node call again to a second node after this many ms (default: never)", "MS"),
    Option("connect_timeout_seconds", "QPUMESH_CONNECT_TIMEOUT", "--connect-timeout", non_negative(),
           "seconds a job waits for a first healthy node (default 30)", "S"),
    # CoordinatorConfig fields:
    Option("workers", "QPUMESH_WORKERS", "--workers", _integer(1, 1024),
           "threads running unary calls (default 16; WatchJob streams need none)", "N"),
    Option("max_streams", "QPUMESH_MAX_STREAMS", "--max-streams", _integer(1, 1_000_000),
           f"WatchJob streams open at once (default {DEFAULT_MAX_STREAMS})", "N"),
    Option("grace_seconds", "QPUMESH_GRACE_SECONDS", "--grace-seconds", non_negative(),
           "on SIGTERM, how long in-flight calls may finish (default 5)", "S"),
    Option("auth_tokens", "QPUMESH_AUTH_TOKENS", "--auth-tokens", lambda text: Path(nonempty(text)),
           "file of bearer tokens (TOKEN PRINCIPAL [ROLE] per line): every call needs one", "FILE"),
    Option("data_root", "QPUMESH_DATA_ROOT", "--data-root", lambda text: Path(nonempty(text)),
           "the only directory jobs may name CSV files in (default: none; clients send series)", "DIR"),
    PORT_FILE_OPTION,
    *TLS_OPTIONS,
    Option("http_port", "QPUMESH_HTTP_PORT", "--http-port", _integer(0, 65535),
           "serve the dashboard and Prometheus /metrics over HTTP on this port (0 = any free port; "
           "default: off)", "PORT"),
    Option("http_port_file", "QPUMESH_HTTP_PORT_FILE", "--http-port-file", Path,
           "once serving, write the bound HTTP port to PATH (atomically); useful with --http-port 0", "PATH"),
)
# fmt: on


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
    pool = {name: values.pop(name) for name in _POOL_FIELDS if name in values}
    try:
        values["tls"] = tls_from_values(values)
        tokens = values.pop("auth_tokens", None)
        values["auth"] = TokenTable.load(tokens) if tokens is not None else None
    except (TlsError, AuthConfigError) as error:
        raise ConfigError(str(error)) from None
    values = {dest: value for dest, value in values.items() if dest not in TLS_DESTS}
    try:
        return CoordinatorConfig(pool=PoolOptions(**pool), **values)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"invalid node pool setting: {error}") from None


_POOL_FIELDS = frozenset(f.name for f in dataclasses.fields(PoolOptions))
