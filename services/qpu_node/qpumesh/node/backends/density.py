"""The ``batched-density`` engine: exact gate noise for a whole batch, as Pauli vectors in torch.

`cirq.DensityMatrixSimulator` simulates one parameter set at a time and takes seconds for a
QLSTM gradient; this engine runs the node's noise model (`qpumesh.node.noise`) for every row
of a batch at once. Each row's density matrix is kept as its real Pauli vector
(`pauli_transfer`), all rows together as one batch-last ``(4**n, rows)`` float64 tensor, and

* every gate is followed by its depolarizing channel (``NoiseConfig.depolarizing``: ``p1``
  after one-qubit gates, ``p2`` after two-qubit gates, none after three-qubit gates -- fixed
  and parametrised alike); the channel's diagonal PTM is multiplied into the gate's PTM, so
  noise costs nothing extra;
* operations are reordered like the statevector engine's (operations on disjoint qubits
  commute, and a channel sits on its gate's qubits) so that fixed gates form runs; on up to
  `DENSE_MAX_QUBITS` qubits a run (with its channels) becomes one ``4**n × 4**n`` matrix,
  applied as a gather times a scale when it is monomial (Clifford gates: CNOT, H, S, CZ...)
  and as one matmul otherwise; on larger registers gate by gate, consecutive monomial gates
  composed into one gather (a CNOT ladder with its channels is one step);
* a one-qubit rotation with its channel is ``A + cos θ B + sin θ C`` (4 × 4); its per-row
  action ``out[a] = Σ_s c_s[a] · v[a XOR s]`` takes one multiply-add per nonzero XOR-diagonal
  ``s`` (two for Rx/Ry/Rz), with the coefficients of all slots computed in one go per call;
  multi-qubit rotations apply the stacked ``[A; B; C]`` in one matmul;
* a Pauli term's expectation is one entry of the vector: measuring is a gather.

The results equal Cirq's density-matrix simulation up to float64 rounding (tests: 1e-10).
Readout error and shots are applied by the node core on top, as for every engine.

Memory bound: one parameter set takes ``8 · 4**n`` bytes (8 MiB at 10 qubits, 32 MiB at 11,
128 MiB at 12) and every gate costs ``O(4**n)`` per row, so the engine accepts at most
`MAX_QUBITS` = 10 qubits; rows are processed in chunks of at most `_MAX_CHUNK_ENTRIES`
entries (32 MiB, four rows at 10 qubits). Beyond that, trajectories (`trajectories`) cost
``O(2**n)`` per trajectory and are the better method.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qpumesh.node.backends.fusion import schedule
from qpumesh.node.backends.local_ops import apply_local, as_monomial, compose_gathers, full_register_gather
from qpumesh.node.backends.pauli_transfer import (
    depolarizing_diagonal,
    initial_vector,
    rotation_transfer,
    term_indices,
    unitary_transfer,
)
from qpumesh.node.cancellation import checkpoint
from qpumesh.node.circuits import CompiledCircuit, FixedOp
from qpumesh.node.noise import NoiseConfig

__all__ = ["DENSE_MAX_QUBITS", "MAX_QUBITS", "DensityBackend"]

#: Largest register the engine accepts (memory ``8 · 4**n`` bytes per row; see the module docstring).
MAX_QUBITS = 10
#: Registers up to this size fuse runs of fixed gates into one ``4**n × 4**n`` matrix.
DENSE_MAX_QUBITS = 3
#: Rows are simulated in chunks of about this many entries (cache-sized) ...
_CHUNK_ENTRIES = 1 << 14
#: ... but at least this many rows, unless that exceeds `_MAX_CHUNK_ENTRIES`.
_MIN_CHUNK_ROWS = 64
#: Memory bound of one chunk (2**22 float64 = 32 MiB); a chunk holds at least one row.
_MAX_CHUNK_ENTRIES = 1 << 22

_ATOL = 1e-12
#: ``a XOR s`` for s = 0..3 over the Pauli letters I, X, Y, Z of one qubit.
_XOR = torch.tensor([[a ^ s for a in range(4)] for s in range(4)], dtype=torch.int64)


@dataclass(frozen=True)
class _Dense:
    """``new = matrix @ old`` on the whole register."""

    matrix: torch.Tensor


@dataclass(frozen=True)
class _Gather:
    """``new[y] = scale[y] * old[src[y]]``: a monomial PTM on the whole register."""

    src: torch.Tensor
    scale: torch.Tensor


@dataclass(frozen=True)
class _Local:
    """A fixed PTM (gate and channel) on `targets`."""

    targets: tuple[int, ...]
    matrix: torch.Tensor


@dataclass(frozen=True)
class _Rot1:
    """A one-qubit rotation (and channel) of slot `slot`; register viewed ``(left, 4, right, rows)``.

    ``shifts`` are the XOR-diagonals with nonzero coefficients; `row` indexes the table of
    one-qubit rotation coefficients. On large registers a rotation about a Pauli axis (one
    shift besides 0) is applied in place: each coupled pair ``(p, p XOR s)`` of `pairs` is
    rotated and each component of `scaled` multiplied, touching only what changes.
    """

    left: int
    right: int
    slot: int
    row: int
    shifts: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...] = ()
    scaled: tuple[int, ...] = ()


@dataclass(frozen=True)
class _RotK:
    """A multi-qubit rotation (and channel): stacked ``[A; B; C]`` on `targets`."""

    targets: tuple[int, ...]
    slot: int
    stacked: torch.Tensor


_Step = _Dense | _Gather | _Local | _Rot1 | _RotK


class _Program:
    """A compiled circuit and noise profile as torch steps on Pauli vectors. Immutable."""

    def __init__(self, compiled: CompiledCircuit, noise: NoiseConfig) -> None:
        self.n = compiled.n_qubits
        self.dim = 1 << (2 * self.n)
        self.noise = noise
        tables: list[np.ndarray] = []  # per one-qubit rotation: (3, 4, 4) A, B, C by XOR-diagonal
        self.rot1_slots: list[int] = []
        self.steps: list[_Step] = []
        run: list[FixedOp] = []
        for op in schedule(compiled.ops):
            if isinstance(op, FixedOp):
                run.append(op)
                continue
            self._flush(run)
            a, b, c = (self._channel(len(op.targets)) @ m for m in rotation_transfer(op.generator))
            if len(op.targets) == 1:
                (q,) = op.targets
                by_shift = np.stack([_xor_diagonals(m) for m in (a, b, c)])  # (3, s, a)
                shifts = tuple(s for s in range(4) if np.abs(by_shift[:, s]).max() > _ATOL)
                pairs, scaled = _in_place_plan(by_shift, shifts) if self.n > DENSE_MAX_QUBITS else ((), ())
                self.steps.append(
                    _Rot1(
                        1 << (2 * q),
                        1 << (2 * (self.n - q - 1)),
                        op.slot,
                        len(tables),
                        shifts,
                        pairs,
                        scaled,
                    )
                )
                tables.append(by_shift)
                self.rot1_slots.append(op.slot)
            else:
                stacked = torch.from_numpy(np.ascontiguousarray(np.concatenate([a, b, c])))
                self.steps.append(_RotK(op.targets, op.slot, stacked))
        self._flush(run)
        table = np.stack(tables) if tables else np.zeros((0, 3, 4, 4))
        # (n_rot1, s, a, 1) each, broadcast against per-row cos/sin (n_rot1, 1, 1, rows).
        self.rot1_parts = [torch.from_numpy(np.ascontiguousarray(table[:, i, :, :, None])) for i in range(3)]
        self.rot1_index = torch.tensor(self.rot1_slots, dtype=torch.int64)
        start = torch.from_numpy(initial_vector(self.n))
        self.initial = start
        self.skip_first = False
        if self.steps and isinstance(self.steps[0], _Dense | _Gather):
            self.initial = self._apply_fixed(self.steps[0], start.view(-1, 1)).view(-1)
            self.skip_first = True

    def _channel(self, k: int) -> np.ndarray:
        """Return the depolarizing PTM after a ``k``-qubit gate (identity when none)."""
        return np.diag(depolarizing_diagonal(k, self.noise.depolarizing(k)))

    def _local_transfer(self, op: FixedOp) -> np.ndarray:
        return np.asarray(self._channel(len(op.targets)) @ unitary_transfer(op.matrix), dtype=np.float64)

    def _flush(self, run: list[FixedOp]) -> None:
        """Append the steps of a run of fixed gates (with their channels) and empty it."""
        if run:
            self.steps.extend(self._dense_run(run) if self.n <= DENSE_MAX_QUBITS else self._gate_run(run))
        run.clear()

    def _dense_run(self, run: list[FixedOp]) -> list[_Step]:
        """Return the whole run as one full-register PTM (a gather when monomial)."""
        full = torch.eye(self.dim, dtype=torch.float64)
        for op in run:
            full = apply_local(full, 4, self.n, op.targets, torch.from_numpy(self._local_transfer(op)))
        return [_as_step(full)]

    def _gate_run(self, run: list[FixedOp]) -> list[_Step]:
        """Return the run gate by gate; consecutive monomial PTMs (Cliffords) as one gather."""
        steps: list[_Step] = []
        src: np.ndarray | None = None
        scale = np.ones(0)
        for op in run:
            local = self._local_transfer(op)
            monomial = as_monomial(local)
            if monomial is None:
                if src is not None:
                    steps.append(_gather(src, scale))
                    src = None
                steps.append(_Local(op.targets, torch.from_numpy(local)))
                continue
            gather = full_register_gather(*monomial, 4, self.n, op.targets)
            src, scale = gather if src is None else compose_gathers((src, scale), gather)
        if src is not None:
            steps.append(_gather(src, scale))
        return steps

    @staticmethod
    def _apply_fixed(step: _Dense | _Gather, state: torch.Tensor) -> torch.Tensor:
        if isinstance(step, _Dense):
            return step.matrix @ state
        return state[step.src] * step.scale

    def run(self, angles: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        """Return the expectations ``(rows, len(terms))`` for slot angles ``(rows, n_slots)``.

        Args:
            angles: float64 slot angles.
            terms: Pauli-vector indices of the terms (`term_indices`).
        """
        rows = angles.shape[0]
        cos_all, sin_all = torch.cos(angles.t()), torch.sin(angles.t())  # (n_slots, rows)
        coeffs: torch.Tensor | None = None
        if self.rot1_slots:
            c = cos_all[self.rot1_index].view(-1, 1, 1, rows)
            s = sin_all[self.rot1_index].view(-1, 1, 1, rows)
            base, cos_part, sin_part = self.rot1_parts
            coeffs = torch.addcmul(torch.addcmul(base, c, cos_part), s, sin_part)  # (n_rot1, s, a, rows)
        state = self.initial.view(-1, 1).expand(self.dim, rows).contiguous()
        steps = self.steps[1:] if self.skip_first else self.steps
        for step in steps:
            if isinstance(step, _Rot1):
                assert coeffs is not None
                view = state.view(step.left, 4, step.right, rows)
                table = coeffs[step.row]
                if step.pairs or step.scaled:  # in place (the state is this call's own tensor)
                    shift = step.shifts[-1]
                    for p, q in step.pairs:
                        vp, vq = view[:, p], view[:, q]
                        new_p = torch.addcmul(vp * table[0, p], vq, table[shift, p])
                        new_q = torch.addcmul(vq * table[0, q], vp, table[shift, q])
                        vp.copy_(new_p)
                        vq.copy_(new_q)
                    for p in step.scaled:
                        view[:, p].mul_(table[0, p])
                    continue
                out: torch.Tensor | None = None
                for shift in step.shifts:
                    source = view if shift == 0 else view.index_select(1, _XOR[shift])
                    term = source * table[shift].view(1, 4, 1, rows)
                    out = term if out is None else out.add_(term)
                assert out is not None
                state = out.view(self.dim, rows)
            elif isinstance(step, _RotK):
                parts = apply_local(state, 4, self.n, step.targets, step.stacked)
                state = torch.addcmul(
                    torch.addcmul(parts[0], parts[1], cos_all[step.slot]), parts[2], sin_all[step.slot]
                )
            elif isinstance(step, _Local):
                state = apply_local(state, 4, self.n, step.targets, step.matrix)
            else:
                state = self._apply_fixed(step, state)
        return state[terms].t()


def _in_place_plan(
    by_shift: np.ndarray, shifts: tuple[int, ...]
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Plan a Pauli-axis rotation in place: ``(coupled pairs, components to scale)``.

    Returns two empty tuples when the rotation mixes more than one pair (then the general
    XOR-diagonal form runs).
    """
    if len(shifts) != 2 or shifts[0] != 0:
        return (), ()
    s = shifts[1]
    coupled = [a for a in range(4) if np.abs(by_shift[:, s, a]).max() > _ATOL]
    pairs = tuple((a, a ^ s) for a in coupled if a < a ^ s)
    in_pairs = {x for pair in pairs for x in pair}
    if set(coupled) != in_pairs:
        return (), ()
    unit = np.array([1.0, 0.0, 0.0])  # A = 1, B = C = 0: the component is unchanged
    scaled = tuple(
        a for a in range(4) if a not in in_pairs and np.abs(by_shift[:, 0, a] - unit).max() > _ATOL
    )
    return pairs, scaled


