"""The job spec and its message: round trips, defaults, validation naming the field, flags."""

from __future__ import annotations

import dataclasses

import pytest

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.job_spec import FIELDS, JobSpec, SpecError, flag_of, spec_from_proto, spec_to_proto


def test_spec_round_trips_through_the_message_with_every_field_set() -> None:
    spec = JobSpec(
        name="run",
        task="narma",
        narma_order=5,
        model="centric",
        qubits=5,
        partitions=0,
        layers=3,
        ansatz="chen2020",
        epochs=7,
        batch_size=3,
        window=6,
        lr=0.05,
        optimizer="adam",
        seed=2**40,
        shots=100,
        train_fraction=0.5,
        series_length=60,
        extra={"k": "v"},
    )
    msg = spec_to_proto(spec)
    for f in dataclasses.fields(JobSpec):
        if f.name not in ("extra", "series"):
            assert msg.HasField(f.name), f.name
    wire = pb.JobSpec.FromString(msg.SerializeToString())
    assert spec_from_proto(wire) == spec


def test_a_series_travels_with_the_spec_and_listings_leave_its_values_out() -> None:
    values = [0.5, 1.5, -2.0, 3.25, 4.0, 5.5, 6.0, 7.5]
    spec = JobSpec(task="csv", series=values, csv_column="price")
    msg = pb.JobSpec.FromString(spec_to_proto(spec).SerializeToString())
    assert list(msg.series.values) == values and msg.series.length == len(values)
    assert spec_from_proto(msg) == spec and spec.series == tuple(values)
    listed = spec_to_proto(spec, series_values=False)
    assert not listed.series.values and listed.series.length == len(values)
    assert JobSpec.from_dict(spec.to_dict()) == spec  # the store's JSON round trip


def test_default_spec_survives_the_wire_even_for_zero_and_empty_values() -> None:
    spec = JobSpec()
    msg = pb.JobSpec.FromString(spec_to_proto(spec).SerializeToString())
    # seed=0 and name="" are defaults that proto3 optional still marks as present.
    assert msg.HasField("seed") and msg.HasField("name")
    assert spec_from_proto(msg) == spec


def test_unset_fields_take_the_jobspec_defaults() -> None:
    spec = spec_from_proto(pb.JobSpec(epochs=3, qubits=6))
    assert spec == JobSpec(epochs=3, qubits=6)


def test_explicit_zero_is_not_mistaken_for_unset() -> None:
    # partitions=0 means "auto"; the default is 2, so presence must be honoured.
    assert spec_from_proto(pb.JobSpec(partitions=0)).partitions == 0


@pytest.mark.parametrize(
    ("msg", "field", "text"),
    [
        (pb.JobSpec(qubits=1), "qubits", "qubits: must be between 2 and 1024, got 1"),
        (pb.JobSpec(qubits=1025, partitions=0), "qubits", "qubits: must be between 2 and 1024, got 1025"),
        (pb.JobSpec(qubits=64, partitions=257), "partitions", "partitions: must be between 0 and 256"),
        (
            pb.JobSpec(qubits=4, partitions=4),
            "partitions",
            "4 parts exceed the hidden size d_h = 3 (every part writes a hidden unit); use --partitions <= 3",
        ),
        (
            pb.JobSpec(qubits=200, partitions=2),
            "partitions",
            "up to 100 qubits wide, and a part may have at most 64; use --partitions >= 4",
        ),
        (
            pb.JobSpec(model="centric", qubits=65),
            "qubits",
            "one circuit of 65 qubits, and a node takes at most 64",
        ),
        (pb.JobSpec(epochs=0), "epochs", "epochs: must be between 1"),
        (pb.JobSpec(task="weather"), "task", "task: must be one of"),
        (pb.JobSpec(model="quantum"), "model", "model: must be one of"),
        (pb.JobSpec(lr=float("nan")), "lr", "lr: must be a positive finite number"),
        (pb.JobSpec(lr=-1.0), "lr", "lr: must be a positive"),
        (pb.JobSpec(train_fraction=1.0), "train_fraction", "train_fraction: must be in (0, 1)"),
        (pb.JobSpec(seed=2**63), "seed", "seed: must be between"),
        (pb.JobSpec(task="csv"), "series", "series: task 'csv' needs the series"),
        (pb.JobSpec(series=pb.Series(values=[1.0] * 9)), "series", "series: a series is for task 'csv'"),
        (pb.JobSpec(task="csv", series=pb.Series(values=[1.0, 2.0])), "series", "needs at least 7"),
        (pb.JobSpec(task="csv", series=pb.Series(values=[1.0] * 20_001)), "series", "at most 20000"),
        (pb.JobSpec(task="csv", series=pb.Series(values=[1.0] * 8 + [float("nan")])), "series", "finite"),
        (pb.JobSpec(series_length=10**7), "series_length", "must be between 7 and 20000"),
        (pb.JobSpec(name="x" * 201), "name", "201 characters; at most 200"),
        (pb.JobSpec(extra={f"k{i}": "v" for i in range(33)}), "extra", "33 entries; at most 32"),
        (pb.JobSpec(extra={"k": "v" * 1025}), "extra", "1025 characters; at most 1024"),
        (pb.JobSpec(window=10, series_length=12), "series_length", "series_length: must be between 13"),
    ],
)
def test_bad_values_raise_spec_error_naming_the_field(msg: pb.JobSpec, field: str, text: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_proto(msg)
    assert info.value.field == field
    assert text in str(info.value)


def test_width_is_bounded_by_parts_not_by_a_fixed_30() -> None:
    # 64 qubits over 16 small QPUs, and the widest models the bounds allow.
    assert JobSpec(qubits=64, partitions=16).partitions == 16
    assert JobSpec(qubits=1024, partitions=256).qubits == 1024
    assert JobSpec(qubits=1024, partitions=0).partitions == 0  # auto: the planner checks the nodes
    assert JobSpec(model="centric", qubits=64).qubits == 64


def test_the_dataclass_fields_are_the_message_fields() -> None:
    assert {f.name for f in dataclasses.fields(JobSpec)} == {f.name for f in pb.JobSpec.DESCRIPTOR.fields}
    # Every scalar field is proto3 `optional`, so an explicit 0 or "" is told apart from unset.
    assert all(pb.JobSpec.DESCRIPTOR.fields_by_name[name].has_presence for name in FIELDS)


def test_every_field_has_a_train_flag_and_choices_match_validation() -> None:
    fields = {f.name: f for f in dataclasses.fields(JobSpec)}
    flags = [flag_of(fields[name]) for name in FIELDS]
    assert len(set(flags)) == len(FIELDS) and flag_of(fields["csv_path"]) == "--server-csv"
    assert flag_of(fields["batch_size"]) == "--batch-size"
    for name in ("task", "model", "ansatz", "optimizer"):
        for choice in fields[name].metadata["choices"]:
            circuit = "{}" if choice == "custom" else ""  # a custom ansatz brings its circuit
            JobSpec(**{name: choice, "csv_path": "x.csv", "ansatz_circuit": circuit})
