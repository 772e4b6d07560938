"""The node side of ``round_timeline.py``: a QPU node whose ShiftGradient calls leave stamps.

``python -m round_timeline_node serve [node flags]`` (``benchmarks/`` on ``PYTHONPATH``, and
``QPUMESH_ROUND_TIMELINE_DIR`` set) runs ``python -m qpumesh.node`` after wrapping, in this
process only, gRPC's call hand-out and status batch (``grpc._server``), the telemetry
interceptor (outermost: the request's deserializer, the behaviour, the reply's serializer),
the servicer's ``ShiftGradient`` and ``NodeCore.shift_gradient``. Each call's stamps
(``time.perf_counter_ns``: ``CLOCK_MONOTONIC``, the clock of every process on the host) and
the process's garbage collections are written to ``<dir>/<node id>.json`` when the node
stops. The node handles one call at a time in the benchmark, so the stamps of a call go to
the record the poller opened when the call arrived.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DIR_VARIABLE = "QPUMESH_ROUND_TIMELINE_DIR"
"""Where the node runner writes its stamps (set by the benchmark for its node processes)."""

now = time.perf_counter_ns


def shift_gradient_path() -> str:
    """The ShiftGradient method's path, from the service's descriptor."""
    from qpumesh.v1 import qpu_node_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["QPUNode"]
    return f"/{service.full_name}/{service.methods_by_name['ShiftGradient'].name}"


def watch_gc(events: list[tuple[int, int, int]]) -> None:
    """Append (start ns, end ns, generation) of every garbage collection of this process to ``events``."""
    started = [0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = now()
        else:
            events.append((started[0], now(), info["generation"]))

    gc.callbacks.append(callback)


def run_node(argv: Sequence[str]) -> int:
    """Run ``python -m qpumesh.node`` with stamping wrappers; write the stamps on exit."""
    gc_events: list[tuple[int, int, int]] = []
    watch_gc(gc_events)
    import grpc
    from grpc import _server as grpc_server

    from qpumesh.node import cli, server
    from qpumesh.node.core import NodeCore

    path = shift_gradient_path()
    calls: list[dict[str, int]] = []
    current: dict[str, int] = {}

    def new_call(stamp: int) -> None:
        nonlocal current
        current = {"event": stamp}
        calls.append(current)

    handle_call = grpc_server._handle_call

    def stamped_handle_call(rpc_event: Any, method_with_handler: Any, *rest: Any) -> Any:
        stamp = now()
        name = rpc_event.call_details.method or method_with_handler.name() or b""
        if isinstance(name, bytes):
            name = name.decode()
        if name.endswith("ShiftGradient"):
            new_call(stamp)
            result = handle_call(rpc_event, method_with_handler, *rest)
            current["submitted"] = now()  # interceptors looked up, the pool has the call
            return result
        return handle_call(rpc_event, method_with_handler, *rest)

    grpc_server._handle_call = stamped_handle_call  # type: ignore[assignment]

    status = grpc_server._status

    def stamped_status(rpc_event: Any, state: Any, serialized: Any) -> None:
        cpu = time.thread_time_ns()
        status(rpc_event, state, serialized)
        if "reply_serialized" in current and "status_sent" not in current:
            current["status_sent"], current["status_cpu"] = now(), time.thread_time_ns() - cpu

    grpc_server._status = stamped_status  # type: ignore[assignment]

    from qpumesh.wire.server_telemetry import ServerTelemetry

    class StampingTelemetry(ServerTelemetry):
        def _wrap(self, full_method: str, handler: Any) -> Any:
            wrapped = super()._wrap(full_method, handler)
            if full_method != path:
                return wrapped
            inner: Any = wrapped.unary_unary
            deserialize: Any = wrapped.request_deserializer
            serialize: Any = wrapped.response_serializer

            def stamped_deserialize(raw: bytes) -> Any:
                current["deserialize"] = now()
                request = deserialize(raw)
                current["deserialized"] = now()
                return request

            def stamped_behaviour(request: Any, context: Any) -> Any:
                current["worker"], current["worker_cpu"] = now(), time.thread_time_ns()
                reply = inner(request, context)
                current["interceptors_left"], current["worker_cpu_left"] = now(), time.thread_time_ns()
                return reply

            def stamped_serialize(reply: Any) -> bytes:
                current["serialize_reply"] = now()
                raw = serialize(reply)
                current["reply_serialized"] = now()
                return raw  # type: ignore[no-any-return]

            return grpc.unary_unary_rpc_method_handler(
                stamped_behaviour,
                request_deserializer=stamped_deserialize,
                response_serializer=stamped_serialize,
            )

    server.ServerTelemetry = StampingTelemetry  # type: ignore[attr-defined,misc]  # read when start_node runs

    handler = server.QPUNodeServicer.ShiftGradient

    def stamped_handler(self: Any, request: Any, context: Any) -> Any:
        current["handler"] = now()
        reply = handler(self, request, context)
        current["handler_left"] = now()
        return reply

    server.QPUNodeServicer.ShiftGradient = stamped_handler  # type: ignore[method-assign]

    shift_gradient = NodeCore.shift_gradient

    def stamped_core(self: Any, *args: Any, **kwargs: Any) -> Any:
        current["engine"] = now()
        result = shift_gradient(self, *args, **kwargs)
        current["engine_done"] = now()
        return result

    NodeCore.shift_gradient = stamped_core  # type: ignore[method-assign]

    node_id = argv[argv.index("--node-id") + 1] if "--node-id" in argv else str(os.getpid())
    try:
        return cli.main(argv)
    finally:
        out = Path(os.environ[DIR_VARIABLE]) / f"{node_id}.json"
        out.write_text(json.dumps({"calls": calls, "gc": gc_events}))


if __name__ == "__main__":
    sys.exit(run_node(sys.argv[1:]))