def _xor_diagonals(matrix: np.ndarray) -> np.ndarray:
    """``out[s, a] = matrix[a, a XOR s]`` of a 4 × 4 matrix."""
    index = np.arange(4)
    return np.stack([matrix[index, index ^ s] for s in range(4)])


def _gather(src: np.ndarray, scale: np.ndarray) -> _Gather:
    return _Gather(torch.from_numpy(src.astype(np.int64)), torch.from_numpy(scale.reshape(-1, 1).copy()))


def _as_step(full: torch.Tensor) -> _Dense | _Gather:
    """Return a fused full-register PTM as a gather when it is monomial, else as a matmul."""
    monomial = as_monomial(full.numpy())
    if monomial is not None:
        return _gather(*monomial)
    return _Dense(full.contiguous())


class DensityBackend:
    """Exact noisy engine: the node's gate noise on Pauli vectors of the whole batch. Thread-safe.

    Args:
        noise: The node's noise profile (its gate noise; readout is applied by the core).
    """

    name = "batched-density"

    def __init__(self, noise: NoiseConfig) -> None:
        self.noise = noise
        self._programs: weakref.WeakKeyDictionary[CompiledCircuit, _Program] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def supports(self, compiled: CompiledCircuit) -> str | None:
        """None when the register is within the engine's memory bound (`MAX_QUBITS`)."""
        if compiled.n_qubits > MAX_QUBITS:
            return (
                f"the batched density-matrix engine simulates at most {MAX_QUBITS} qubits "
                f"(8·4**n bytes per parameter set: 8 MiB at {MAX_QUBITS} qubits, "
                f"{8 * 4**compiled.n_qubits // 2**20} MiB at {compiled.n_qubits})"
            )
        return None

    def program(self, compiled: CompiledCircuit) -> _Program:
        """Return the torch program of `compiled` (built once, then cached)."""
        with self._lock:
            program = self._programs.get(compiled)
            if program is None:
                program = _Program(compiled, self.noise)
                self._programs[compiled] = program
            return program

    def expectations(self, compiled: CompiledCircuit, terms: Sequence[str], angles: np.ndarray) -> np.ndarray:
        """Exact noisy Pauli-term expectations, ``(rows, len(terms))`` float64."""
        program = self.program(compiled)
        rows = angles.shape[0]
        out = np.empty((rows, len(terms)), dtype=np.float64)
        chunk = max(_CHUNK_ENTRIES // program.dim, min(_MIN_CHUNK_ROWS, _MAX_CHUNK_ENTRIES // program.dim), 1)
        index = torch.from_numpy(term_indices(terms))
        with torch.no_grad():
            for start in range(0, rows, chunk):
                checkpoint()
                part = torch.from_numpy(np.ascontiguousarray(angles[start : start + chunk], dtype=np.float64))
                out[start : start + chunk] = program.run(part, index).numpy()
        return out
