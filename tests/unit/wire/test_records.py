"""Flat messages as records: every field, by the message's names, values coerced by type."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.records import fields, from_record, to_record


def test_a_record_has_every_field_of_the_message() -> None:
    stats = pb.NodeStats(address="127.0.0.1:1", node_id="n1", healthy=True, calls=10, p95_latency_ms=4.0)
    record = to_record(stats)
    assert list(record) == list(fields(pb.NodeStats)) and record["in_flight"] == 0
    assert from_record(pb.NodeStats, record) == stats


def test_values_from_json_or_numpy_are_coerced_and_unknown_keys_ignored() -> None:
    values = {"epoch": 3.0, "train_loss": np.float64(0.5), "test_r2": math.nan, "rounds": np.int64(56)}
    values["unrelated"] = 1
    metrics = from_record(pb.EpochMetrics, values)
    assert metrics.epoch == 3 and metrics.train_loss == 0.5 and metrics.rounds == 56
    assert math.isnan(metrics.test_r2)  # json_format would refuse a NaN
    assert from_record(pb.FaultEvent, {"kind": "timeout", "node": None}).node == ""


def test_only_flat_messages_are_records() -> None:
    with pytest.raises(TypeError, match=r"Job\.spec is not a scalar field"):
        from_record(pb.Job, {"spec": {}})
    with pytest.raises(ValueError):
        from_record(pb.EpochMetrics, {"epoch": "three"})
