import cirq
import numpy as np
import pytest
import sympy

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.circuits import (
    WireCircuit,
    circuit_hash,
    observables_from_proto,
    observables_to_proto,
    pauli_terms,
)
from qpumesh.wire.tensors import from_tensor, to_tensor


def test_tensor_round_trip_keeps_shape_and_values() -> None:
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(7, 3, 2))
    out = from_tensor(pb.Tensor.FromString(to_tensor(arr).SerializeToString()))
    assert out.shape == (7, 3, 2)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


def test_tensor_with_wrong_byte_count_is_refused_with_the_field_name() -> None:
    msg = pb.Tensor(shape=[2, 3], data=b"\0" * 40)
    with pytest.raises(ValueError, match=r"params: shape \[2, 3\] needs 48 bytes"):
        from_tensor(msg, "params")


def test_circuit_hash_is_sha256_of_the_json_and_stable() -> None:
    a, b = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.H(a), cirq.ry(sympy.Symbol("t")).on(b), cirq.CNOT(a, b))
    wire = WireCircuit.from_cirq(circuit)
    assert wire.hash == circuit_hash(wire.cirq_json)
    assert WireCircuit.from_cirq(cirq.read_json(json_text=wire.cirq_json)).hash == wire.hash
    assert wire.to_proto(include_json=False).cirq_json == ""


def test_pauli_terms_are_dense_over_sorted_qubits() -> None:
    q = cirq.LineQubit.range(3)
    obs = 0.5 * cirq.Z(q[2]) * cirq.X(q[0]) + cirq.Y(q[1])
    terms = pauli_terms(obs, q)
    assert sorted(terms) == sorted([(0.5, "XIZ"), (1.0, "IYI")])
    assert observables_from_proto(observables_to_proto([terms])) == [terms]


def test_pauli_terms_reject_foreign_qubits_and_complex_coefficients() -> None:
    q = cirq.LineQubit.range(2)
    with pytest.raises(ValueError, match="not in the circuit"):
        pauli_terms(cirq.Z(cirq.LineQubit(5)), q)
    with pytest.raises(ValueError, match="non-real"):
        pauli_terms(1j * cirq.Z(q[0]), q)
