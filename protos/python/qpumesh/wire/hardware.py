"""The hardware cost model: how long a request would take on a real QPU, and a round on a mesh of them.

A node runs its circuits on an emulator, in emulator time. What the paper's users want to
know is how long the same work would take on hardware. A `HardwareProfile` holds the
timings that decide it (docs/hardware.md cites the published numbers of the presets):

* ``gate_1q_seconds``, ``gate_2q_seconds`` -- one gate; a gate on three qubits costs as
  two-qubit gate (a lower bound: hardware decomposes it into several);
* ``readout_seconds`` -- measuring the register once;
* ``shot_seconds`` -- the rest of one shot: reset, state preparation, repetition delay
  (on neutral atoms: loading and rearranging the array);
* ``circuit_seconds`` -- per circuit submitted: loading a new circuit (or new parameters
  and measurement basis) into the control system.

**One shot** of a circuit takes its *schedule* -- the sum over its moments of the slowest
gate in each moment (gates in one moment run in parallel) -- plus the readout and the shot
overhead (`HardwareProfile.shot_duration`).

**A request** runs ``executions`` parameter sets of one circuit; every measured
(non-identity) Pauli term is measured in its own basis, so it is ``executions x terms``
circuits of ``shots`` shots each (`HardwareProfile.request_seconds`):

    seconds = circuits x circuit_seconds + circuits x shots x shot_duration

Exact requests (``shots = 0``) are costed at ``exact_shots`` shots per circuit (default
1,000): an exact expectation is the limit of many shots, and hardware cannot run zero.

**A round** of a training step sends every task to the mesh at once and waits for all of
them. Each node runs its tasks one after another (one QPU), so the round takes, on
hardware, the slowest node's sum of hardware seconds plus the time its calls spent outside
the QPU: the network (a call's wall time minus the node's queue and execute time),
failed attempts, backoffs and the wait before a hedge (`round_seconds`).

This module is pure arithmetic with no dependency but the standard library (and, for
`moment_arities`, cirq), shared by the node (which prices its requests) and the
coordinator (which adds up rounds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cirq

__all__ = [
    "DEFAULT_EXACT_SHOTS",
    "PRESETS",
    "HardwareProfile",
    "TaskTime",
    "load_profile",
    "moment_arities",
    "round_seconds",
]

DEFAULT_EXACT_SHOTS = 1000
"""Shots per circuit at which an exact (``shots = 0``) request is costed."""

_TIME_FIELDS = ("shot_seconds", "circuit_seconds", "gate_1q_seconds", "gate_2q_seconds", "readout_seconds")


@dataclass(frozen=True)
class HardwareProfile:
    """The timings of one kind of QPU (all in seconds).

    Attributes:
        name: preset name or a user's label, reported in replies and GetInfo.
        shot_seconds: per shot, besides gates and readout: reset, preparation, repetition delay.
        circuit_seconds: per circuit submitted (parameter set x measurement basis).
        gate_1q_seconds: one single-qubit gate.
        gate_2q_seconds: one two-qubit gate (three-qubit gates cost the same).
        readout_seconds: one measurement of the register.
        exact_shots: shots at which an exact request is costed.

    Raises:
        ValueError: a time that is negative or not finite, or ``exact_shots < 1``.
    """

    name: str
    shot_seconds: float
    circuit_seconds: float
    gate_1q_seconds: float
    gate_2q_seconds: float
    readout_seconds: float
    exact_shots: int = DEFAULT_EXACT_SHOTS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a hardware profile needs a non-empty name")
        for name in _TIME_FIELDS:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"hardware profile {self.name!r}: {name} must be a finite number >= 0, got {value!r}"
                )
        shots = self.exact_shots
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ValueError(f"{self.name!r}: exact_shots must be an integer >= 1; got {shots}")

    def gate_seconds(self, arity: int) -> float:
        """Time of one gate on ``arity`` qubits (0 for an empty moment or a global phase)."""
        if arity <= 0:
            return 0.0
        return self.gate_1q_seconds if arity == 1 else self.gate_2q_seconds

    def shot_duration(self, arities: Sequence[int]) -> float:
        """Time of one shot: the schedule (slowest gate per moment, summed), readout, shot overhead.

        Args:
            arities: per moment, the largest number of qubits of one of its gates
                (`moment_arities`).
        """
        return math.fsum(self.gate_seconds(a) for a in arities) + self.readout_seconds + self.shot_seconds

    def request_seconds(self, executions: int, terms: int, shots: int, arities: Sequence[int]) -> float:
        """Hardware time of ``executions`` parameter sets of one circuit, ``terms`` bases each.

        Args:
            executions: circuit executions (parameter sets, shifted ones included).
            terms: measured (non-identity) Pauli terms: one measurement basis each.
            shots: shots per circuit; 0 = exact, costed at ``exact_shots``.
            arities: the circuit's schedule (`moment_arities`).
        """
        circuits = executions * terms
        per_circuit = shots if shots > 0 else self.exact_shots
        return circuits * self.circuit_seconds + circuits * per_circuit * self.shot_duration(arities)

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-ready values (the format `load_profile` reads)."""
        return asdict(self)


