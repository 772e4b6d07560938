"""The deployment settings of one node's core (`NodeConfig`), validated when built.

Kept apart from `qpumesh.node.core`, which re-exports it; ``qpumesh.node.config`` reads
them from flags and environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qpumesh.node.backends import BACKENDS
from qpumesh.node.mitigation import ZneConfig
from qpumesh.node.noise import NoiseConfig
from qpumesh.wire.hardware import DEFAULT_PROFILE, PRESETS, HardwareProfile

__all__ = ["NodeConfig"]


@dataclass(frozen=True)
class NodeConfig:
    """Deployment settings of one node.

    Attributes:
        node_id: Name reported by GetInfo.
        backend: Engine for noise-free circuits: ``"batched"``, ``"qsim"`` or ``"cirq"``.
        max_qubits: Largest circuit accepted.
        noise: Noise profile.
        default_shots: Shots when a request leaves them unset (0 = exact).
        max_batch_rows: Most parameter sets per request.
        max_message_bytes: Largest reply the node will build.
        precision: Batched engine precision, ``"double"`` or ``"single"``.
        circuit_cache_size: Compiled circuits kept (LRU).
        max_circuit_bytes: Largest circuit JSON accepted.
        max_circuit_operations: Most operations (and moments) of a circuit once its
            sub-circuits are inlined, repetitions multiplied.
        max_request_cost: Most work one request may cause, in amplitude operations
            (`qpumesh.node.limits`): compiling a new circuit, and simulating the batch.
        hardware: The QPU whose timings price each request (``hardware_seconds``).
        zne: Zero-noise extrapolation of every request (`qpumesh.node.mitigation`); needs gate
            noise.

    Raises:
        ValueError: An unknown backend/precision or a non-positive limit.
    """

    node_id: str = "qpu-0"
    backend: str = "batched"
    max_qubits: int = 20
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    default_shots: int = 0
    max_batch_rows: int = 100_000
    max_message_bytes: int = 64 * 1024 * 1024
    precision: str = "double"
    circuit_cache_size: int = 256
    max_circuit_bytes: int = 4 * 1024 * 1024
    max_circuit_operations: int = 10_000
    max_request_cost: int = 10_000_000_000
    hardware: HardwareProfile = PRESETS[DEFAULT_PROFILE]
    zne: ZneConfig = field(default_factory=ZneConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"NodeConfig.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.precision not in ("double", "single"):
            raise ValueError(f"NodeConfig.precision must be 'double' or 'single', got {self.precision!r}")
        for name in (
            "max_qubits",
            "max_batch_rows",
            "max_message_bytes",
            "circuit_cache_size",
            "max_circuit_bytes",
            "max_circuit_operations",
            "max_request_cost",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NodeConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.default_shots, int) or self.default_shots < 0:
            raise ValueError(f"NodeConfig.default_shots must be >= 0, got {self.default_shots!r}")
        if not isinstance(self.noise, NoiseConfig):
            raise ValueError(f"NodeConfig.noise must be a NoiseConfig, got {type(self.noise).__name__}")
        self.zne.check_noise(self.noise)
