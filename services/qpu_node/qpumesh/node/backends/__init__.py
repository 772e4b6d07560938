"""The node's simulation engines behind one `Backend` protocol (see `base`)."""

from __future__ import annotations

from qpumesh.node.backends.base import Backend
from qpumesh.node.backends.batched import BatchedBackend
from qpumesh.node.backends.cirq_backend import CirqBackend
from qpumesh.node.backends.density import DensityBackend
from qpumesh.node.backends.qsim_backend import QsimBackend
from qpumesh.node.backends.trajectories import TrajectoriesBackend
from qpumesh.wire.backends import BACKENDS

__all__ = [
    "BACKENDS",
    "Backend",
    "BatchedBackend",
    "CirqBackend",
    "DensityBackend",
    "QsimBackend",
    "TrajectoriesBackend",
]
