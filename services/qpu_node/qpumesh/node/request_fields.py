"""The fields every Evaluate/ShiftGradient request must carry, checked before it is decoded.

Protobuf fills an absent field with its default, so a client in another language that
forgets one would otherwise hear about a consequence ("params.values: shape [] needs 8
bytes") instead of the cause. These checks name the missing field and say what to put
there; the core validates the values themselves.
"""

from __future__ import annotations

from qpumesh.node.errors import InvalidRequest
from qpumesh.v1 import qpu_node_pb2 as pb

_CIRCUIT = (
    "circuit.hash: missing; set it to the SHA-256 of the UTF-8 bytes of circuit.cirq_json as 64 "
    "lower-case hex digits, and send circuit.cirq_json too until the node holds the circuit"
)
_VALUES = (
    "params.values: missing; send the parameter rows as a Tensor with shape [rows, {n}] "
    "(one column per entry of params.symbols) and data = rows x {n} little-endian float64 values"
)
_OBSERVABLES = "observables: missing; send at least one Observable (a list of weighted Pauli strings)"


def _check(request: pb.EvaluateRequest | pb.ShiftGradientRequest) -> None:
    if not request.circuit.hash:
        raise InvalidRequest(_CIRCUIT)
    if not request.observables:
        raise InvalidRequest(_OBSERVABLES)
    values = request.params.values
    if not values.shape and not values.data:
        raise InvalidRequest(_VALUES.format(n=len(request.params.symbols) or "n_symbols"))


def check_evaluate(request: pb.EvaluateRequest) -> None:
    """Raise ``InvalidRequest`` naming the first required field the request lacks."""
    _check(request)


def check_shift_gradient(request: pb.ShiftGradientRequest) -> None:
    """Raise ``InvalidRequest`` naming the first required field the request lacks."""
    _check(request)
