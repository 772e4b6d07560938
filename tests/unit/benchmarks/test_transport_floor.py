"""The transport floor is only a floor if it carries the real bytes and really waits for the engine."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import grpc
import numpy as np
import pytest
import transport_floor as floor
from profile_epoch import ZeroExecutor

from qpumesh.coordinator.executor import CircuitResult, CircuitTask
from qpumesh.coordinator.training import Trainer
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.server import QPUNodeServicer
from qpumesh.wire import node_calls
from qpumesh.wire.job_spec import JobSpec


class _Context:
    """Enough of ``grpc.ServicerContext`` for the servicer: the caller is there."""

    def is_active(self) -> bool:
        return True

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"{code}: {details}")


CONTEXT = cast(grpc.ServicerContext, _Context())


def _first_round(gradient_mode: str) -> list[CircuitTask]:
    """The tasks of the default model's first training round (one time step)."""
    captured: list[CircuitTask] = []

    class Capture(ZeroExecutor):
        def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
            captured.extend(tasks)
            return super().run_round(tasks)

    spec = JobSpec(model="distributed", qubits=4, partitions=2, gradient_mode=gradient_mode)
    trainer = Trainer(spec, Capture(), ())
    trainer.model(trainer.dataset.x_train[: spec.batch_size, :1])
    return captured


@pytest.mark.parametrize("gradient_mode", ["jacobian", "vjp"])
def test_the_floor_sends_and_answers_as_many_bytes_as_a_node_call(gradient_mode: str) -> None:
    servicer = QPUNodeServicer(NodeCore(NodeConfig(node_id="floor")), workers=1)
    tasks = _first_round(gradient_mode)
    assert tasks
    templates = node_calls.RequestTemplates()  # the mesh dispatcher's request builder
    for task in tasks:
        request_size, reply_size = floor.wire_sizes(task)
        request: Any
        if task.jacobian:
            request = templates.shift_gradient(
                task.observables, task.symbols, task.values, wrt=task.symbols, include_values=True
            )
            request.circuit.CopyFrom(task.circuit.to_proto(include_json=True))
            reply: Any = servicer.ShiftGradient(request, CONTEXT)
        else:
            request = templates.evaluate(task.observables, task.symbols, task.values)
            request.circuit.CopyFrom(task.circuit.to_proto(include_json=True))
            reply = servicer.Evaluate(request, CONTEXT)
        request.circuit.CopyFrom(task.circuit.to_proto(include_json=False))  # held: sent by hash
        assert request_size == pytest.approx(request.ByteSize(), rel=0.02)
        assert reply_size == pytest.approx(reply.ByteSize(), rel=0.02)


@pytest.fixture
def server_port() -> Iterator[int]:
    server, port = floor.start_server()
    yield port
    server.stop(None)


@pytest.mark.parametrize("transport", [floor.UnaryFloor, floor.InlineUnaryFloor, floor.StreamFloor])
def test_a_floor_round_waits_for_the_engines_share_and_answers_the_models_shapes(
    server_port: int, transport: type[floor.UnaryFloor | floor.InlineUnaryFloor | floor.StreamFloor]
) -> None:
    tasks = _first_round("jacobian")
    executor = transport([server_port])
    executor.spin_ns = {"jacobian": 30_000_000}  # 30 ms per task, both on the one server
    try:
        start = time.perf_counter()
        results = executor.run_round(tasks)
        seconds = time.perf_counter() - start
    finally:
        executor.close()
    assert seconds >= 0.03 * len(tasks)  # one server spins each task in turn (the GIL)
    assert executor.stats.snapshot()["rounds"] == 1
    for task, result in zip(tasks, results, strict=True):
        assert result.expectations is not None and result.jacobian is not None
        assert result.expectations.shape == (len(task.values), len(task.observables))
        assert result.jacobian.shape == (len(task.values), len(task.observables), len(task.symbols))
        assert not np.any(result.jacobian)