# Published device timings, rounded; docs/hardware.md gives each number's source and whether it
# was verified (superconducting: all four; trapped-ion: the gates; neutral-atom: none).
PRESETS: Mapping[str, HardwareProfile] = {
    "superconducting": HardwareProfile(
        name="superconducting",  # IBM Eagle r3 (ibm_sherbrooke): sx 56.9 ns, ECR 533 ns, readout 1244 ns
        gate_1q_seconds=57e-9,
        gate_2q_seconds=533e-9,
        readout_seconds=1.2e-6,
        shot_seconds=250e-6,  # IBM backends' default repetition delay (rep_delay)
        circuit_seconds=5e-3,
    ),
    "trapped-ion": HardwareProfile(
        name="trapped-ion",  # IonQ Aria (Azure Quantum IonQ page; readout and reset unverified)
        gate_1q_seconds=135e-6,
        gate_2q_seconds=600e-6,
        readout_seconds=300e-6,
        shot_seconds=20e-6,  # reset
        circuit_seconds=50e-3,
    ),
    "neutral-atom": HardwareProfile(
        name="neutral-atom",  # Rydberg arrays: orders of magnitude, unverified (docs/hardware.md)
        gate_1q_seconds=1e-6,
        gate_2q_seconds=250e-9,
        readout_seconds=5e-3,  # fluorescence imaging
        shot_seconds=200e-3,  # loading and rearranging the atom array
        circuit_seconds=50e-3,
    ),
}
"""The presets ``--hardware`` accepts by name."""

DEFAULT_PROFILE = "superconducting"
"""The preset a node uses when none is configured."""


def load_profile(text: str) -> HardwareProfile:
    """Read a profile: a preset name, or the path of a JSON file with the fields of `HardwareProfile`.

    The JSON file holds one object: ``name`` and the five ``*_seconds`` fields (required),
    ``exact_shots`` (optional).

    Raises:
        ValueError: not a preset and not a readable file, malformed JSON, a missing or
            unknown field, or a bad value -- the message says which.
    """
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"expected a hardware preset ({', '.join(PRESETS)}) or the path of a JSON profile, got {text!r}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"hardware profile {text}: cannot read it as JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"hardware profile {text}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(HardwareProfile)}
    unknown = sorted(set(data) - known)
    missing = sorted({"name", *_TIME_FIELDS} - set(data))
    if unknown or missing:
        raise ValueError(
            f"hardware profile {text}: unknown field(s) {unknown}, missing field(s) {missing}; "
            f"the fields are {sorted(known)}"
        )
    return HardwareProfile(**data)


def moment_arities(circuit: cirq.AbstractCircuit) -> tuple[int, ...]:
    """Per moment of ``circuit``, the largest qubit count of one of its gates (0: no gate).

    Sub-circuits (``cirq.CircuitOperation``) are unrolled first; global phases act on no
    qubit and cost nothing.
    """
    import cirq

    flat = cirq.unroll_circuit_op(circuit, deep=True, tags_to_check=None)
    return tuple(max((len(op.qubits) for op in moment), default=0) for moment in flat)


@dataclass(frozen=True)
class TaskTime:
    """What one task of a round cost on hardware, and where.

    Attributes:
        node: the node that answered.
        hardware_seconds: the node's emulated QPU time for the answering call.
        overhead_seconds: the task's time outside any QPU: the network (the call's wall
            time minus the node's queue and execute time), failed attempts, backoffs and
            the wait before a hedge was sent.
    """

    node: str
    hardware_seconds: float
    overhead_seconds: float = 0.0


def round_seconds(tasks: Iterable[TaskTime]) -> float:
    """Hardware wall time of one round: its critical path over the nodes.

    A node runs its tasks one after another, so its time is the sum of their hardware
    seconds plus the largest overhead among them (calls travel concurrently); the round
    ends when the slowest node is done.
    """
    qpu: dict[str, list[float]] = {}
    overhead: dict[str, float] = {}
    for task in tasks:
        qpu.setdefault(task.node, []).append(task.hardware_seconds)
        overhead[task.node] = max(overhead.get(task.node, 0.0), task.overhead_seconds)
    return max((math.fsum(times) + overhead[node] for node, times in qpu.items()), default=0.0)
