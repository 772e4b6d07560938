"""A real QPU node over gRPC: results, circuit caching, health, reflection, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cirq
import grpc
import numpy as np
import pytest
import sympy
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from qpumesh.client import NodeClient, QpuMeshError
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.noise import NoiseConfig
from qpumesh.node.server import create_server
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.channels import open_channel
from qpumesh.wire.circuits import WireCircuit, observables_to_proto, pauli_terms
from qpumesh.wire.tensors import from_tensor, to_tensor

Q0, Q1 = cirq.LineQubit.range(2)
A, B = sympy.symbols("a b")


def two_qubit_circuit() -> cirq.Circuit:
    """RY(a) ⊗ RY(b) then CNOT: <Z0> = cos a, <Z1> = cos a · cos b."""
    return cirq.Circuit(cirq.ry(A).on(Q0), cirq.ry(B).on(Q1), cirq.CNOT(Q0, Q1))


OBSERVABLES = [cirq.Z(Q0), cirq.Z(Q1), 0.5 * cirq.X(Q0) * cirq.X(Q1) + 0.25 * cirq.Z(Q0)]


def batch(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.uniform(-np.pi, np.pi, rows), "b": rng.uniform(-np.pi, np.pi, rows)}


class RecordingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records, per QPUNode call, whether the circuit JSON was sent and the status code."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, grpc.StatusCode]] = []

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method = details.method.rsplit("/", 1)[-1]
        if handler is None or method not in ("Evaluate", "ShiftGradient"):
            return handler
        inner = handler.unary_unary

        def recorded(request: Any, context: grpc.ServicerContext) -> Any:
            with_json = bool(request.circuit.cirq_json)
            try:
                reply = inner(request, context)
            except Exception:
                self.calls.append((method, with_json, context.code()))
                raise
            self.calls.append((method, with_json, grpc.StatusCode.OK))
            return reply

        return grpc.unary_unary_rpc_method_handler(
            recorded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def test_get_info_describes_the_configured_node(node_server: Any) -> None:
    address, _ = node_server(node_id="qpu-7", backend="batched", max_qubits=7, max_batch_rows=123)
    with NodeClient(address) as client:
        info = client.info()
    assert info.node_id == "qpu-7"
    assert info.backend == "batched"
    assert info.max_qubits == 7
    assert info.max_batch_rows == 123
    assert info.noise.method == "none"
    assert info.version
    assert {"CNOT", "Ry", "H"} <= set(info.supported_gates)


def test_get_info_reports_the_noise_profile(node_server: Any) -> None:
    from qpumesh.node.noise import NoiseConfig

    noise = NoiseConfig(
        depolarizing_1q=0.01, depolarizing_2q=0.02, readout_error=0.03, method="density_matrix"
    )
    address, _ = node_server(backend="cirq", noise=noise)
    with NodeClient(address) as client:
        info = client.info()
    assert info.noise.method == "density_matrix"
    profile = info.noise
    assert (profile.depolarizing_1q, profile.depolarizing_2q, profile.readout_error) == (0.01, 0.02, 0.03)


@pytest.mark.parametrize("backend", ["batched", "qsim", "cirq"])
def test_evaluate_matches_the_in_process_core_and_the_exact_values(node_server: Any, backend: str) -> None:
    address, _ = node_server(backend=backend)
    circuit, params = two_qubit_circuit(), batch(16)
    with NodeClient(address) as client:
        reply = client.evaluate_detailed(circuit, OBSERVABLES, params)

    wire = WireCircuit.from_cirq(circuit)
    terms = [pauli_terms(o, wire.qubits) for o in OBSERVABLES]
    values = np.column_stack([params["a"], params["b"]])
    local = NodeCore(NodeConfig(node_id="local", backend=backend)).evaluate(
        wire.hash, wire.cirq_json, terms, ["a", "b"], values
    )
    assert reply.expectations.shape == (16, 3)
    np.testing.assert_allclose(reply.expectations, local.expectations, atol=1e-12)
    a, b = params["a"], params["b"]
    np.testing.assert_allclose(reply.expectations[:, 0], np.cos(a), atol=1e-5)
    np.testing.assert_allclose(reply.expectations[:, 1], np.cos(a) * np.cos(b), atol=1e-5)
    assert reply.standard_errors is None
    assert reply.backend == local.backend
    assert reply.queue_seconds >= 0 and reply.execute_seconds > 0


@pytest.mark.parametrize("backend", ["batched", "cirq"])
def test_shift_gradient_matches_the_in_process_core_and_the_analytic_jacobian(
    node_server: Any, backend: str
) -> None:
    address, _ = node_server(backend=backend)
    circuit, params = two_qubit_circuit(), batch(8, seed=1)
    a, b = params["a"], params["b"]
    with NodeClient(address) as client:
        reply = client.shift_gradient_detailed(
            circuit, OBSERVABLES[:2], params, wrt=["b", "a"], include_values=True
        )
        vjp = client.shift_gradient(circuit, OBSERVABLES[:2], params, wrt=["a"], cotangents=np.ones((8, 2)))

    assert reply.wrt == ("b", "a")
    assert reply.jacobian.shape == (8, 2, 2)
    expected = np.zeros((8, 2, 2))
    expected[:, 0, 1] = -np.sin(a)  # d<Z0>/da
    expected[:, 1, 0] = -np.cos(a) * np.sin(b)  # d<Z1>/db
    expected[:, 1, 1] = -np.sin(a) * np.cos(b)  # d<Z1>/da
    np.testing.assert_allclose(reply.jacobian, expected, atol=1e-6)
    assert reply.expectations is not None
    np.testing.assert_allclose(reply.expectations[:, 0], np.cos(a), atol=1e-6)
    np.testing.assert_allclose(vjp, expected[:, :, 1].sum(axis=1, keepdims=True), atol=1e-6)

    wire = WireCircuit.from_cirq(circuit)
    terms = [pauli_terms(o, wire.qubits) for o in OBSERVABLES[:2]]
    local = NodeCore(NodeConfig(node_id="local", backend=backend)).shift_gradient(
        wire.hash, wire.cirq_json, terms, ["a", "b"], np.column_stack([a, b]), wrt=("b", "a")
    )
    np.testing.assert_allclose(reply.jacobian, local.jacobian, atol=1e-12)


def test_gradient_methods_travel_with_the_method_that_ran_and_the_shift_rule_cost(node_server: Any) -> None:
    address, _ = node_server(backend="batched")
    noisy, _ = node_server(backend="batched", noise=NoiseConfig(readout_error=0.02))
    circuit, params = two_qubit_circuit(), batch(6, seed=2)
    with NodeClient(address) as client:
        adjoint = client.shift_gradient_detailed(circuit, OBSERVABLES, params, include_values=True)
        shift = client.shift_gradient_detailed(
            circuit, OBSERVABLES, params, include_values=True, method="parameter_shift"
        )
        with pytest.raises(QpuMeshError) as shots:
            client.shift_gradient(circuit, OBSERVABLES, params, shots=100, method="adjoint")
        with pytest.raises(ValueError, match="unknown gradient method 'backprop'"):
            client.shift_gradient(circuit, OBSERVABLES, params, method="backprop")
    assert (adjoint.method, shift.method) == ("adjoint", "parameter_shift")
    np.testing.assert_allclose(adjoint.jacobian, shift.jacobian, atol=1e-10, rtol=0)
    # Two slots, two shifts each, plus the unshifted evaluation, for each of the 6 rows.
    assert adjoint.shift_rule_executions == shift.shift_rule_executions == 6 * (2 * 2 + 1)
    assert adjoint.shift_rule_shots == 0
    assert shots.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "100 shots" in shots.value.details
    with NodeClient(noisy) as client:
        auto = client.shift_gradient_detailed(circuit, OBSERVABLES, params)
        with pytest.raises(QpuMeshError) as refused:
            client.shift_gradient(circuit, OBSERVABLES, params, method="adjoint")
    assert auto.method == "parameter_shift"
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "noise" in refused.value.details


def test_shots_give_standard_errors_and_a_seed_makes_them_reproducible(node_server: Any) -> None:
    address, _ = node_server(backend="batched")
    circuit, params = two_qubit_circuit(), batch(4)
    with NodeClient(address) as client:
        first = client.evaluate_detailed(circuit, OBSERVABLES[:2], params, shots=2000, seed=7)
        again = client.evaluate_detailed(circuit, OBSERVABLES[:2], params, shots=2000, seed=7)
    assert first.standard_errors is not None and first.standard_errors.shape == (4, 2)
    np.testing.assert_array_equal(first.expectations, again.expectations)
    np.testing.assert_allclose(first.expectations[:, 0], np.cos(params["a"]), atol=0.15)


def test_the_client_sends_the_circuit_once_then_only_its_hash(node_server: Any) -> None:
    recorder = RecordingInterceptor()
    address, _ = node_server(interceptors=[recorder])
    circuit, params = two_qubit_circuit(), batch(3)
    with NodeClient(address) as client:
        first = client.evaluate(circuit, OBSERVABLES, params)
        second = client.evaluate(circuit, OBSERVABLES, params)
        grad = client.shift_gradient(circuit, OBSERVABLES, params)
    np.testing.assert_array_equal(first, second)
    assert grad.shape == (3, 3, 2)
    assert recorder.calls == [
        ("Evaluate", True, grpc.StatusCode.OK),
        ("Evaluate", False, grpc.StatusCode.OK),
        ("ShiftGradient", False, grpc.StatusCode.OK),
    ]


def test_a_node_that_forgot_the_circuit_gets_it_again_transparently(node_server: Any) -> None:
    recorder = RecordingInterceptor()
    address, _ = node_server(interceptors=[recorder], circuit_cache_size=1)
    circuit, params = two_qubit_circuit(), batch(3)
    other = cirq.Circuit(cirq.rx(A).on(Q0), cirq.rx(B).on(Q1))
    with NodeClient(address) as client:
        expected = client.evaluate(circuit, OBSERVABLES, params)
        client.evaluate(other, [cirq.Z(Q0)], params)  # evicts `circuit` from the node's cache
        again = client.evaluate(circuit, OBSERVABLES, params)
    np.testing.assert_array_equal(again, expected)
    assert recorder.calls[-2:] == [
        ("Evaluate", False, grpc.StatusCode.NOT_FOUND),
        ("Evaluate", True, grpc.StatusCode.OK),
    ]


def test_a_fresh_node_answers_not_found_to_a_hash_it_does_not_hold(node_server: Any) -> None:
    address, _ = node_server()
    wire = WireCircuit.from_cirq(two_qubit_circuit())
    request = pb.EvaluateRequest(
        circuit=wire.to_proto(include_json=False),
        observables=observables_to_proto([pauli_terms(cirq.Z(Q0), wire.qubits)]),
        params=pb.ParameterBatch(symbols=["a", "b"], values=to_tensor(np.zeros((1, 2)))),
    )
    with open_channel(address) as channel:
        stub = pb_grpc.QPUNodeStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Evaluate(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert wire.hash[:12] in caught.value.details()
        request.circuit.cirq_json = wire.cirq_json
        reply = stub.Evaluate(request, timeout=30)
        request.circuit.cirq_json = ""
        cached = stub.Evaluate(request, timeout=30)
    np.testing.assert_allclose(from_tensor(reply.expectations), [[1.0]], atol=1e-12)
    assert cached.expectations == reply.expectations


def test_a_mutated_circuit_object_is_serialised_again(node_server: Any) -> None:
    address, _ = node_server()
    circuit = two_qubit_circuit()
    with NodeClient(address) as client:
        before = client.wire_circuit(circuit)
        assert client.wire_circuit(circuit) is before
        circuit.append(cirq.rx(np.pi).on(Q0))
        after = client.wire_circuit(circuit)
        assert after.hash != before.hash
        values = client.evaluate(circuit, [cirq.Z(Q0)], {"a": 0.0, "b": 0.0})
    np.testing.assert_allclose(values, [[-1.0]], atol=1e-12)


def test_concurrent_requests_share_the_execution_slots_and_all_get_their_answers(node_server: Any) -> None:
    address, _ = node_server(workers=2)
    circuit = two_qubit_circuit()
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    with NodeClient(address) as client:

        def work(k: int) -> None:
            try:
                results[k] = client.evaluate(circuit, [cirq.Z(Q0)], {"a": float(k) / 10, "b": 0.0})
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    for k in range(8):
        np.testing.assert_allclose(results[k], [[np.cos(k / 10)]], atol=1e-9)


def test_health_is_serving_for_the_server_and_the_node_service(node_server: Any) -> None:
    address, _ = node_server()
    with open_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "qpumesh.v1.QPUNode"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_node_service(node_server: Any) -> None:
    address, _ = node_server()
    with open_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"qpumesh.v1.QPUNode", "grpc.health.v1.Health"} <= services
        method_file = database.FindFileContainingSymbol("qpumesh.v1.QPUNode")
        assert method_file.package == "qpumesh.v1"


def test_an_unreachable_node_is_a_qpumesh_error_with_unavailable() -> None:
    with NodeClient("127.0.0.1:1", timeout=5) as client, pytest.raises(QpuMeshError) as caught:
        client.info()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def _wait_for_file(path: Path, process: subprocess.Popen[str], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if process.poll() is not None:
            raise AssertionError(f"node exited early with {process.returncode}: {process.communicate()[1]}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"node wrote no port file in {seconds} s: {process.communicate()[1]}")


def test_serve_writes_the_port_file_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "node.port"
    env = {**os.environ, "QPUMESH_NODE_ID": "from-env", "QPUMESH_MAX_QUBITS": "5"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qpumesh.node",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-qubits",
            "6",
            "--port-file",
            str(port_file),
        ],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        text = _wait_for_file(port_file, process, seconds=120)
        assert text.endswith("\n") and int(text) > 0
        address = f"127.0.0.1:{int(text)}"
        with NodeClient(address, timeout=30) as client:
            info = client.info()
            values = client.evaluate(two_qubit_circuit(), [cirq.Z(Q0)], {"a": np.pi, "b": 0.0})
        assert info.node_id == "from-env"  # environment read
        assert info.max_qubits == 6  # the flag wins over QPUMESH_MAX_QUBITS
        np.testing.assert_allclose(values, [[-1.0]], atol=1e-9)

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"serving on 127.0.0.1:{int(text)}" in stderr
    assert "stopped" in stderr


def test_serve_refuses_a_bad_environment_variable_by_name(tmp_path: Path) -> None:
    env = {**os.environ, "QPUMESH_WORKERS": "many"}
    result = subprocess.run(
        [sys.executable, "-m", "qpumesh.node", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "QPUMESH_WORKERS" in result.stderr and "'many'" in result.stderr


def test_a_restarted_node_gets_the_circuit_again_transparently() -> None:
    recorder = RecordingInterceptor()
    config = ServerConfig(node=NodeConfig(node_id="restart"), host="127.0.0.1", port=0)
    server, port = create_server(config)
    circuit, params = two_qubit_circuit(), batch(2)
    try:
        with NodeClient(f"127.0.0.1:{port}") as client:
            expected = client.evaluate(circuit, OBSERVABLES, params)
            server.stop(None).wait()
            # A fresh process on the same port: empty circuit cache.
            server, _ = create_server(
                ServerConfig(node=config.node, host="127.0.0.1", port=port), interceptors=[recorder]
            )
            again = client.evaluate(circuit, OBSERVABLES, params)
    finally:
        server.stop(None)
    np.testing.assert_array_equal(again, expected)
    assert recorder.calls == [
        ("Evaluate", False, grpc.StatusCode.NOT_FOUND),
        ("Evaluate", True, grpc.StatusCode.OK),
    ]


def test_a_node_reports_its_hardware_profile_mitigation_and_each_replys_qpu_time(node_server: Any) -> None:
    from qpumesh.node.mitigation import ZneConfig
    from qpumesh.node.noise import NoiseConfig
    from qpumesh.wire.hardware import PRESETS

    zne = ZneConfig((1.0, 3.0), "global", "linear")
    noise = NoiseConfig(depolarizing_1q=0.01)
    address, _ = node_server(hardware=PRESETS["trapped-ion"], noise=noise, zne=zne)
    a = sympy.Symbol("a")
    q0, q1 = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.ry(a).on(q0), cirq.CNOT(q0, q1))
    with NodeClient(address, timeout=30) as node:
        info = node.info()
        assert (info.hardware, info.noise.mitigation) == ("trapped-ion", "zne linear global 1,3")
        result = node.evaluate_detailed(circuit, [cirq.Z(q1)], {"a": [0.1, 0.2]}, shots=100, seed=1)
        # Two rows on two folded circuits, one measured term, 100 shots each.
        assert (result.executions, result.shots) == (4, 400)
        assert result.hardware_seconds > 4 * PRESETS["trapped-ion"].circuit_seconds
        gradient = node.shift_gradient_detailed(circuit, [cirq.Z(q1)], {"a": 0.1})
        assert gradient.hardware_seconds > 0 and gradient.shift_rule_executions > 0
