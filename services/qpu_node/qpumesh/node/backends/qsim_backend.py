"""The ``qsim`` engine: `qsimcirq.QSimSimulator` (single-precision statevector, C++/AVX).

Noise-free circuits are exact up to float32 rounding (~1e-6). With gate noise qsim runs Monte
Carlo *trajectories*: each parameter set is simulated `NoiseConfig.trajectories` times with
randomly sampled Kraus operators and the expectation values are averaged, so results carry
a statistical error of order ``1/sqrt(trajectories)`` and are not reproducible unless a
seed is given. Use the ``cirq`` engine (density matrix) for exact noisy values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import qsimcirq  # type: ignore[import-untyped]

from qpumesh.node.backends.cirq_backend import row_work, sweep_expectations
from qpumesh.node.circuits import CompiledCircuit
from qpumesh.node.noise import NoiseConfig

__all__ = ["QsimBackend"]


class QsimBackend:
    """qsim statevector engine; gate noise by trajectories.

    Args:
        noise: The node's noise profile; only its gate noise is simulated here.
        seed: Seed of qsim's trajectory sampler (None = nondeterministic).
        cpu_threads: qsim worker threads.
    """

    name = "qsim"

    def __init__(
        self, noise: NoiseConfig | None = None, seed: int | None = None, cpu_threads: int = 1
    ) -> None:
        self.noise = noise if noise is not None else NoiseConfig()
        options = qsimcirq.QSimOptions(  # type: ignore[attr-defined]
            cpu_threads=cpu_threads, ev_noisy_repetitions=self.noise.trajectories
        )
        model = self.noise.noise_model() if self.noise.has_gate_noise else None
        self._simulator = qsimcirq.QSimSimulator(  # type: ignore[attr-defined]
            qsim_options=options, seed=seed, noise=model
        )

    def supports(self, compiled: CompiledCircuit) -> str | None:
        """Return None: qsim runs every compiled circuit."""
        return None

    def expectations(self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray) -> np.ndarray:
        """Pauli-term expectations, ``(rows, len(terms))`` float64 (Monte Carlo with gate noise)."""
        if self.noise.has_gate_noise:  # one trajectory stream for the whole batch: never chunked
            return sweep_expectations(self._simulator, compiled, terms, angles)
        return sweep_expectations(
            self._simulator, compiled, terms, angles, row_work=row_work("qsim", compiled, terms)
        )
