"""``InProcessExecutor``: the circuits on a ``NodeCore`` in this process, no network.

The one module of the coordinator that imports the node's code (``qpumesh.node.core``,
an exception the import contracts in pyproject.toml name): the coordinator run with
``--in-process``, the benchmarks and the tests evaluate circuits on the same engine a
node runs, so in-process and mesh runs give the same numbers -- and count the same
hardware cost: an evaluation's executions and shots are the core's counts, a Jacobian's
(or a VJP's) the core's ``shift_rule_executions``, as a node's reply says.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from qpumesh.coordinator.executor import CircuitResult, CircuitTask, LocalExecutor
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.v1 import coordinator_pb2 as cpb


class InProcessExecutor(LocalExecutor):
    """Runs the circuits on a ``NodeCore`` in this process, one round at a time.

    Args:
        config: the node configuration to emulate (engine, noise, limits).
    """

    def __init__(self, config: NodeConfig | None = None) -> None:
        super().__init__()
        self.core = NodeCore(config or NodeConfig(node_id="local"))
        self._lock = threading.Lock()
        """Rounds from several threads (a job and a prediction) take turns on the core."""

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Evaluate ``tasks`` one after another on the local core."""
        with self._lock:
            results = [self._run(task) for task in tasks]
        self.stats.record_round(results)
        self.stats.record_hardware(results)
        return results

    def node_max_qubits(self) -> list[int]:
        """Return the core's size: the planner sizes parts for it as for a node."""
        return [self.core.config.max_qubits]

    def local_node(self) -> cpb.NodeStats:
        """Describe the core: its id, size and engine."""
        info = self.core.info()
        return cpb.NodeStats(node_id=info.node_id, max_qubits=info.max_qubits, backend=info.backend)

    def _run(self, task: CircuitTask) -> CircuitResult:
        circuit = task.circuit
        node = self.core.config.node_id
        if task.cotangents is not None:
            vjp = self.core.shift_gradient(
                circuit.hash,
                circuit.cirq_json,
                task.observables,
                task.symbols,
                task.values,
                cotangents=task.cotangents,
                shots=task.shots,
                seed=task.seed,
            )
            return CircuitResult(
                None,
                None,
                node,
                vjp.hardware_seconds,
                vjp.execute_seconds,
                executions=vjp.shift_rule_executions,
                shots=vjp.shift_rule_shots,
                vjp=vjp.jacobian,
            )
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
            return CircuitResult(
                grad.expectations,
                grad.jacobian,
                node,
                grad.hardware_seconds,
                grad.execute_seconds,
                executions=grad.shift_rule_executions,
                shots=grad.shift_rule_shots,
            )
        result = self.core.evaluate(
            circuit.hash,
            circuit.cirq_json,
            task.observables,
            task.symbols,
            task.values,
            shots=task.shots,
            seed=task.seed,
        )
        # The core's counts: with zero-noise extrapolation they include the folded circuits.
        return CircuitResult(
            result.expectations,
            None,
            node,
            result.hardware_seconds,
            result.execute_seconds,
            executions=result.executions,
            shots=result.shots,
        )
