"""What a node lets in before any work: requests in flight, and the fields of a request.

* `Admission` bounds the Evaluate/ShiftGradient requests in flight (executing or waiting for
  an execution slot) to ``workers + max_queued_requests``; one more is refused at once with
  RESOURCE_EXHAUSTED ("node busy"), so an overloaded node answers quickly instead of queueing
  without bound, and health checks and GetInfo always find a server thread.
* `decode_request` counts the protobuf fields of a request before parsing it
  (`limits.MAX_REQUEST_FIELDS`): parsing is one C call that holds the GIL for as long as it
  takes, and that grows with the number of fields, not with the bytes.
"""

from __future__ import annotations

import threading

import grpc
from google.protobuf.message import Message

from qpumesh.node.errors import LimitExceeded
from qpumesh.node.limits import MAX_REQUEST_FIELDS
from qpumesh.wire.handlers import RequestRefused
from qpumesh.wire.proto_scan import count_fields

__all__ = ["Admission", "decode_request"]


def decode_request(raw: bytes, message_type: type[Message]) -> Message:
    """Parse a request, after bounding its fields (`limits.MAX_REQUEST_FIELDS`).

    Parsing is one C call holding the GIL for a time that grows with the number of fields;
    counting them first (`count_fields`, in Python, which lets health checks in) bounds it.
    A message cannot have more fields than bytes, so small ones are not counted.

    Raises:
        RequestRefused: RESOURCE_EXHAUSTED, naming the bound.
        DecodeError: Not a well-formed message.
    """
    if len(raw) > MAX_REQUEST_FIELDS:
        fields = count_fields(raw, message_type.DESCRIPTOR, MAX_REQUEST_FIELDS)  # type: ignore[arg-type]
        if fields > MAX_REQUEST_FIELDS:
            raise RequestRefused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the request has more than {MAX_REQUEST_FIELDS} protobuf fields (observables, terms, "
                "symbols, shape entries), over this node's bound; split it into smaller requests",
            )
    return message_type.FromString(raw)


class Admission:
    """At most ``workers + queue`` simulation requests in flight; the rest refused at once.

    Args:
        workers: execution slots.
        queue: requests that may wait for a slot.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self.limit = workers + queue
        self.queue = queue
        self._in_flight = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        """Take a place for one request; `leave` gives it back.

        Raises:
            LimitExceeded: every place is taken (RESOURCE_EXHAUSTED: try later or elsewhere).
        """
        with self._lock:
            if self._in_flight >= self.limit:
                raise LimitExceeded(
                    f"node busy: {self._in_flight} requests are executing or queued, this node's bound "
                    f"(workers + max_queued_requests={self.queue}); retry later or on another node"
                )
            self._in_flight += 1

    def leave(self) -> None:
        """Give back the place `enter` took."""
        with self._lock:
            self._in_flight -= 1
