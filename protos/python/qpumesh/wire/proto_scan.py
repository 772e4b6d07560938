"""Counting the fields of a serialized protobuf message before parsing it.

Parsing is one C call that holds the GIL for as long as it takes, and its cost grows with
the number of fields, not with the bytes: 64 MiB of one-letter strings or tiny
sub-messages take seconds, while 64 MiB of tensor data (one ``bytes`` field) take
milliseconds. A server that must keep answering health checks can therefore bound the
fields of a request first: ``count_fields`` walks the wire format in Python (which gives
the GIL up every few milliseconds), descends into fields whose type is a message, counts
the elements of packed repeated fields, and stops as soon as the count passes the limit,
so its own cost is bounded by the limit too.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

__all__ = ["count_fields"]

_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = range(6)
_HIGH_BIT_BYTES = bytes(range(128, 256))
_FIXED64_TYPES = frozenset(
    {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
)
_FIXED32_TYPES = frozenset(
    {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}
)


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _packed_count(chunk: memoryview, field: FieldDescriptor) -> int:
    if field.type in _FIXED64_TYPES:
        return len(chunk) // 8
    if field.type in _FIXED32_TYPES:
        return len(chunk) // 4
    return len(bytes(chunk).translate(None, _HIGH_BIT_BYTES))  # the bytes that end a varint


def count_fields(data: bytes, descriptor: Descriptor, limit: int) -> int:
    """Count the fields of a serialized ``descriptor`` message, recursively.

    Every field occurrence counts one, every element of a packed repeated field one, and
    the fields inside message-typed fields are counted too (strings and bytes are not
    looked into). The walk stops once the count exceeds ``limit``.

    Args:
        data: the serialized message.
        descriptor: its type.
        limit: stop counting after this many.

    Returns:
        The count, or a number above ``limit`` when there are more.

    Raises:
        DecodeError: the bytes are not a well-formed message (truncated fields, bad wire types).
    """
    view = memoryview(data)
    count = 0
    stack: list[tuple[int, int, Descriptor]] = [(0, len(view), descriptor)]
    while stack:
        pos, end, message = stack.pop()
        fields = message.fields_by_number
        while pos < end:
            key, pos = _varint(view, pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise DecodeError("field number 0")
            count += 1
            if count > limit:
                return count
            if wire == _VARINT:
                _, pos = _varint(view, pos, end)
            elif wire == _FIXED64:
                pos += 8
            elif wire == _FIXED32:
                pos += 4
            elif wire == _LENGTH:
                size, pos = _varint(view, pos, end)
                start, pos = pos, pos + size
                if pos > end:
                    raise DecodeError("truncated length-delimited field")
                field = fields.get(number)
                if field is None:
                    continue
                if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
                    stack.append((start, pos, field.message_type))
                elif field.is_repeated and field.type not in (
                    FieldDescriptor.TYPE_STRING,
                    FieldDescriptor.TYPE_BYTES,
                ):
                    count += max(0, _packed_count(view[start:pos], field) - 1)  # elements, not the header
                    if count > limit:
                        return count
            else:  # groups are not proto3; nothing of ours sends them
                raise DecodeError(f"unsupported wire type {wire}")
            if pos > end:
                raise DecodeError("truncated field")
    return count
