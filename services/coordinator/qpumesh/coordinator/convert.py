"""Conversions between the coordinator's domain objects and its protobuf messages.

The coordinator service, the ``CoordinatorClient`` and the CLI all go through
these functions, so a ``JobSpec`` means the same thing on both sides of the
wire. The rules:

- ``spec_to_proto`` sets *every* field, so a stored or echoed spec is explicit.
- ``spec_from_proto`` takes unset (optional) fields from ``JobSpec``'s defaults
  and validates the result; an unusable value raises ``SpecError`` naming the
  field (the servicer turns that into INVALID_ARGUMENT).
- Job states travel as the short upper-case names ``QUEUED``, ``RUNNING``,
  ``SUCCEEDED``, ``FAILED``, ``CANCELLED`` inside the coordinator (SQLite rows,
  JSON) and as ``JobState`` enum values on the wire.
- Epoch metrics, node statistics and fault events are plain mappings (or
  dataclasses) with exactly the field names of their messages, which keeps this
  module free of torch and grpc imports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from qpumesh.coordinator.spec import JobSpec
from qpumesh.v1 import coordinator_pb2 as pb

_SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(JobSpec) if f.name != "extra")
"""Scalar JobSpec fields; each is an ``optional`` field of the same name in the message."""

STATES: tuple[str, ...] = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
"""Every job state a job can be in, in lifecycle order."""

FINAL_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
"""States a job never leaves; a WatchJob stream ends once one is reached."""

_PREFIX = "JOB_STATE_"

EPOCH_FIELDS: tuple[str, ...] = tuple(f.name for f in pb.EpochMetrics.DESCRIPTOR.fields)
NODE_FIELDS: tuple[str, ...] = tuple(f.name for f in pb.NodeStats.DESCRIPTOR.fields)
FAULT_FIELDS: tuple[str, ...] = tuple(f.name for f in pb.FaultEvent.DESCRIPTOR.fields)


# --------------------------------------------------------------------------- specs


def spec_to_proto(spec: JobSpec) -> pb.JobSpec:
    """Return the message for ``spec`` with every field explicitly set."""
    msg = pb.JobSpec(**{name: getattr(spec, name) for name in _SPEC_FIELDS})
    msg.extra.update({str(k): str(v) for k, v in spec.extra.items()})
    return msg


def spec_from_proto(msg: pb.JobSpec) -> JobSpec:
    """Build and validate a ``JobSpec`` from its message.

    Unset optional fields take ``JobSpec``'s defaults, so a client may send only
    what it wants to change.

    Raises:
        SpecError: naming the first field with an unusable value.
    """
    kwargs: dict[str, Any] = {}
    for name in _SPEC_FIELDS:
        if msg.HasField(name):
            kwargs[name] = getattr(msg, name)
    kwargs["extra"] = dict(msg.extra)
    return JobSpec(**kwargs)


# --------------------------------------------------------------------------- states


def state_to_proto(state: str) -> pb.JobState:
    """Map a state name (``"RUNNING"``, case-insensitive) to its ``JobState`` value.

    Raises:
        ValueError: for a name that is not a job state.
    """
    name = state.upper().removeprefix(_PREFIX)
    if name not in STATES:
        raise ValueError(f"state: must be one of {', '.join(STATES)}; got {state!r}")
    return cast(pb.JobState, pb.JobState.Value(_PREFIX + name))


def state_from_proto(value: int) -> str | None:
    """Map a ``JobState`` value to its state name; ``None`` for ``JOB_STATE_UNSPECIFIED``.

    Raises:
        ValueError: for a number that is not a ``JobState`` value.
    """
    try:
        full = pb.JobState.Name(cast(pb.JobState, value))
    except ValueError:
        raise ValueError(f"state: unknown JobState value {value}") from None
    name = full.removeprefix(_PREFIX)
    return None if name == "UNSPECIFIED" else name


def is_final(state: str) -> bool:
    """Whether a job in ``state`` will never change state again."""
    return state.upper().removeprefix(_PREFIX) in FINAL_STATES


# --------------------------------------------------------------------------- metrics and stats


def _as_mapping(obj: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    """Return a dataclass instance, an object with ``to_dict()`` or a mapping as a mapping."""
    if isinstance(obj, Mapping):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return result
    raise TypeError(f"cannot convert {type(obj).__name__} to a message: not a mapping or dataclass")


def _pick(values: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Keep the entries of ``values`` that are message fields; ``None`` counts as unset."""
    return {name: values[name] for name in fields if values.get(name) is not None}


def epoch_metrics_to_proto(metrics: Mapping[str, Any] | Any) -> pb.EpochMetrics:
    """Convert ``training.EpochMetrics`` (or its ``to_dict()``) to its message."""
    values = _pick(_as_mapping(metrics), EPOCH_FIELDS)
    for name in ("epoch", "circuit_evaluations", "rounds"):
        if name in values:
            values[name] = int(values[name])
    for name in ("train_loss", "test_loss", "test_r2", "wall_seconds"):
        if name in values:
            values[name] = float(values[name])
    return pb.EpochMetrics(**values)


def epoch_metrics_from_proto(msg: pb.EpochMetrics) -> dict[str, Any]:
    """Return an ``EpochMetrics`` message as a plain dict with the message's field names."""
    return {name: getattr(msg, name) for name in EPOCH_FIELDS}


def node_stats_to_proto(stats: Mapping[str, Any] | Any) -> pb.NodeStats:
    """Convert a pool ``NodeStatus`` (dataclass or mapping) to a ``NodeStats`` message."""
    values = _pick(_as_mapping(stats), NODE_FIELDS)
    for name in ("address", "node_id", "backend"):
        if name in values:
            values[name] = str(values[name])
    if "healthy" in values:
        values["healthy"] = bool(values["healthy"])
    for name in ("max_qubits", "in_flight", "calls", "failures", "retries", "hedges"):
        if name in values:
            values[name] = int(values[name])
    for name in ("mean_latency_ms", "p50_latency_ms", "p95_latency_ms"):
        if name in values:
            values[name] = float(values[name])
    return pb.NodeStats(**values)


def node_stats_from_proto(msg: pb.NodeStats) -> dict[str, Any]:
    """Return a ``NodeStats`` message as a plain dict with the message's field names."""
    return {name: getattr(msg, name) for name in NODE_FIELDS}


def fault_to_proto(fault: Mapping[str, Any] | Any) -> pb.FaultEvent:
    """Convert a pool ``FaultRecord`` (dataclass or mapping) to a ``FaultEvent`` message."""
    values = _pick(_as_mapping(fault), FAULT_FIELDS)
    if "time" in values:
        values["time"] = float(values["time"])
    for name in ("node", "kind", "detail"):
        if name in values:
            values[name] = str(values[name])
    return pb.FaultEvent(**values)


def fault_from_proto(msg: pb.FaultEvent) -> dict[str, Any]:
    """Return a ``FaultEvent`` message as a plain dict with the message's field names."""
    return {name: getattr(msg, name) for name in FAULT_FIELDS}


def plain(obj: Mapping[str, Any] | Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Return a dataclass or mapping as a JSON-ready dict restricted to ``fields``.

    Used to store node stats and fault records in SQLite with the same keys as
    their messages.
    """
    return _pick(_as_mapping(obj), fields)
