"""The wire's defences: field counting before parsing, clipped status messages, bounded tensors."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.proto_scan import count_fields
from qpumesh.wire.status import MAX_DETAILS_BYTES, clip, excerpt
from qpumesh.wire.tensors import MAX_DIMENSIONS, from_tensor, to_tensor


def reference_count(message: object) -> int:
    """Fields set in a parsed message, recursively; repeated scalars count each element."""
    total = 0
    for field, value in message.ListFields():  # type: ignore[attr-defined]
        values = value if field.is_repeated else [value]
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            total += len(values) + sum(reference_count(v) for v in values)
        elif field.message_type is not None:  # a map: one entry message with key and value each
            total += 3 * len(values)
        else:
            total += len(values)
    return total


requests = st.builds(
    lambda terms, symbols, shape, json, rows: pb.EvaluateRequest(
        circuit=pb.Circuit(hash="ab" * 32, cirq_json=json),
        observables=[
            pb.Observable(terms=[pb.PauliTerm(coefficient=c, paulis=p) for c, p in obs]) for obs in terms
        ],
        params=pb.ParameterBatch(symbols=symbols, values=pb.Tensor(shape=shape, data=b"\1" * rows)),
        shots=len(symbols),
    ),
    st.lists(
        st.lists(st.tuples(st.floats(0.5, 2), st.text("IXYZ", min_size=1, max_size=5)), max_size=4),
        max_size=5,
    ),
    st.lists(st.text(min_size=1, max_size=4), max_size=6),
    st.lists(st.integers(0, 2**32 - 1), max_size=6),
    st.text(max_size=50),
    st.integers(0, 40),
)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_the_field_count_is_what_the_parser_finds(request: pb.EvaluateRequest) -> None:
    raw = request.SerializeToString()
    assert count_fields(raw, pb.EvaluateRequest.DESCRIPTOR, 10**6) == reference_count(
        pb.EvaluateRequest.FromString(raw)
    )


def test_maps_and_packed_doubles_are_counted() -> None:
    spec = cpb.JobSpec(task="csv", extra={"a": "1", "b": "2"})
    request = cpb.PredictRequest(job_id="j", series=[0.5] * 1000)
    assert count_fields(spec.SerializeToString(), cpb.JobSpec.DESCRIPTOR, 100) == reference_count(spec)
    assert count_fields(request.SerializeToString(), cpb.PredictRequest.DESCRIPTOR, 10**4) == 1001


def test_counting_stops_past_the_limit() -> None:
    request = pb.EvaluateRequest(observables=[pb.Observable(terms=[pb.PauliTerm(paulis="Z")])] * 50_000)
    assert count_fields(request.SerializeToString(), pb.EvaluateRequest.DESCRIPTOR, 1000) == 1001


@pytest.mark.parametrize(
    "raw",
    [b"\x0a\xff\xff\xff\x0f" + b"\0" * 8, b"\x0a\x05ab", b"\xff", b"\x00", b"\x0b\x0c", b"\x09\x01"],
    ids=["long length", "short field", "unfinished varint", "field zero", "group", "short fixed64"],
)
def test_malformed_bytes_are_a_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        count_fields(raw, pb.EvaluateRequest.DESCRIPTOR, 100)


def test_a_status_message_is_clipped_to_its_bound_in_utf8_bytes() -> None:
    assert clip("short") == "short"
    clipped = clip("é" * 5000)
    assert len(clipped.encode()) <= MAX_DETAILS_BYTES
    assert clipped.endswith("[10000 bytes, clipped]")
    assert clip("x" * 100, limit=60).startswith("x" * 20)


def test_an_excerpt_quotes_a_long_input_briefly() -> None:
    assert excerpt("abc") == '"abc"'
    quoted = excerpt("s" * 1_000_000)
    assert len(quoted) < 100 and "1000002 chars" in quoted


def test_a_tensor_of_many_dimensions_is_refused_before_its_size_is_computed() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_DIMENSIONS}"):
        from_tensor(pb.Tensor(shape=[2**32 - 1] * 50_000), "params.values")
    array = np.arange(2.0 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(from_tensor(to_tensor(array)), array)
