"""The ``batched-trajectories`` engine: gate noise by Monte Carlo trajectories, batched in torch.

Every depolarizing channel of the node's noise model is a mixture of Pauli operators:
``depolarize(p, n_qubits=k)`` applies the identity with probability ``1 − p`` and each of the
``4**k − 1`` other Pauli strings with probability ``p / (4**k − 1)``. Sampling one Pauli per
channel and simulating the resulting pure state is therefore an exact sample of the channel,
and the average of a term's expectation over trajectories is an *unbiased* estimate of the
density-matrix value, with standard deviation at most ``1/sqrt(trajectories)``.

The engine simulates all ``rows × trajectories`` statevectors as one batch-last
``(2**n, columns)`` tensor (column ``c`` is row ``c // T``, trajectory ``c % T``), in chunks of
columns, each gate for every column at once (`trajectory_program`: fused one-qubit runs,
gathers for CNOT-like gates, Pauli draws applied only to the columns that drew one).

Reproducibility: the draws come from a numpy PCG64 stream consumed column by column (one
uniform per channel), so they do not depend on how the batch is chunked. The stream is seeded
by the request's seed; a request without one is seeded from its own content (angles and
terms), so the same request gives bit-identical numbers on every node and every call --
which keeps training deterministic whichever node answers. Different seeds give independent
estimates. `NoiseConfig.trajectories` trajectories run per parameter set; the cost grows
linearly with them and as ``2**n`` with the register (up to `MAX_QUBITS`).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Sequence

import numpy as np
import torch

from qpumesh.node.backends.trajectory_program import TrajectoryProgram
from qpumesh.node.cancellation import checkpoint
from qpumesh.node.circuits import CompiledCircuit
from qpumesh.node.noise import NoiseConfig

__all__ = ["MAX_QUBITS", "TrajectoriesBackend"]

#: Largest register the engine accepts (like the statevector engine).
MAX_QUBITS = 24
#: Columns are simulated in chunks of about this many amplitudes (4 MiB of complex128),
#: at least one column.
_CHUNK_AMPLITUDES = 1 << 18
#: Separates this engine's random stream from the core's shot sampler under the same seed.
_STREAM_TAG = 0x7472616A  # "traj"


def _content_seed(terms: Sequence[str], angles: np.ndarray) -> list[int]:
    """Derive a seed from a request's content (for requests that carry none)."""
    digest = hashlib.sha256()
    digest.update("\n".join(terms).encode())
    digest.update(repr(angles.shape).encode())
    digest.update(np.ascontiguousarray(angles, dtype=np.float64).tobytes())
    return [int.from_bytes(digest.digest()[i : i + 4], "little") for i in range(0, 16, 4)]


class TrajectoriesBackend:
    """Monte Carlo noisy engine: batched statevector trajectories. Thread-safe.

    Args:
        noise: The node's noise profile (its gate noise and ``trajectories``).
        seed: Seed of the draws; None seeds each call from its content.
    """

    name = "batched-trajectories"

    def __init__(self, noise: NoiseConfig, seed: int | None = None) -> None:
        self.noise = noise
        self.seed = seed
        self._programs: weakref.WeakKeyDictionary[CompiledCircuit, TrajectoryProgram] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._rng: np.random.Generator | None = None

    def seeded(self, seed: int | None) -> TrajectoriesBackend:
        """Return an engine for one request: its own random stream, this engine's programs.

        Successive calls of the returned engine continue one stream (a gradient split into
        several engine calls draws fresh trajectories for each).
        """
        engine = TrajectoriesBackend(self.noise, seed)
        engine._programs = self._programs
        engine._lock = self._lock
        return engine

    def supports(self, compiled: CompiledCircuit) -> str | None:
        """None when the register is small enough for a batch of statevectors."""
        if compiled.n_qubits > MAX_QUBITS:
            return f"the batched trajectories engine simulates at most {MAX_QUBITS} qubits"
        return None

    def program(self, compiled: CompiledCircuit) -> TrajectoryProgram:
        """Return the torch program of `compiled` (built once, then cached)."""
        with self._lock:
            program = self._programs.get(compiled)
            if program is None:
                program = TrajectoryProgram(compiled, self.noise)
                self._programs[compiled] = program
            return program

    def _stream(self, terms: Sequence[str], angles: np.ndarray) -> np.random.Generator:
        if self._rng is not None:
            return self._rng
        if self.seed is None:
            entropy = _content_seed(terms, angles)
        else:
            entropy = [int(self.seed) & 0xFFFFFFFFFFFFFFFF]
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*entropy, _STREAM_TAG])))
        if self.seed is not None:
            self._rng = rng  # a seeded request continues its stream across calls
        return rng

    def expectations(self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray) -> np.ndarray:
        """Trajectory estimates of the noisy Pauli-term expectations, ``(rows, len(terms))``."""
        program = self.program(compiled)
        rows, n_terms = angles.shape[0], len(terms)
        out = np.empty((rows, n_terms), dtype=np.float64)
        if rows == 0 or n_terms == 0:
            return out
        rng = self._stream(terms, angles)
        groups = program.term_groups(terms)
        t = self.noise.trajectories
        chunk = max(1, _CHUNK_AMPLITUDES // program.dim)
        rows_per = max(1, chunk // t)
        with torch.no_grad():
            for r0 in range(0, rows, rows_per):
                checkpoint()  # the draws depend only on the rows, not on stopping between them
                count = min(rows_per, rows - r0)
                values = np.empty((count * t, n_terms), dtype=np.float64)
                for c0 in range(0, count * t, chunk):
                    c1 = min(count * t, c0 + chunk)
                    column_rows = r0 + np.arange(c0, c1) // t
                    draws = np.ascontiguousarray(rng.random((c1 - c0, program.channels)).T)
                    values[c0:c1] = program.run(angles[column_rows], draws, groups, n_terms)
                per_row = np.ascontiguousarray(values.reshape(count, t, n_terms).transpose(0, 2, 1))
                out[r0 : r0 + count] = per_row.sum(axis=2) / t
        return out
