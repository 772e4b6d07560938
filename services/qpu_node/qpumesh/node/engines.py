"""Which engine runs a circuit on this node, and the engines themselves.

With gate noise and the ``batched`` backend: the torch engines ``batched-density`` (exact)
or ``batched-trajectories`` (Monte Carlo) per `NoiseConfig.method`; with gate noise and
another backend: the references ``cirq-noisy`` (exact density matrix) or ``qsim-noisy``
(trajectories). Without gate noise: the configured backend, falling back to ``qsim`` when
it cannot run the circuit. The choice is made once per circuit (`NodeEngines.choose`) and
reported as ``backend``. Which gradient method runs is decided here too
(`NodeEngines.gradient_method`): adjoint differentiation needs the noise-free batched engine.
"""

from __future__ import annotations

from qpumesh.node.backends import (
    Backend,
    BatchedBackend,
    CirqBackend,
    DensityBackend,
    QsimBackend,
    TrajectoriesBackend,
)
from qpumesh.node.circuits import CompiledCircuit
from qpumesh.node.errors import InvalidRequest, PreconditionFailed
from qpumesh.node.gradients import GRADIENT_METHODS
from qpumesh.node.noise import NoiseConfig

__all__ = ["NodeEngines"]


class NodeEngines:
    """The engines of one node, by name. Thread-safe.

    Args:
        backend: The configured backend (``batched``, ``cirq`` or ``qsim``).
        precision: Precision of the batched engine.
        noise: The node's noise profile.
    """

    def __init__(self, backend: str, precision: str, noise: NoiseConfig) -> None:
        self.backend = backend
        self.noise = noise
        self._engines: dict[str, Backend] = {
            "batched": BatchedBackend(precision),
            "cirq": CirqBackend(),
            "qsim": QsimBackend(),
        }
        if noise.has_gate_noise:
            self._engines["batched-density"] = DensityBackend(noise)
            self._engines["batched-trajectories"] = TrajectoriesBackend(noise)
            self._engines["cirq-noisy"] = CirqBackend(noise)
            self._engines["qsim-noisy"] = QsimBackend(noise)

    def choose(self, compiled: CompiledCircuit) -> tuple[str, str | None]:
        """Return the engine of `compiled` and, when it is not the configured one, why.

        Raises:
            InvalidRequest: Exact noisy simulation is configured and the circuit is too wide
                for it (the message says which settings would run it).
        """
        if self.noise.has_gate_noise:
            return self._choose_noisy(compiled)
        reason = self._engines[self.backend].supports(compiled)
        if reason is None:
            return self.backend, None
        return "qsim", f"the {self.backend} engine cannot run it ({reason})"

    def _choose_noisy(self, compiled: CompiledCircuit) -> tuple[str, str | None]:
        """Pick the gate-noise engine: torch for the ``batched`` backend, else the references."""
        noise = self.noise
        exact = noise.method == "density_matrix"
        qsim = f"qsim Monte Carlo with {noise.trajectories} trajectories"
        if self.backend != "batched":
            if exact:
                return "cirq-noisy", "gate noise is configured; exact density-matrix simulation (cirq)"
            return "qsim-noisy", f"gate noise is configured; {qsim}"
        name = "batched-density" if exact else "batched-trajectories"
        reason = self._engines[name].supports(compiled)
        if reason is None:
            method = "exact density matrix" if exact else f"{noise.trajectories} Monte Carlo trajectories"
            return name, f"gate noise is configured; {method} of the whole batch (torch)"
        if exact:
            raise InvalidRequest(
                f"the circuit acts on {compiled.n_qubits} qubits, but {reason}; send a smaller circuit, or "
                "run the node with --noise-method trajectories (or --backend cirq for Cirq's density matrix)"
            )
        return "qsim-noisy", f"{reason}; {qsim}"

    def get(self, name: str, seed: int | None) -> Backend:
        """Return the engine `name`, seeded with the request's `seed` where it samples."""
        engine = self._engines[name]
        if isinstance(engine, TrajectoriesBackend):
            return engine.seeded(seed)
        if name == "qsim-noisy" and seed is not None:
            return QsimBackend(self.noise, seed=seed)
        return engine

    def gradient_method(self, method: str, shots: int, engine: str) -> str:
        """Resolve ``auto`` and check that an explicit ``adjoint`` can run on `engine` here.

        Raises:
            InvalidRequest: An unknown method, or ``adjoint`` with shots.
            PreconditionFailed: ``adjoint`` on a noisy node or an engine other than ``batched``.
        """
        if method not in GRADIENT_METHODS:
            raise InvalidRequest(
                f"unknown gradient method {method!r}; use one of {', '.join(map(repr, GRADIENT_METHODS))}"
            )
        noise = self.noise
        blocker = None
        if noise.is_noisy:
            blocker = (
                f"this node simulates noise (depolarizing {noise.depolarizing_1q:g}/"
                f"{noise.depolarizing_2q:g}, readout {noise.readout_error:g}), and adjoint "
                "differentiation needs noise-free states"
            )
        elif engine != "batched":
            blocker = (
                f"adjoint differentiation runs on the batched engine and this circuit runs on {engine!r} here"
            )
        if method == "adjoint":
            if shots:
                raise InvalidRequest(
                    f"method 'adjoint' needs exact expectations but the request asks for {shots} shots; "
                    "send shots=0, or use method 'parameter_shift' or 'auto' for shot-sampled gradients"
                )
            if blocker:
                raise PreconditionFailed(
                    f"method 'adjoint' is not available: {blocker}; use 'auto' or 'parameter_shift' "
                    "(or a noise-free batched node)"
                )
            return "adjoint"
        if method == "auto" and not shots and blocker is None:
            return "adjoint"
        return "parameter_shift"
