"""Where the QLSTM's circuits run: the ``Executor`` protocol and its task types.

The model never talks to a node directly. For every time step it hands an
executor the list of all its sub-circuit evaluations (4 gates x M partitions,
each for the whole mini-batch) and gets all results back from one *round*: the
mesh executor (``mesh.MeshExecutor``) sends them to the nodes concurrently, the
in-process executor (``mesh.in_process.InProcessExecutor``) runs them on a local
``NodeCore``. Both use the same engine code, so a mesh run and an in-process run
with the same seed give the same numbers.

The model needs only ``run_round`` and ``stats`` (``RoundRunner``); the job runner
needs the whole ``Executor``: the nodes' sizes for the planner, the planner's
assignment, node statistics and fault events for the job's history. Executors
without nodes derive from ``LocalExecutor``, which answers those as "one local
node, no limits, no faults", so callers never ask which kind they hold.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.wire.circuits import PauliTerms, WireCircuit
from qpumesh.wire.hardware import TaskTime, round_seconds

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CircuitTask:
    """One circuit evaluated for a batch of parameter sets.

    Attributes:
        circuit: the serialised circuit (built once per sub-circuit and reused).
        observables: dense Pauli-term observables, one output column each.
        symbols: the column names of ``values``: every free symbol of the circuit.
        values: float64 parameters, shape (rows, len(symbols)).
        jacobian: also return d(expectations)/d(symbols) (the node picks the method and
            reports what the parameter-shift rule would cost on hardware).
        cotangents: instead of evaluating, return the vector-Jacobian product of these
            upstream gradients, float64 of shape (rows, len(observables)): row r's
            ``cotangents[r] @ d(expectations[r])/d(symbols)``, of shape (rows, len(symbols)).
            The node computes it in one weighted adjoint sweep (exact requests) or by the
            shift rule; no expectations come back. Excludes ``jacobian``.
        shots: measurement shots per observable term (0 = exact).
        seed: seed of the shot sampler (ignored when shots == 0).
        key: stable identity of the task (e.g. "part/1", the QLSTM's partition 1); the
            mesh executor routes each key to the node the planner assigned it.
    """

    circuit: WireCircuit
    observables: Sequence[PauliTerms]
    symbols: tuple[str, ...]
    values: FloatArray
    jacobian: bool = False
    shots: int = 0
    seed: int | None = None
    key: str = ""
    cotangents: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.cotangents is None:
            return
        if self.jacobian:
            raise ValueError(f"task {self.key or '?'}: ask for a Jacobian or a VJP (cotangents), not both")
        expected = (int(self.values.shape[0]), len(self.observables))
        if self.cotangents.shape != expected:
            raise ValueError(
                f"task {self.key or '?'}: cotangents of shape {self.cotangents.shape}, expected {expected} "
                "(rows, observables)"
            )

    @property
    def method(self) -> str:
        """The node call this task is: "Evaluate", or "ShiftGradient" (a Jacobian or a VJP)."""
        return "ShiftGradient" if self.jacobian or self.cotangents is not None else "Evaluate"


@dataclass(frozen=True)
class CircuitResult:
    """The answer to one ``CircuitTask``.

    Attributes:
        expectations: shape (rows, n_observables); None for a VJP task (``cotangents``).
        jacobian: shape (rows, n_observables, n_symbols) when asked for, else None.
        node: the node (or "local") that answered.
        executions: circuit executions a hardware QPU needs for the task, as the node
            reports it: one per row, plus two per row and differentiated gate angle for
            a Jacobian (the parameter-shift rule, whichever method the emulator used); a
            VJP task, which evaluates nothing, only the two per row and angle.
        shots: measurement shots those executions take (0 when exact).
        hardware_seconds: the answering call's time on the node's hardware profile.
        node_seconds: the answering call's queue and execute time at the node (emulation).
        overhead_seconds: the task's time outside the node's QPU: its wall time (all
            attempts, backoffs and hedge waits) minus ``node_seconds``; 0 in process.
        vjp: shape (rows, n_symbols) for a VJP task, else None.
    """

    expectations: FloatArray | None
    jacobian: FloatArray | None
    node: str
    hardware_seconds: float = 0.0
    node_seconds: float = 0.0
    overhead_seconds: float = 0.0
    executions: int = 0
    shots: int = 0
    vjp: FloatArray | None = None


def evaluation_cost(task: CircuitTask) -> tuple[int, int]:
    """Return (executions, shots) of evaluating ``task`` without a Jacobian on hardware.

    One execution per row; each distinct non-identity Pauli term is measured with
    ``task.shots`` shots (the node's convention for ``shift_rule_shots``). The executors
    report the node's own counts instead (equal to these without error mitigation, larger
    with zero-noise extrapolation's folded circuits); this is the unmitigated cost, for
    executors without a node (test doubles) and estimates.
    """
    rows = int(task.values.shape[0])
    measured = len({string for terms in task.observables for _, string in terms if string.strip("I")})
    return rows, rows * task.shots * measured


@dataclass
class ExecutorStats:
    """Counters an executor keeps for the job's metrics.

    Attributes:
        rounds: rounds run.
        tasks: tasks run (one request each, retries and hedges not counted).
        circuit_evaluations: circuit executions a hardware QPU would have run for those
            tasks (``CircuitResult.executions``, the nodes' numbers).
        shots: measurement shots those executions take (0 for exact runs).

    ``hardware_seconds`` adds up each round's estimated wall time on the nodes' hardware
    (``qpumesh.wire.hardware.round_seconds``: the slowest node plus its network time).
    """

    rounds: int = 0
    tasks: int = 0
    circuit_evaluations: int = 0
    shots: int = 0
    hardware_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_round(self, results: Sequence[CircuitResult]) -> None:
        """Count one finished round and what its results say hardware would have run."""
        executions = sum(r.executions for r in results)
        shots = sum(r.shots for r in results)
        with self.lock:
            self.rounds += 1
            self.tasks += len(results)
            self.circuit_evaluations += executions
            self.shots += shots

    def record_hardware(self, results: Sequence[CircuitResult]) -> None:
        """Add the hardware wall time of one round's ``results`` (its critical path)."""
        seconds = round_seconds(TaskTime(r.node, r.hardware_seconds, r.overhead_seconds) for r in results)
        with self.lock:
            self.hardware_seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        """Return every counter (every field but the lock, subclasses' too) as a plain dict."""
        with self.lock:
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "lock"}


class RoundRunner(Protocol):
    """What the model needs: run every task of one round, and count rounds."""

    @property
    def stats(self) -> ExecutorStats:
        """The executor's counters."""
        ...

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Evaluate all ``tasks`` (concurrently where possible) and return results in order."""
        ...


class Executor(RoundRunner, Protocol):
    """A ``RoundRunner`` that also describes where it runs: what the job runner needs."""

    def node_max_qubits(self) -> list[int]:
        """Return the max qubits of every node that can take work (empty: no limit).

        The order is the one ``set_assignment``'s indices refer to.
        """
        ...

    def set_assignment(self, assignment: Mapping[str, int]) -> None:
        """Route each task key to a node: an index into ``node_max_qubits()``'s order."""
        ...

    def node_stats(self) -> list[cpb.NodeStats]:
        """Return the current statistics of every node."""
        ...

    def drain_fault_events(self) -> list[cpb.FaultEvent]:
        """Return what went wrong with nodes since the last call, oldest first."""
        ...

    def fault_counts(self) -> dict[tuple[str, str], int]:
        """Return how many fault events of each (node, kind) happened since the start."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


LOCAL_ADDRESS = "in-process"
"""The address ``node_stats`` gives the one node of an executor without nodes."""


class LocalExecutor:
    """Base of executors that run every circuit in this process: one node, no limits, no faults.

    Subclasses implement ``run_round`` (counting it in ``stats``) and may describe
    their node with ``local_node``.
    """

    def __init__(self) -> None:
        self.stats = ExecutorStats()

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Evaluate ``tasks``; implemented by subclasses."""
        raise NotImplementedError

    def local_node(self) -> cpb.NodeStats:
        """Describe the local node (id, size, engine); the address and counters are filled in."""
        return cpb.NodeStats(node_id="local")

    def node_max_qubits(self) -> list[int]:
        """No node limits: the planner keeps every gate in one circuit unless told otherwise."""
        return []

    def set_assignment(self, assignment: Mapping[str, int]) -> None:
        """Nothing to route: every task runs here."""

    def node_stats(self) -> list[cpb.NodeStats]:
        """One pseudo-node ``in-process``, healthy, with the tasks run as its calls."""
        node = self.local_node()
        node.address = LOCAL_ADDRESS
        node.healthy = True
        node.calls = self.stats.snapshot()["tasks"]
        return [node]

    def drain_fault_events(self) -> list[cpb.FaultEvent]:
        """Nothing goes wrong between here and here."""
        return []

    def fault_counts(self) -> dict[tuple[str, str], int]:
        """No faults, ever."""
        return {}

    def close(self) -> None:
        """Nothing to release."""
