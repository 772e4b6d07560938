"""Deployment settings of a QPU node server, from command-line flags and environment.

Containers configure a node with ``QPUMESH_*`` environment variables; people and the
local mesh launcher use ``qpumesh node serve`` flags. Both are described by one table
(``OPTIONS``) so that a setting has the same name, parser and limits either way. The
environment is read once, at start-up, into a frozen ``ServerConfig``; a bad value
stops the node with a message naming the variable or flag, rather than surfacing later
as a confusing runtime error. Flags override the environment, which overrides the
defaults of ``ServerConfig`` and ``NodeConfig``.
"""

from __future__ import annotations

import argparse
import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpumesh.node.faults import FaultSettings, read_fault_settings
from qpumesh.wire import settings
from qpumesh.wire.backends import BACKENDS
from qpumesh.wire.channels import MAX_MESSAGE_BYTES, listen_address
from qpumesh.wire.hardware import PRESETS, load_profile
from qpumesh.wire.port_file import PORT_FILE_OPTION
from qpumesh.wire.settings import Option, choice, integer, non_negative, nonempty, probability
from qpumesh.wire.tls import SERVER_OPTIONS as TLS_OPTIONS
from qpumesh.wire.tls import TLS_DESTS, TlsConfig, TlsError, tls_from_values
from qpumesh.wire.units import byte_size

if TYPE_CHECKING:  # imported by build_config: building the CLI parser must not load torch and cirq
    from qpumesh.node.core import NodeConfig

DEFAULT_PORT = 50051
DEFAULT_HOST = "127.0.0.1"
"""Only this machine by default; containers set ``QPUMESH_HOST=0.0.0.0`` explicitly."""

NOISE_METHODS = ("density_matrix", "trajectories")
ZNE_FOLDINGS = ("global", "gates_at_random")
"""Zero-noise extrapolation's folding methods (`qpumesh.node.mitigation`)."""
ZNE_EXTRAPOLATIONS = ("linear", "richardson", "exponential")
"""Zero-noise extrapolation's extrapolations (`qpumesh.node.mitigation`)."""
PRECISIONS = ("double", "single")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable or flag to fix."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``create_server``/``serve`` need to run one node.

    Attributes:
        node: the emulated QPU (engine, noise, limits), passed to ``NodeCore``.
        port: TCP port to listen on; 0 picks a free one (reported by ``create_server``).
        host: interface to bind: 127.0.0.1 by default, ``0.0.0.0`` or ``[::]`` for all.
        workers: concurrent execution slots: how many requests simulate at once. Further
            requests wait for a slot (reported as ``Timings.queue_seconds``).
        grace_seconds: on shutdown, how long in-flight requests may still finish.
        torch_threads: intra-op threads of torch (the batched engine), set process-wide by
            ``serve``. One is fastest for the small statevectors of a QLSTM and does not
            stall when several nodes share a host's cores; raise it for one big node.
        max_queued_requests: Evaluate/ShiftGradient requests that may wait for a slot;
            beyond ``workers + max_queued_requests`` in flight, requests are refused at once
            with RESOURCE_EXHAUSTED ("node busy").
        faults: injected faults and the NodeAdmin token (``QPUMESH_FAULT_*``,
            ``QPUMESH_ADMIN_TOKEN``, ``--fault-*``, ``--admin-token``; see docs/faults.md).
        port_file: once serving, ``serve`` writes the bound port there (``--port 0``).
        tls: serve mutual TLS: this certificate, and only to clients holding a certificate
            its CA signed (the coordinator); None = plaintext.
        metrics_port: serve Prometheus metrics at ``http://host:PORT/metrics`` (0: any free
            port, logged); None: no metrics endpoint.
    """

    node: NodeConfig
    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    workers: int = 1
    grace_seconds: float = 5.0
    torch_threads: int = 1
    max_queued_requests: int = 64
    faults: FaultSettings = field(default_factory=FaultSettings)
    port_file: Path | None = None
    tls: TlsConfig | None = None
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        if self.tls is not None and (self.tls.cert is None or not self.tls.mutual):
            raise ConfigError(
                "a TLS node needs --tls-cert, --tls-key and --tls-ca (QPUMESH_TLS_CERT, QPUMESH_TLS_KEY, "
                "QPUMESH_TLS_CA): it admits only clients with a certificate from that CA, the coordinator"
            )
        try:
            listen_address(self.host, self.port)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.torch_threads < 1:
            raise ConfigError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if self.max_queued_requests < 0:
            raise ConfigError(f"max_queued_requests must be >= 0, got {self.max_queued_requests}")
        if not (math.isfinite(self.grace_seconds) and self.grace_seconds >= 0):
            raise ConfigError(f"grace_seconds must be a finite number >= 0, got {self.grace_seconds}")
        if not 1 <= self.node.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ConfigError(
                f"max_message_bytes must be in 1..{MAX_MESSAGE_BYTES} (a gRPC limit), "
                f"got {self.node.max_message_bytes}"
            )

    @property
    def bind_address(self) -> str:
        """The ``host:port`` string given to gRPC."""
        return listen_address(self.host, self.port)

    @property
    def transport(self) -> str:
        """How the node's port is protected, for its start-up log line."""
        if self.tls is None:
            return "plaintext: anyone who reaches the port may use the node"
        return "mutual TLS: only clients with a certificate from its CA"


