"""Deadlines per call kind: in gradient mode "vjp" Evaluates and VJPs each follow their own pace.

A VJP's work is the shift rule's 2 x symbols times an Evaluate's, but an exact VJP runs the
adjoint method and costs a few Evaluates at most, and small calls of both kinds are mostly
fixed latency. With one pace per node the VJPs' deadlines were the Evaluates' rate scaled
by that factor (and the Evaluates' were stretched to the slowest VJP), so a hung node was
given up on later than necessary. These tests run a dispatcher against a stub node whose
calls take known times and read the deadlines it sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import numpy as np
import pytest

from qpumesh.coordinator.ansatz import build_ansatz
from qpumesh.coordinator.executor import CircuitTask
from qpumesh.coordinator.mesh.deadlines import SLACK, Paces, call_kind, call_work, deadline, probe_deadline
from qpumesh.coordinator.mesh.dispatch import Dispatcher
from qpumesh.coordinator.mesh.membership import Membership
from qpumesh.coordinator.mesh.nodes import MeshNode
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.stats import FaultLog, MeshStats
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.tensors import to_tensor

FLOOR = 0.5
ANSATZ = build_ansatz("chen2020", 2, 2, 1)
EVALUATE = CircuitTask(
    ANSATZ.circuit, ANSATZ.observables, ANSATZ.symbols, np.zeros((6, len(ANSATZ.symbols))), jacobian=False
)
VJP = dataclasses.replace(EVALUATE, cotangents=np.ones((6, len(ANSATZ.observables))))
JACOBIAN = dataclasses.replace(EVALUATE, jacobian=True)


class TimedStub:
    """Answers Evaluate and ShiftGradient after the seconds set per kind; keeps each call's deadline."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.deadlines: dict[str, list[float]] = {"evaluate": [], "vjp": []}
        self.took: dict[str, list[float]] = {"evaluate": [], "vjp": []}

    async def _answer(self, kind: str, timeout: float) -> None:
        self.deadlines[kind].append(timeout)
        start = time.perf_counter()
        await asyncio.sleep(self.seconds[kind])
        self.took[kind].append(time.perf_counter() - start)

    async def Evaluate(self, request: pb.EvaluateRequest, timeout: float, **_: Any) -> pb.EvaluateResponse:
        await self._answer("evaluate", timeout)
        rows, n_obs = request.params.values.shape[0], len(request.observables)
        return pb.EvaluateResponse(expectations=to_tensor(np.zeros((rows, n_obs))))

    async def ShiftGradient(
        self, request: pb.ShiftGradientRequest, timeout: float, **_: Any
    ) -> pb.ShiftGradientResponse:
        await self._answer("vjp", timeout)
        rows, n_sym = request.params.values.shape[0], len(request.wrt)
        return pb.ShiftGradientResponse(wrt=list(request.wrt), jacobian=to_tensor(np.zeros((rows, n_sym))))


def _vjp_mode_rounds(stub: TimedStub, rounds: int) -> None:
    """Forward Evaluates then backward VJPs, ``rounds`` of each, on one node (as gradient mode "vjp")."""
    options = PoolOptions(timeout_seconds=FLOOR)
    faults = FaultLog()
    membership = Membership([], options, faults)
    no_channel: Any = None  # the stub answers; nothing is sent
    node = MeshNode(address="stub:1", channel=no_channel, stub=stub, info=pb.GetInfoResponse(max_qubits=8))
    node.healthy = True
    membership.nodes[node.address] = node
    dispatcher = Dispatcher(membership, options, MeshStats(), faults)

    async def run() -> None:
        for _ in range(rounds):
            await dispatcher.run(EVALUATE)
        for _ in range(rounds):
            await dispatcher.run(VJP)
        await dispatcher.run(EVALUATE)  # the next batch's forward pass

    asyncio.run(run())


def test_vjp_and_evaluate_deadlines_follow_their_own_calls() -> None:
    # VJPs five times slower than Evaluates, but not 2 x symbols times (their work's factor).
    assert call_work(VJP) == 2 * len(VJP.symbols) * call_work(EVALUATE) >= 16 * call_work(EVALUATE)
    stub = TimedStub({"evaluate": 0.02, "vjp": 0.1})
    _vjp_mode_rounds(stub, 3)
    # Each kind's deadline is the floor + SLACK x its own calls' time (plus a margin for the
    # dispatcher's measurement around the stub under load; on main the VJPs' was 3.3 s and
    # the last Evaluate's 1.06 s, both far over).
    for kind in ("evaluate", "vjp"):
        allowed = FLOOR + SLACK * (1.25 * max(stub.took[kind]) + 0.05)
        assert all(FLOOR < limit <= allowed for limit in stub.deadlines[kind][1:]), (kind, stub.deadlines)
    # The first VJP had no VJP history: the floor, not the Evaluates' rate x 2 x symbols.
    assert stub.deadlines["vjp"][0] == FLOOR


def test_kinds_and_their_paces() -> None:
    assert [call_kind(t) for t in (EVALUATE, VJP, JACOBIAN)] == ["evaluate", "vjp", "jacobian"]
    paces = Paces()
    assert not paces and paces.slowest() == 0.0 and paces.besides("vjp") == 0.0
    paces["evaluate"].record(0.02, 10.0)
    paces["vjp"].record(0.1, 160.0)
    assert paces.slowest() == 0.1
    assert deadline(FLOOR, paces["vjp"], [], 160.0) == pytest.approx(FLOOR + SLACK * 0.1)
    assert deadline(FLOOR, paces["evaluate"], [], 10.0) == pytest.approx(FLOOR + SLACK * 0.02)
    # Evaluates in flight beside a VJP: each kind's own prediction for its own work, added.
    paces["evaluate"].in_flight_work = 20.0
    assert paces.besides("vjp") == pytest.approx(0.04)
    assert paces.besides("evaluate") == 0.0
    # A timed-out probe is a fixed latency: every call's prediction is at least that (not
    # added to it), and the probes' deadline follows the node's slowest call of any kind.
    paces.probes.record(0.3, 0.0)
    assert paces.latency() == 0.3 and paces.besides("evaluate") == 0.0
    assert deadline(FLOOR, paces["evaluate"], [], 10.0, latency=paces.latency()) == pytest.approx(
        FLOOR + SLACK * 0.3
    )
    assert deadline(FLOOR, paces["vjp"], [], 160.0, 0.04, paces.latency()) == pytest.approx(
        FLOOR + SLACK * 0.34
    )
    assert probe_deadline(5.0, paces, []) == pytest.approx(5.0 + SLACK * 0.3)
    paces.clear()
    assert not paces and probe_deadline(5.0, paces, []) == 5.0


def test_a_new_node_borrows_the_other_nodes_pace_of_its_kind() -> None:
    fresh, busy = Paces(), Paces()
    busy["evaluate"].record(0.02, 10.0)
    busy["vjp"].record(0.1, 160.0)
    others = [busy["vjp"]]
    assert deadline(FLOOR, fresh["vjp"], others, 160.0) == pytest.approx(FLOOR + SLACK * 0.1)
    assert deadline(FLOOR, fresh["jacobian"], [busy["jacobian"]], 1.0) == FLOOR  # no Jacobians anywhere
    assert probe_deadline(5.0, fresh, [busy]) == pytest.approx(5.0 + SLACK * 0.1)
