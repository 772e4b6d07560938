"""Job states: the proto's enum, their names, and which ones are final."""

from __future__ import annotations

import pytest

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.job_state import FINAL_STATES, JobState


def test_every_state_of_the_proto_is_a_job_state_with_its_number() -> None:
    names = {name.removeprefix("JOB_STATE_") for name in pb.JobState.keys()} - {"UNSPECIFIED"}  # noqa: SIM118
    assert {state.name for state in JobState} == names
    for state in JobState:
        assert pb.JobState.Name(state.to_proto()) == f"JOB_STATE_{state.name}"
        assert JobState.from_proto(state.to_proto()) is state


def test_names_parse_in_any_spelling() -> None:
    assert JobState.parse("running") is JobState.RUNNING
    assert JobState.parse("JOB_STATE_FAILED") is JobState.FAILED
    assert JobState.parse(" Cancelled ") is JobState.CANCELLED
    assert JobState.RUNNING.label == "running"
    with pytest.raises(ValueError, match="state: must be one of QUEUED, RUNNING"):
        JobState.parse("PAUSED")


def test_unspecified_means_any_state_and_unknown_numbers_are_refused() -> None:
    assert JobState.from_proto(pb.JOB_STATE_UNSPECIFIED) is None
    with pytest.raises(ValueError, match="unknown JobState value 99"):
        JobState.from_proto(99)


def test_final_states() -> None:
    assert [s.name for s in JobState if s.final] == ["SUCCEEDED", "FAILED", "CANCELLED"]
    assert {s for s in JobState if s.final} == FINAL_STATES
