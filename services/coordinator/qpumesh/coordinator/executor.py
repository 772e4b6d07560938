"""Where the QLSTM's circuits run: the ``Executor`` protocol and the in-process engine.

The model never talks to a node directly. For every time step it hands an
executor the list of all its sub-circuit evaluations (4 gates x M partitions,
each for the whole mini-batch) and gets all results back from one *round*: the
mesh executor (``pool.MeshExecutor``) sends them to the nodes concurrently, the
in-process executor runs them on a local ``NodeCore``. Both use the same engine
code, so a mesh run and an in-process run with the same seed give the same numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from qpumesh.wire.circuits import PauliTerms, WireCircuit

if TYPE_CHECKING:
    from qpumesh.node.core import NodeConfig

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CircuitTask:
    """One circuit evaluated for a batch of parameter sets.

    Attributes:
        circuit: the serialised circuit (built once per sub-circuit and reused).
        observables: dense Pauli-term observables, one output column each.
        symbols: the column names of ``values``: every free symbol of the circuit.
        values: float64 parameters, shape (rows, len(symbols)).
        jacobian: also return d(expectations)/d(symbols) by parameter shift.
        shots: measurement shots per observable term (0 = exact).
        seed: seed of the shot sampler (ignored when shots == 0).
        key: stable identity of the sub-circuit (e.g. "f/1": gate f, partition 1);
            the mesh executor routes each key to the node the planner assigned it.
    """

    circuit: WireCircuit
    observables: Sequence[PauliTerms]
    symbols: tuple[str, ...]
    values: FloatArray
    jacobian: bool = False
    shots: int = 0
    seed: int | None = None
    key: str = ""


@dataclass(frozen=True)
class CircuitResult:
    """The answer to one ``CircuitTask``.

    Attributes:
        expectations: shape (rows, n_observables).
        jacobian: shape (rows, n_observables, n_symbols) when asked for, else None.
        node: the node (or "local") that answered.
    """

    expectations: FloatArray
    jacobian: FloatArray | None
    node: str


@dataclass
class ExecutorStats:
    """Counters an executor keeps for the job's metrics."""

    rounds: int = 0
    tasks: int = 0
    circuit_evaluations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_round(self, tasks: Sequence[CircuitTask]) -> None:
        """Count one round of ``tasks`` and the circuit evaluations it implies."""
        evaluations = 0
        for task in tasks:
            rows = int(task.values.shape[0])
            # One unshifted evaluation per row, plus two shifted ones per parameter slot.
            per_row = 1 + (2 * len(task.symbols) if task.jacobian else 0)
            evaluations += rows * per_row
        with self.lock:
            self.rounds += 1
            self.tasks += len(tasks)
            self.circuit_evaluations += evaluations

    def snapshot(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        with self.lock:
            return {
                "rounds": self.rounds,
                "tasks": self.tasks,
                "circuit_evaluations": self.circuit_evaluations,
            }


class Executor(Protocol):
    """Runs every task of one round and returns their results in order."""

    stats: ExecutorStats

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Evaluate all ``tasks`` (concurrently where possible) and return results in order."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


class InProcessExecutor:
    """Runs the circuits on a ``NodeCore`` in this process (no gRPC).

    Args:
        config: the node configuration to emulate (engine, noise, limits).
    """

    def __init__(self, config: NodeConfig | None = None) -> None:
        # Imported here so the model code (and its tests) can use the protocol and the
        # task types without loading the node's engines.
        from qpumesh.node.core import NodeConfig, NodeCore

        self.core = NodeCore(config or NodeConfig(node_id="local"))
        self.stats = ExecutorStats()

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Evaluate ``tasks`` one after another on the local core."""
        self.stats.record_round(tasks)
        return [self._run(task) for task in tasks]

    def _run(self, task: CircuitTask) -> CircuitResult:
        circuit = task.circuit
        if task.jacobian:
            grad = self.core.shift_gradient(
                circuit.hash,
                circuit.cirq_json,
                task.observables,
                task.symbols,
                task.values,
                include_values=True,
                shots=task.shots,
                seed=task.seed,
            )
            assert grad.expectations is not None
            return CircuitResult(grad.expectations, grad.jacobian, self.core.config.node_id)
        result = self.core.evaluate(
            circuit.hash,
            circuit.cirq_json,
            task.observables,
            task.symbols,
            task.values,
            shots=task.shots,
            seed=task.seed,
        )
        return CircuitResult(result.expectations, None, self.core.config.node_id)

    def close(self) -> None:
        """Nothing to release."""
