"""The ``batched-trajectories`` engine: gate noise by Monte Carlo trajectories, batched in torch.

Every depolarizing channel of the node's noise model is a mixture of Pauli operators:
``depolarize(p, n_qubits=k)`` applies the identity with probability ``1 − p`` and each of the
``4**k − 1`` other Pauli strings with probability ``p / (4**k − 1)``. Sampling one Pauli per
channel and simulating the resulting pure state is therefore an exact sample of the channel,
and the average of a term's expectation over trajectories is an *unbiased* estimate of the
density-matrix value, with standard deviation at most ``1/sqrt(trajectories)``.

The engine simulates all ``rows × trajectories`` statevectors as one batch-last
``(2**n, columns)`` tensor (column ``c`` is row ``c // T``, trajectory ``c % T``): each gate
is applied to every column at once (`local_ops.apply_local`; a rotation
``cos(θ/2) ψ + sin(θ/2) (−iG) ψ`` with per-column angles), then the channel's Pauli is applied
only to the columns that drew a non-identity one (a bit flip and a sign per qubit; Y is X·Z up
to a global phase, so real circuits stay real in float64). A term's expectation is
``Σ_y conj(ψ_y) phase_P(y) ψ_{y⊕m}``.

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
from dataclasses import dataclass

import numpy as np
import torch

from qpumesh.node.backends.local_ops import apply_local
from qpumesh.node.circuits import CompiledCircuit, FixedOp
from qpumesh.node.noise import NoiseConfig

__all__ = ["MAX_QUBITS", "TrajectoriesBackend"]

#: Largest register the engine accepts (like the statevector engine).
MAX_QUBITS = 24
#: Columns are simulated in chunks of about this many amplitudes (4 MiB of complex128),
#: at least one column.
_CHUNK_AMPLITUDES = 1 << 18
#: Separates this engine's random stream from the core's shot sampler under the same seed.
_STREAM_TAG = 0x7472616A  # "traj"
_ATOL = 1e-12


@dataclass(frozen=True)
class _Step:
    """One gate, then its depolarizing channel (``channel`` indexes the draws; -1 = none)."""

    targets: tuple[int, ...]
    matrix: torch.Tensor  # the unitary (fixed) or −iG (rotation)
    slot: int  # -1 for fixed gates
    channel: int
    probability: float


@dataclass(frozen=True)
class _TermGroup:
    """Terms sharing an X/Y mask: ``Re[phases @ (conj ψ · ψ[src])]``."""

    src: torch.Tensor
    phases: torch.Tensor
    columns: list[int]


class _Program:
    """A compiled circuit and noise profile as statevector steps with noise locations."""

    def __init__(self, compiled: CompiledCircuit, noise: NoiseConfig) -> None:
        self.n = compiled.n_qubits
        self.dim = 1 << self.n
        self.real = _is_real(compiled)
        self.dtype = torch.float64 if self.real else torch.complex128
        steps = []
        channels = 0
        for op in compiled.ops:
            p = noise.depolarizing(len(op.targets))
            channel = -1
            if p > 0:
                channel, channels = channels, channels + 1
            if isinstance(op, FixedOp):
                steps.append(_Step(op.targets, self._tensor(op.matrix), -1, channel, p))
            else:
                steps.append(_Step(op.targets, self._tensor(-1j * op.generator), op.slot, channel, p))
        self.steps = tuple(steps)
        self.channels = channels

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        if self.real:
            array = np.real(array)
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.dtype)

    def term_groups(self, terms: Sequence[str]) -> list[_TermGroup]:
        index = np.arange(self.dim, dtype=np.int64)
        by_mask: dict[int, list[int]] = {}
        for j, term in enumerate(terms):
            by_mask.setdefault(_mask(term, "XY"), []).append(j)
        groups = []
        for mask, columns in by_mask.items():
            phases = np.empty((len(columns), self.dim), dtype=np.complex128)
            for c, j in enumerate(columns):
                parity = _parity((index ^ mask) & _mask(terms[j], "YZ"))
                phases[c] = (1j ** terms[j].count("Y")) * (1 - 2 * parity.astype(np.float64))
            groups.append(_TermGroup(torch.from_numpy(index ^ mask), self._tensor(phases), columns))
        return groups

    def run(
        self, angles: np.ndarray, draws: np.ndarray, groups: list[_TermGroup], n_terms: int
    ) -> np.ndarray:
        """Simulate one trajectory per column.

        Args:
            angles: ``(columns, n_slots)`` slot angles of each column.
            draws: ``(channels, columns)`` uniforms in ``[0, 1)``.
            groups: The requested terms (`term_groups`).
            n_terms: Number of terms.

        Returns:
            ``(columns, n_terms)`` float64: each trajectory's term expectations.
        """
        columns = angles.shape[0]
        half = torch.from_numpy(np.ascontiguousarray(angles.T)) * 0.5  # (n_slots, columns)
        cos, sin = torch.cos(half), torch.sin(half)
        state = torch.zeros((self.dim, columns), dtype=self.dtype)
        state[0] = 1
        for step in self.steps:
            if step.slot < 0:
                state = apply_local(state, 2, self.n, step.targets, step.matrix)
            else:
                turned = apply_local(state, 2, self.n, step.targets, step.matrix)
                state = state * cos[step.slot] + turned * sin[step.slot]
            if step.channel >= 0:
                self._apply_channel(state, step, draws[step.channel])
        out = np.empty((columns, n_terms), dtype=np.float64)
        for group in groups:
            product = state * state[group.src] if self.real else state.conj() * state[group.src]
            values = group.phases @ product
            out[:, group.columns] = (values if self.real else values.real).numpy().T
        return out

    def _apply_channel(self, state: torch.Tensor, step: _Step, uniforms: np.ndarray) -> None:
        """Apply the sampled Pauli of `step`'s channel, in place, to the columns that drew one."""
        hit = np.flatnonzero(uniforms < step.probability)
        if hit.size == 0:
            return
        k = len(step.targets)
        others = (1 << (2 * k)) - 1
        # Given a hit, u / p is uniform in [0, 1): pick one of the 4**k − 1 non-identity strings.
        which = 1 + np.minimum((uniforms[hit] / step.probability * others).astype(np.int64), others - 1)
        index = torch.from_numpy(hit)
        sub = state.index_select(1, index)
        h = hit.size
        for position, q in enumerate(step.targets):
            letter = (which >> (2 * (k - 1 - position))) & 3  # I=0, X=1, Y=2, Z=3
            flip = torch.from_numpy((letter == 1) | (letter == 2)).view(1, 1, 1, h)
            sign = torch.ones((2, h), dtype=torch.float64)
            sign[1] = torch.from_numpy(1.0 - 2.0 * ((letter == 2) | (letter == 3)))
            view = sub.view(1 << q, 2, -1, h)
            view = torch.where(flip, view.flip(1), view) * sign.view(1, 2, 1, h).to(self.dtype)
            sub = view.reshape(self.dim, h)
        state.index_copy_(1, index, sub)


def _parity(x: np.ndarray) -> np.ndarray:
    """Parity of the set bits of each entry (numpy 1.26 has no ``bitwise_count``)."""
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x = x >> 1
    return out


def _mask(term: str, letters: str) -> int:
    n = len(term)
    return sum(1 << (n - 1 - q) for q, p in enumerate(term) if p in letters)


def _is_real(compiled: CompiledCircuit) -> bool:
    """Return True when every fixed unitary and every ``−iG`` is real (the state stays real)."""
    for op in compiled.ops:
        matrix = op.matrix if isinstance(op, FixedOp) else -1j * op.generator
        if np.abs(np.imag(matrix)).max(initial=0.0) > _ATOL:
            return False
    return True


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
        self._programs: weakref.WeakKeyDictionary[CompiledCircuit, _Program] = weakref.WeakKeyDictionary()
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

    def program(self, compiled: CompiledCircuit) -> _Program:
        """Return the torch program of `compiled` (built once, then cached)."""
        with self._lock:
            program = self._programs.get(compiled)
            if program is None:
                program = _Program(compiled, self.noise)
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