# --- value parsers: text -> value, ValueError saying what is expected ---------------
# (the shared ones live in qpumesh.wire.settings)

_probability = probability(include_one=False, percent=False)


def _scale_factors(text: str) -> tuple[float, ...]:
    from qpumesh.node.mitigation import parse_scale_factors

    return parse_scale_factors(text)

_seconds = non_negative("seconds")


def _amount(text: str) -> int:
    """Parse a positive whole number, also in scientific notation (``1e10``, ``2.5e9``)."""
    try:
        value = float(text.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"expected a positive number such as 1e10, got {text!r}") from None
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"expected a positive number such as 1e10, got {text!r}")
    return int(value)


# fmt: off
OPTIONS: tuple[Option, ...] = (
    Option("port", "QPUMESH_PORT", "--port", integer(0, 65535),
           f"TCP port, 0 = any free port (default {DEFAULT_PORT})", "PORT"),
    Option("host", "QPUMESH_HOST", "--host", nonempty,
           f"interface to bind (default {DEFAULT_HOST}; 0.0.0.0 or [::] = every interface)", "HOST"),
    Option("node_id", "QPUMESH_NODE_ID", "--node-id", nonempty,
           "name reported by GetInfo (default: the host name)", "ID"),
    Option("backend", "QPUMESH_BACKEND", "--backend", choice(*BACKENDS),
           "simulation engine: batched (torch, vectorised), qsim or cirq", "|".join(BACKENDS)),
    Option("max_qubits", "QPUMESH_MAX_QUBITS", "--max-qubits", integer(1, 64),
           "largest circuit accepted, in qubits", "N"),
    Option("depolarizing_1q", "QPUMESH_DEPOLARIZING_1Q", "--depolarizing-1q", _probability,
           "depolarizing probability after every one-qubit gate", "P"),
    Option("depolarizing_2q", "QPUMESH_DEPOLARIZING_2Q", "--depolarizing-2q", _probability,
           "depolarizing probability after every two-qubit gate", "P"),
    Option("readout_error", "QPUMESH_READOUT_ERROR", "--readout-error", _probability,
           "symmetric bit-flip probability of each measured qubit", "P"),
    Option("noise_method", "QPUMESH_NOISE_METHOD", "--noise-method", choice(*NOISE_METHODS),
           "how gate noise is simulated: density_matrix (exact) or trajectories (Monte Carlo)",
           "|".join(NOISE_METHODS)),
    Option("trajectories", "QPUMESH_TRAJECTORIES", "--trajectories", integer(1),
           "Monte Carlo trajectories per parameter set (noise method trajectories)", "N"),
    Option("default_shots", "QPUMESH_DEFAULT_SHOTS", "--shots", integer(0),
           "shots per observable term when a request leaves shots unset; 0 = exact", "N"),
    Option("max_batch_rows", "QPUMESH_MAX_BATCH_ROWS", "--max-batch-rows", integer(1),
           "largest parameter batch accepted, in rows", "N"),
    Option("max_message_bytes", "QPUMESH_MAX_MESSAGE_BYTES", "--max-message-bytes",
           byte_size(MAX_MESSAGE_BYTES),
           "largest gRPC message received or sent, e.g. 64MiB", "BYTES"),
    Option("max_circuit_bytes", "QPUMESH_MAX_CIRCUIT_BYTES", "--max-circuit-bytes",
           byte_size(MAX_MESSAGE_BYTES), "largest circuit JSON accepted, e.g. 4MiB (default)", "BYTES"),
    Option("max_circuit_operations", "QPUMESH_MAX_CIRCUIT_OPERATIONS", "--max-circuit-operations", integer(1),
           "most operations (and moments) of a circuit once sub-circuits are inlined (default 10000)", "N"),
    Option("max_request_cost", "QPUMESH_MAX_REQUEST_COST", "--max-request-cost", _amount,
           "most work of one request, in amplitude operations (default 1e10, ~10-20 s of one core)", "N"),
    Option("max_queued_requests", "QPUMESH_MAX_QUEUED_REQUESTS", "--max-queued-requests", integer(0, 4096),
           "requests that may wait for a slot; more are refused with RESOURCE_EXHAUSTED (default 64)", "N"),
    Option("precision", "QPUMESH_PRECISION", "--precision", choice(*PRECISIONS),
           "statevector precision of the batched engine: double (complex128) or single",
           "|".join(PRECISIONS)),
    Option("circuit_cache_size", "QPUMESH_CIRCUIT_CACHE_SIZE", "--circuit-cache-size", integer(1),
           "compiled circuits kept by hash", "N"),
    Option("workers", "QPUMESH_WORKERS", "--workers", integer(1, 1024),
           "concurrent execution slots (default 1)", "N"),
    Option("grace_seconds", "QPUMESH_GRACE_SECONDS", "--grace-seconds", _seconds,
           "on SIGTERM, how long in-flight requests may finish (default 5)", "S"),
    Option("torch_threads", "QPUMESH_TORCH_THREADS", "--torch-threads", integer(1, 1024),
           "intra-op threads of torch, the batched engine (default 1, best for small circuits)", "N"),
    PORT_FILE_OPTION,
    *TLS_OPTIONS,
    Option("hardware", "QPUMESH_HARDWARE", "--hardware", load_profile,
           f"hardware profile pricing requests in QPU seconds: {', '.join(PRESETS)} or a JSON file "
           "(docs/hardware.md; default superconducting)", "PRESET|FILE"),
    Option("zne_scale_factors", "QPUMESH_ZNE_SCALE_FACTORS", "--zne-scale-factors", _scale_factors,
           "zero-noise extrapolation of every request from these noise scale factors, e.g. 1,3,5 "
           "(needs gate noise; default: off)", "L1,L2,..."),
    Option("zne_folding", "QPUMESH_ZNE_FOLDING", "--zne-folding", choice(*ZNE_FOLDINGS),
           "how ZNE scales the noise: mitiq's unitary folding (default global)", "METHOD"),
    Option("zne_extrapolation", "QPUMESH_ZNE_EXTRAPOLATION", "--zne-extrapolation",
           choice(*ZNE_EXTRAPOLATIONS), "how ZNE extrapolates to zero noise (default richardson)", "METHOD"),
    Option("metrics_port", "QPUMESH_METRICS_PORT", "--metrics-port", integer(0, 65535),
           "serve Prometheus metrics on http://HOST:PORT/metrics (0 = any free port; default: off)", "PORT"),
)
# fmt: on

