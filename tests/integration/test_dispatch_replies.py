"""What the dispatcher makes of a node's reply, with a stub node in place of a server."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from faulty_mesh import make_tasks

from qpumesh.coordinator.executor import CircuitTask
from qpumesh.coordinator.mesh.dispatch import Dispatcher
from qpumesh.coordinator.mesh.membership import Membership
from qpumesh.coordinator.mesh.nodes import MeshNode
from qpumesh.coordinator.mesh.options import PoolOptions
from qpumesh.coordinator.mesh.stats import FaultLog, MeshStats
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.errors import MeshError
from qpumesh.wire.tensors import to_tensor


class ShapedStub:
    """Answers ShiftGradient with tensors of the request's shapes, ``rows_off`` rows too many."""

    def __init__(self, rows_off: int = 0) -> None:
        self.rows_off = rows_off
        self.requests: list[pb.ShiftGradientRequest] = []

    async def ShiftGradient(self, request: pb.ShiftGradientRequest, **_: Any) -> pb.ShiftGradientResponse:
        self.requests.append(request)
        rows = request.params.values.shape[0] + self.rows_off
        n_obs, n_sym = len(request.observables), len(request.wrt)
        reply = pb.ShiftGradientResponse(wrt=list(request.wrt), shift_rule_executions=7)
        if request.HasField("cotangents"):
            reply.jacobian.CopyFrom(to_tensor(np.full((rows, n_sym), 2.0)))
        else:
            reply.jacobian.CopyFrom(to_tensor(np.full((rows, n_obs, n_sym), 3.0)))
        if request.include_values:
            reply.expectations.CopyFrom(to_tensor(np.full((rows, n_obs), 0.5)))
        return reply


def _run(task: CircuitTask, stub: ShapedStub) -> tuple[Any, MeshNode, MeshStats]:
    options = PoolOptions()
    faults, stats = FaultLog(), MeshStats()
    membership = Membership([], options, faults)
    no_channel: Any = None  # the stub answers; nothing is sent
    node = MeshNode(address="stub:1", channel=no_channel, stub=stub, info=pb.GetInfoResponse(max_qubits=8))
    node.healthy = True
    membership.nodes[node.address] = node
    dispatcher = Dispatcher(membership, options, stats, faults)

    async def run() -> Any:
        try:
            return await dispatcher.run(task)
        except MeshError as error:
            return error

    return asyncio.run(run()), node, stats


def test_jacobian_and_vjp_replies_become_results_of_their_kind() -> None:
    jacobian_task, vjp_task = make_tasks(2, jacobian_every=2, vjp_every=1)
    assert jacobian_task.jacobian and vjp_task.cotangents is not None
    result, node, stats = _run(jacobian_task, ShapedStub())
    rows, n_obs, n_sym = 6, len(jacobian_task.observables), len(jacobian_task.symbols)
    assert result.expectations.shape == (rows, n_obs) and result.jacobian.shape == (rows, n_obs, n_sym)
    assert result.vjp is None and result.executions == 7 and result.node == "stub:1"
    result, node, stats = _run(vjp_task, ShapedStub())
    assert result.expectations is None and result.jacobian is None
    assert result.vjp.shape == (rows, n_sym) and np.all(result.vjp == 2.0)
    assert node.calls == 1 and node.failures == 0 and stats.rpcs == 1


@pytest.mark.parametrize("vjp", [False, True])
def test_a_malformed_reply_is_an_internal_error_counted_as_a_failed_call(vjp: bool) -> None:
    task = make_tasks(2, jacobian_every=2, vjp_every=1)[1 if vjp else 0]
    stub = ShapedStub(rows_off=1)
    error, node, stats = _run(task, stub)
    assert isinstance(error, MeshError) and error.code == grpc.StatusCode.INTERNAL
    assert "malformed reply: jacobian has shape" in str(error)
    assert len(stub.requests) == 1  # not retried: the node would answer the same
    assert node.failures == 1 and stats.failures == 1
