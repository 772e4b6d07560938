"""Helpers for the mesh tests: QPU nodes with fault injection, small circuit tasks, a request log.

Imported by ``test_pool.py`` and ``test_faults.py`` (pytest puts this directory on
``sys.path``); the servers themselves come from the ``node_server`` fixture of
``conftest.py``, so they are stopped after each test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import grpc
import numpy as np
import sympy

from qpumesh.coordinator.executor import CircuitResult, CircuitTask
from qpumesh.node.fault_injection import FaultInjector
from qpumesh.node.faults import FaultSettings, fault_hooks
from qpumesh.wire.circuits import WireCircuit, pauli_terms
from qpumesh.wire.fault_config import FaultConfig

TOKEN = "test-admin-token"


@dataclass
class FaultyNode:
    """A running node server with its fault injector."""

    address: str
    server: grpc.Server
    injector: FaultInjector
    log: RequestLog

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def work_calls(self) -> int:
        return int(self.injector.counters().work_calls)


@dataclass
class RequestLog(grpc.ServerInterceptor):
    """Records (method, circuit JSON sent?) of every QPUNode work call a server receives."""

    calls: list[tuple[str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler is None or method not in ("Evaluate", "ShiftGradient"):
            return handler
        inner = handler.unary_unary

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            with self.lock:
                self.calls.append((method, bool(request.circuit.cirq_json)))
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def start_faulty_node(
    node_server: Callable[..., tuple[str, grpc.Server]],
    *,
    token: str = TOKEN,
    faults: FaultConfig | None = None,
    on_crash: Callable[[], None] | None = None,
    **node_fields: Any,
) -> FaultyNode:
    """Start a node (via the ``node_server`` fixture) with fault injection and NodeAdmin."""
    node_id = node_fields.setdefault("node_id", "faulty")
    hooks = fault_hooks(FaultSettings(faults or FaultConfig(), token), node_id=node_id, on_crash=on_crash)
    log = RequestLog()
    address, server = node_server(
        interceptors=(log, *hooks.interceptors), extra_services=hooks.extra_services, **node_fields
    )
    return FaultyNode(address=address, server=server, injector=hooks.injector, log=log)


def make_tasks(
    count: int,
    *,
    qubits: int = 3,
    rows: int = 6,
    jacobian_every: int = 2,
    vjp_every: int = 0,
    seed: int = 0,
    prefix: str = "g",
) -> list[CircuitTask]:
    """Build ``count`` distinct QLSTM-like sub-circuit tasks (H, RY encoding, CNOT ladder, RY layer).

    Every ``jacobian_every``-th task also asks for its parameter-shift Jacobian, and every
    ``vjp_every``-th task (after that) for a vector-Jacobian product with random cotangents
    instead; keys are ``f"{prefix}/{i}"``.
    """
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(count):
        qs = cirq.LineQubit.range(qubits)
        x = [sympy.Symbol(f"x{i}_{q}") for q in range(qubits)]
        w = [sympy.Symbol(f"w{i}_{q}") for q in range(qubits)]
        circuit = cirq.Circuit(
            [cirq.H(q) for q in qs],
            [cirq.ry(s).on(q) for s, q in zip(x, qs, strict=True)],
            [cirq.CNOT(qs[j], qs[j + 1]) for j in range(qubits - 1)],
            [cirq.ry(2 * s + 0.1).on(q) for s, q in zip(w, qs, strict=True)],
        )
        wire = WireCircuit.from_cirq(circuit)
        observables = [pauli_terms(cirq.Z(q), wire.qubits) for q in qs]
        symbols = tuple(str(s) for s in (*x, *w))
        values = rng.normal(size=(rows, len(symbols)))
        jacobian = jacobian_every > 0 and i % jacobian_every == 0
        vjp = not jacobian and vjp_every > 0 and i % vjp_every == 0
        tasks.append(
            CircuitTask(
                circuit=wire,
                observables=observables,
                symbols=symbols,
                values=values,
                jacobian=jacobian,
                key=f"{prefix}/{i}",
                cotangents=rng.normal(size=(rows, len(observables))) if vjp else None,
            )
        )
    return tasks


def assert_same_results(results: Sequence[CircuitResult], reference: Sequence[CircuitResult]) -> None:
    """Assert bit-identical expectations, Jacobians and VJPs, and the same hardware cost, task by task."""
    assert len(results) == len(reference)
    for got, want in zip(results, reference, strict=True):
        assert (got.executions, got.shots) == (want.executions, want.shots)
        for name in ("expectations", "jacobian", "vjp"):
            mine, theirs = getattr(got, name), getattr(want, name)
            if theirs is None:
                assert mine is None, name
            else:
                assert mine is not None, name
                np.testing.assert_array_equal(mine, theirs)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
