"""Dense float64 tensors on the wire (``qpumesh.v1.Tensor``).

Parameter batches, expectation matrices and Jacobians travel as raw little-endian
doubles plus a shape, like TensorFlow's ``tensor_content``: encoding and decoding a
1000 x 20 batch is a memory copy rather than 20 000 protobuf field operations.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from qpumesh.v1 import qpu_node_pb2 as pb

_DTYPE = np.dtype("<f8")

MAX_DIMENSIONS = 8
"""Most dimensions of a tensor on the wire (every qpumesh tensor has one to three)."""


def to_tensor(array: npt.ArrayLike) -> pb.Tensor:
    """Encode ``array`` (any real numeric array) as a float64 ``Tensor`` message."""
    message = pb.Tensor()
    fill_tensor(message, array)
    return message


def fill_tensor(message: pb.Tensor, array: npt.ArrayLike) -> None:
    """Encode ``array`` into ``message``, a ``Tensor`` field of a message being built.

    The same as ``field.CopyFrom(to_tensor(array))`` without the intermediate message: a
    server's reply is built in place, its data copied once.
    """
    arr = np.ascontiguousarray(np.asarray(array, dtype=_DTYPE))
    message.shape[:] = arr.shape
    message.data = arr.tobytes()


def from_tensor(message: pb.Tensor, name: str = "tensor") -> npt.NDArray[np.float64]:
    """Decode a ``Tensor`` message into a float64 array of its declared shape.

    Args:
        message: the message to decode.
        name: the field's name, used in the error message.

    Raises:
        ValueError: more than ``MAX_DIMENSIONS`` dimensions, or a byte length that does not
            match the declared shape. (Both are checked before anything is allocated: the
            product of a long shape of large numbers alone would take seconds.)
    """
    if len(message.shape) > MAX_DIMENSIONS:
        raise ValueError(
            f"{name}: a shape of {len(message.shape)} dimensions; tensors have at most {MAX_DIMENSIONS}"
        )
    shape = tuple(message.shape)  # int64 entries: Python ints
    expected = 8 * math.prod(shape)
    data = message.data  # each read of a bytes field builds a new bytes object: read it once
    if len(data) != expected:
        raise ValueError(
            f"{name}: shape {list(shape)} needs {expected} bytes of float64 data, got {len(data)}"
        )
    return np.frombuffer(data, dtype=_DTYPE).reshape(shape).astype(np.float64, copy=True)
