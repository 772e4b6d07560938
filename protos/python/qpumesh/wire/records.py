"""Flat messages as plain records: ``NodeStats``, ``FaultEvent``, ``EpochMetrics`` <-> dicts.

The coordinator stores these messages in SQLite as JSON, and the client writes them to
``metrics.json``; both use dicts with exactly the message's field names, so the field
list has one source: the message's descriptor. Values are coerced by field type, so a
JSON number read back (``5.0`` for a count) or a numpy scalar becomes a valid field
value; non-finite floats pass through (test R² can be NaN, which ``json_format``
refuses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_M = TypeVar("_M", bound=Message)

_COERCE: dict[int, Callable[[Any], Any]] = {
    FieldDescriptor.CPPTYPE_INT32: int,
    FieldDescriptor.CPPTYPE_INT64: int,
    FieldDescriptor.CPPTYPE_UINT32: int,
    FieldDescriptor.CPPTYPE_UINT64: int,
    FieldDescriptor.CPPTYPE_DOUBLE: float,
    FieldDescriptor.CPPTYPE_FLOAT: float,
    FieldDescriptor.CPPTYPE_BOOL: bool,
    FieldDescriptor.CPPTYPE_STRING: str,
}


def fields(message_type: type[Message]) -> tuple[str, ...]:
    """Return the field names of a message type, in declaration order."""
    return tuple(f.name for f in message_type.DESCRIPTOR.fields)


def to_record(message: Message) -> dict[str, Any]:
    """Return every field of a flat message as ``{name: value}`` (unset fields: their defaults)."""
    return {f.name: getattr(message, f.name) for f in message.DESCRIPTOR.fields}


def from_record(message_type: type[_M], values: Mapping[str, Any]) -> _M:
    """Build a flat message from a record; keys that are not fields and ``None`` values are ignored.

    Raises:
        TypeError: the message has a field that is not a scalar (not a flat message).
        ValueError: a value cannot be converted to its field's type.
    """
    kwargs: dict[str, Any] = {}
    for descriptor in message_type.DESCRIPTOR.fields:
        value = values.get(descriptor.name)
        if value is None:
            continue
        coerce = _COERCE.get(descriptor.cpp_type)
        if coerce is None or descriptor.is_repeated:
            raise TypeError(f"{message_type.__name__}.{descriptor.name} is not a scalar field")
        kwargs[descriptor.name] = coerce(value)
    return message_type(**kwargs)
