"""The states of a training job: ``JobState``, taken from the ``qpumesh.v1.JobState`` enum.

Inside the coordinator (SQLite rows, JSON events) a state travels as its short
upper-case name (``RUNNING``); on the wire as the enum value (``JOB_STATE_RUNNING``);
people type either, in any case. ``JOB_STATE_UNSPECIFIED`` is no state a job can be
in: it means "any state" in ``ListJobs``.
"""

from __future__ import annotations

import enum

from qpumesh.v1 import coordinator_pb2 as pb

_PREFIX = "JOB_STATE_"


class JobState(enum.IntEnum):
    """A job's state; the value is the ``qpumesh.v1.JobState`` number, the name its short name."""

    QUEUED = pb.JOB_STATE_QUEUED
    RUNNING = pb.JOB_STATE_RUNNING
    SUCCEEDED = pb.JOB_STATE_SUCCEEDED
    FAILED = pb.JOB_STATE_FAILED
    CANCELLED = pb.JOB_STATE_CANCELLED

    @property
    def final(self) -> bool:
        """Whether a job in this state never changes state again."""
        return self in FINAL_STATES

    @property
    def label(self) -> str:
        """The lower-case name shown to people ("running")."""
        return self.name.lower()

    def to_proto(self) -> pb.JobState:
        """Return the enum value of the message."""
        return self.value

    @classmethod
    def parse(cls, text: str) -> JobState:
        """Parse "running", "RUNNING" or "JOB_STATE_RUNNING".

        Raises:
            ValueError: naming the states, for anything else.
        """
        name = text.strip().upper().removeprefix(_PREFIX)
        try:
            return cls[name]
        except KeyError:
            names = ", ".join(state.name for state in cls)
            raise ValueError(f"state: must be one of {names}; got {text!r}") from None

    @classmethod
    def from_proto(cls, value: int) -> JobState | None:
        """Map an enum value to its state; None for ``JOB_STATE_UNSPECIFIED`` ("any state").

        Raises:
            ValueError: for a number that is not a ``JobState`` value.
        """
        if value == pb.JOB_STATE_UNSPECIFIED:
            return None
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"state: unknown JobState value {value}") from None


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
"""States a job never leaves; a WatchJob stream ends once one is reached."""

_NAMES = {name.removeprefix(_PREFIX) for name in pb.JobState.keys()}  # noqa: SIM118 (an enum wrapper)
_MISSING = _NAMES - {"UNSPECIFIED", *JobState.__members__}
if _MISSING:  # a state added to coordinator.proto must be added here (and handled) too
    raise ImportError(f"JobState lacks the proto's states {sorted(_MISSING)}")