_SERVER_FIELDS = frozenset(
    {
        "port",
        "host",
        "workers",
        "grace_seconds",
        "torch_threads",
        "max_queued_requests",
        "port_file",
        "metrics_port",
    }
)
_NOISE_FIELDS = {
    "depolarizing_1q": "depolarizing_1q",
    "depolarizing_2q": "depolarizing_2q",
    "readout_error": "readout_error",
    "noise_method": "method",
    "trajectories": "trajectories",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per ``OPTIONS`` entry to ``parser``; unset flags parse as None."""
    settings.add_arguments(parser, OPTIONS)


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse every set ``QPUMESH_*`` variable of ``OPTIONS`` into a value.

    Empty variables count as unset, so ``FOO=`` in a compose file means "default".

    Raises:
        ConfigError: naming the first variable whose value is invalid.
    """
    return settings.read_environment(OPTIONS, environ, ConfigError)


def build_config(flags: Mapping[str, Any], environ: Mapping[str, str]) -> ServerConfig:
    """Combine parsed flags and the environment into a ``ServerConfig``.

    Args:
        flags: option values by ``Option.dest`` (e.g. ``vars(args)``); None or absent
            means "not given". Keys that are not options are ignored.
        environ: the environment, usually ``os.environ``; read once, here.

    Raises:
        ConfigError: a variable or flag has a bad value, or the combination is invalid
            (e.g. a noise setting the node rejects).
    """
    from qpumesh.node.core import NodeConfig
    from qpumesh.node.noise import NoiseConfig

    values = read_environment(environ) | settings.given_flags(OPTIONS, flags)
    try:
        tls = tls_from_values(values)
    except TlsError as error:
        raise ConfigError(str(error)) from None
    values = {dest: value for dest, value in values.items() if dest not in TLS_DESTS}

    noise_kwargs = {field: values[dest] for dest, field in _NOISE_FIELDS.items() if dest in values}
    zne_kwargs = {dest[4:]: value for dest, value in values.items() if dest.startswith("zne_")}
    node_kwargs = {
        dest: value
        for dest, value in values.items()
        if dest not in _SERVER_FIELDS and dest not in _NOISE_FIELDS and not dest.startswith("zne_")
    }
    node_kwargs.setdefault("node_id", socket.gethostname())
    server_kwargs: dict[str, Any] = {dest: value for dest, value in values.items() if dest in _SERVER_FIELDS}
    server_kwargs["tls"] = tls
    try:
        server_kwargs["faults"] = read_fault_settings(flags, environ)
        from qpumesh.node.mitigation import ZneConfig

        node = NodeConfig(noise=NoiseConfig(**noise_kwargs), zne=ZneConfig(**zne_kwargs), **node_kwargs)
        return ServerConfig(node=node, **server_kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid node configuration: {error}") from error
