"""Python clients and the ``qpumesh`` command line.

``NodeClient``, ``CoordinatorClient`` and ``QpuMeshError`` are imported lazily, on first use, so that
``import qpumesh.client`` (and ``qpumesh --help``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.client.node_client import NodeClient
    from qpumesh.wire.errors import QpuMeshError

_LAZY = {
    "CoordinatorClient": "qpumesh.client.coordinator_client",
    "NodeClient": "qpumesh.client.node_client",
    "QpuMeshError": "qpumesh.wire.errors",
}

__all__ = ["CoordinatorClient", "NodeClient", "QpuMeshError"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
