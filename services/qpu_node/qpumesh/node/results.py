"""What a node's core answers: its description and the results of its two requests.

Kept apart from `qpumesh.node.core` (which computes them) so that the result types are read
in one place; `core` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpumesh.node.noise import NoiseConfig
from qpumesh.wire.hardware import DEFAULT_PROFILE

__all__ = ["EvalResult", "GradResult", "NodeInfo", "Part"]


@dataclass(frozen=True)
class NodeInfo:
    """What GetInfo reports."""

    node_id: str
    backend: str
    max_qubits: int
    supported_gates: tuple[str, ...]
    noise: NoiseConfig
    default_shots: int
    version: str
    max_batch_rows: int
    max_message_bytes: int
    hardware: str = DEFAULT_PROFILE
    mitigation: str = ""


@dataclass(frozen=True)
class EvalResult:
    """Expectations ``(rows, n_obs)``; standard errors of the same shape iff shots > 0.

    ``executions`` (one per row) and ``shots`` (executions x shots x measured terms) are what
    the request costs a hardware QPU, as ``GradResult``'s shift-rule fields;
    ``hardware_seconds`` is how long they take on the node's hardware profile.
    """

    expectations: np.ndarray
    standard_errors: np.ndarray | None
    backend: str
    execute_seconds: float
    executions: int = 0
    shots: int = 0
    hardware_seconds: float = 0.0


@dataclass(frozen=True)
class GradResult:
    """Jacobian ``(rows, n_obs, len(wrt))`` or VJP ``(rows, len(wrt))``; optional values.

    Attributes:
        jacobian: The Jacobian or VJP.
        expectations: The unshifted values ``(rows, n_obs)`` when asked for.
        wrt: The differentiated symbols, in the order of the last axis.
        backend: The engine that ran.
        execute_seconds: Time spent in the core.
        method: ``"adjoint"`` or ``"parameter_shift"``: what actually ran.
        shift_rule_executions: Circuit executions a hardware QPU would need for this request
            by the parameter-shift rule (`gradients.shift_rule_executions`), whichever
            method ran -- the honest cost of the experiment.
        shift_rule_shots: Shots those executions take: executions x shots x measured
            (non-identity) Pauli terms; 0 for exact requests.
        hardware_seconds: How long those executions take on the node's hardware profile.
    """

    jacobian: np.ndarray
    expectations: np.ndarray | None
    wrt: tuple[str, ...]
    backend: str
    execute_seconds: float
    method: str = "parameter_shift"
    shift_rule_executions: int = 0
    shift_rule_shots: int = 0
    hardware_seconds: float = 0.0


@dataclass(frozen=True)
class Part:
    """One circuit's answer to an Evaluate request (the circuit, or one folded version)."""

    values: np.ndarray
    errors: np.ndarray | None
    backend: str
    executions: int
    shots: int
    hardware_seconds: float
