"""The coordinator's executors: the QPU node mesh, and the in-process stand-in.

- ``targets``: node lists and ``dns:`` discovery; ``options``: ``PoolOptions``;
- ``nodes``: one node's channel, health and counters; ``membership``: the nodes,
  re-resolution and health checks; ``dispatch``: choice, retry, failover, hedging;
  ``stats``: the mesh's counters and fault log;
- ``executor``: ``MeshExecutor``, composing them behind the ``Executor`` protocol;
- ``in_process``: ``InProcessExecutor``, the only module allowed to import the node.

Importing the package is light; ``open_executor`` loads the executor it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qpumesh.coordinator.config import CoordinatorConfig
    from qpumesh.coordinator.executor import Executor


def open_executor(config: CoordinatorConfig) -> Executor:
    """Return the executor a coordinator with ``config`` runs its circuits on."""
    if config.in_process:
        from qpumesh.coordinator.mesh.in_process import InProcessExecutor

        return InProcessExecutor()
    from qpumesh.coordinator.mesh.executor import MeshExecutor

    return MeshExecutor(config.nodes, config.pool, tls=config.tls)
