from __future__ import annotations

import dataclasses

import pytest

from qpumesh.coordinator import convert
from qpumesh.coordinator.spec import JobSpec, SpecError
from qpumesh.v1 import coordinator_pb2 as pb


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
    msg = convert.spec_to_proto(spec)
    for f in dataclasses.fields(JobSpec):
        if f.name != "extra":
            assert msg.HasField(f.name), f.name
    wire = pb.JobSpec.FromString(msg.SerializeToString())
    assert convert.spec_from_proto(wire) == spec


def test_default_spec_survives_the_wire_even_for_zero_and_empty_values() -> None:
    spec = JobSpec()
    msg = pb.JobSpec.FromString(convert.spec_to_proto(spec).SerializeToString())
    # seed=0 and name="" are defaults that proto3 optional still marks as present.
    assert msg.HasField("seed") and msg.HasField("name")
    assert convert.spec_from_proto(msg) == spec


def test_unset_fields_take_the_jobspec_defaults() -> None:
    spec = convert.spec_from_proto(pb.JobSpec(epochs=3, qubits=6))
    assert spec == JobSpec(epochs=3, qubits=6)


def test_explicit_zero_is_not_mistaken_for_unset() -> None:
    # partitions=0 means "auto"; the default is 2, so presence must be honoured.
    assert convert.spec_from_proto(pb.JobSpec(partitions=0)).partitions == 0


@pytest.mark.parametrize(
    ("msg", "field", "text"),
    [
        (pb.JobSpec(qubits=1), "qubits", "qubits: must be between 2 and 30, got 1"),
        (pb.JobSpec(epochs=0), "epochs", "epochs: must be between 1"),
        (pb.JobSpec(task="weather"), "task", "task: must be one of"),
        (pb.JobSpec(model="quantum"), "model", "model: must be one of"),
        (pb.JobSpec(lr=float("nan")), "lr", "lr: must be a positive finite number"),
        (pb.JobSpec(lr=-1.0), "lr", "lr: must be a positive"),
        (pb.JobSpec(train_fraction=1.0), "train_fraction", "train_fraction: must be in (0, 1)"),
        (pb.JobSpec(seed=2**63), "seed", "seed: must be between"),
        (pb.JobSpec(task="csv"), "csv_path", "csv_path: task 'csv' needs"),
        (pb.JobSpec(window=10, series_length=12), "series_length", "series_length: must be between 13"),
    ],
)
def test_bad_values_raise_spec_error_naming_the_field(msg: pb.JobSpec, field: str, text: str) -> None:
    with pytest.raises(SpecError) as info:
        convert.spec_from_proto(msg)
    assert info.value.field == field
    assert text in str(info.value)


def test_state_names_map_to_enum_values_and_back() -> None:
    for name in convert.STATES:
        value = convert.state_to_proto(name)
        assert pb.JobState.Name(value) == f"JOB_STATE_{name}"
        assert convert.state_from_proto(value) == name
    assert convert.state_to_proto("running") == pb.JOB_STATE_RUNNING
    assert convert.state_to_proto("JOB_STATE_FAILED") == pb.JOB_STATE_FAILED
    assert convert.state_from_proto(pb.JOB_STATE_UNSPECIFIED) is None
    with pytest.raises(ValueError, match="state: must be one of"):
        convert.state_to_proto("PAUSED")
    with pytest.raises(ValueError, match="unknown JobState value 99"):
        convert.state_from_proto(99)


def test_final_states() -> None:
    assert [s for s in convert.STATES if convert.is_final(s)] == ["SUCCEEDED", "FAILED", "CANCELLED"]


def test_epoch_metrics_from_a_dict_or_an_object_with_to_dict() -> None:
    values = {
        "epoch": 3,
        "train_loss": 0.5,
        "test_loss": 0.25,
        "test_r2": 0.9,
        "wall_seconds": 1.5,
        "circuit_evaluations": 1234,
        "rounds": 56,
        "unrelated": "ignored",
    }

    class Metrics:
        def to_dict(self) -> dict[str, object]:
            return values

    for source in (values, Metrics()):
        msg = convert.epoch_metrics_to_proto(source)
        out = convert.epoch_metrics_from_proto(msg)
        assert out == {k: v for k, v in values.items() if k != "unrelated"}


def test_node_stats_and_faults_from_dataclasses() -> None:
    @dataclasses.dataclass
    class NodeStatus:
        address: str = "127.0.0.1:1"
        node_id: str = "n1"
        healthy: bool = True
        max_qubits: int = 8
        backend: str = "batched"
        in_flight: int = 0
        calls: int = 10
        failures: int = 1
        retries: int = 2
        hedges: int = 3
        mean_latency_ms: float = 1.5
        p50_latency_ms: float = 1.0
        p95_latency_ms: float = 4.0

    @dataclasses.dataclass
    class FaultRecord:
        time: float
        node: str
        kind: str
        detail: str

    node = convert.node_stats_to_proto(NodeStatus())
    assert convert.node_stats_from_proto(node) == dataclasses.asdict(NodeStatus())
    fault = convert.fault_to_proto(FaultRecord(1.0, "127.0.0.1:1", "timeout", "deadline exceeded"))
    assert convert.fault_from_proto(fault) == {
        "time": 1.0,
        "node": "127.0.0.1:1",
        "kind": "timeout",
        "detail": "deadline exceeded",
    }
    assert convert.plain(FaultRecord(2.0, "a", "b", "c"), convert.FAULT_FIELDS)["kind"] == "b"
    with pytest.raises(TypeError, match="not a mapping or dataclass"):
        convert.fault_to_proto(42)
