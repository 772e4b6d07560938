"""Calls to a QPU node: requests, the circuit resend policy, and reply decoding.

``NodeClient`` (blocking) and the coordinator's mesh (asyncio) both call nodes through
this module, on the generated ``QPUNodeStub``, so the protocol is written once:

1. ``evaluate_request`` / ``shift_gradient_request`` build the request (observables,
   parameter batch, sampling) without its circuit;
2. ``call`` / ``call_async`` send it with the circuit *by hash* when the node is known
   to hold it (``HeldCircuits``) and in full otherwise; a node that has lost it (restart,
   cache eviction) answers NOT_FOUND and the request is sent once more with the Cirq
   JSON. Any other failure is the caller's to handle (``grpc.RpcError`` as raised);
3. ``decode_evaluation`` / ``decode_gradient`` check the reply's shapes against the
   request and return numpy arrays, the Jacobian's columns in the requested order.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import grpc
import numpy as np
import numpy.typing as npt

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.wire.circuits import PauliTerms, WireCircuit, observables_to_proto
from qpumesh.wire.errors import status_code
from qpumesh.wire.tensors import fill_tensor, from_tensor, to_tensor

FloatArray = npt.NDArray[np.float64]
NodeRequest = pb.EvaluateRequest | pb.ShiftGradientRequest
_Reply = TypeVar("_Reply")
_Request = TypeVar("_Request", pb.EvaluateRequest, pb.ShiftGradientRequest)


class HeldCircuits:
    """The hashes of the circuits one node is believed to hold (thread-safe)."""

    def __init__(self) -> None:
        self._hashes: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, digest: object) -> bool:
        with self._lock:
            return digest in self._hashes

    def add(self, digest: str) -> None:
        """Record that the node now holds ``digest``."""
        with self._lock:
            self._hashes.add(digest)

    def discard(self, digest: str) -> None:
        """Record that the node lost ``digest``."""
        with self._lock:
            self._hashes.discard(digest)

    def clear(self) -> None:
        """Forget everything (the node restarted, or another node answers at its address)."""
        with self._lock:
            self._hashes.clear()


# --------------------------------------------------------------------------- requests


def parameter_batch(symbols: Sequence[str], values: npt.ArrayLike) -> pb.ParameterBatch:
    """Return the batch of parameter rows ``values`` (rows, len(symbols)) named by ``symbols``."""
    return pb.ParameterBatch(symbols=list(symbols), values=to_tensor(values))


def _set_sampling(request: NodeRequest, shots: int | None, seed: int | None) -> None:
    """Set the optional shots/seed fields, refusing values the wire cannot carry."""
    if shots is not None:
        if not 0 <= shots < 2**32:
            raise ValueError(f"shots must be in 0..{2**32 - 1}, got {shots}")
        request.shots = shots
    if seed is not None:
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in 0..{2**64 - 1}, got {seed}")
        request.seed = seed


def evaluate_request(
    observables: Sequence[PauliTerms],
    params: pb.ParameterBatch,
    *,
    shots: int | None = 0,
    seed: int | None = None,
) -> pb.EvaluateRequest:
    """Build an Evaluate request (its circuit is set when it is sent).

    Args:
        observables: dense Pauli-term observables over the circuit's qubits.
        params: the parameter rows.
        shots: shots per observable term; 0 = exact; None = the node's default.
        seed: seed of the node's shot sampler.

    Raises:
        ValueError: shots or seed out of the wire's range.
    """
    request = pb.EvaluateRequest(observables=observables_to_proto(observables), params=params)
    _set_sampling(request, shots, seed)
    return request


_METHOD_PREFIX = "GRADIENT_METHOD_"
GRADIENT_METHODS = tuple(name.removeprefix(_METHOD_PREFIX).lower() for name in pb.GradientMethod.keys())  # noqa: SIM118
"""How a node may differentiate (``qpumesh.v1.GradientMethod``): "auto", "parameter_shift", "adjoint"."""


def gradient_method(name: str) -> pb.GradientMethod:
    """Return the ``GradientMethod`` value of "auto", "parameter_shift" or "adjoint".

    Raises:
        ValueError: naming the methods, for any other name.
    """
    try:
        return cast(pb.GradientMethod, pb.GradientMethod.Value(_METHOD_PREFIX + name.upper()))
    except ValueError:
        raise ValueError(f"unknown gradient method {name!r}; use one of {list(GRADIENT_METHODS)}") from None


_METHOD_NAMES = {
    int(value): name.removeprefix(_METHOD_PREFIX).lower() for name, value in pb.GradientMethod.items()
}


def method_name(value: int) -> str:
    """Return the name of a ``GradientMethod`` value ("adjoint"); an unknown number stays recognisable."""
    name = _METHOD_NAMES.get(value)
    return name if name is not None else f"GradientMethod({value})"


def shift_gradient_request(
    observables: Sequence[PauliTerms],
    params: pb.ParameterBatch,
    *,
    wrt: Sequence[str] = (),
    cotangents: npt.ArrayLike | None = None,
    include_values: bool = False,
    shots: int | None = 0,
    seed: int | None = None,
    method: str = "auto",
) -> pb.ShiftGradientRequest:
    """Build a ShiftGradient request (its circuit is set when it is sent).

    Args:
        observables: dense Pauli-term observables over the circuit's qubits.
        params: the parameter rows.
        wrt: symbols to differentiate by; empty = every column of ``params``.
        cotangents: (rows, n_observables) upstream gradients for a vector-Jacobian product.
        include_values: also return the unshifted expectations.
        shots: shots per observable term; 0 = exact; None = the node's default.
        seed: seed of the node's shot sampler.
        method: "auto" (adjoint when exact, else the shift rule), "parameter_shift" or "adjoint".

    Raises:
        ValueError: shots or seed out of the wire's range, or an unknown method.
    """
    request = pb.ShiftGradientRequest(
        observables=observables_to_proto(observables),
        params=params,
        wrt=list(wrt),
        include_values=include_values,
        method=gradient_method(method),
    )
    if cotangents is not None:
        request.cotangents.CopyFrom(to_tensor(cotangents))
    _set_sampling(request, shots, seed)
    return request


class RequestTemplates:
    """Requests built once per kind of task, so that a call only fills in its parameter values.

    A training run sends the same circuits with the same observables, symbols and
    sampling settings round after round; only the parameter rows (and a VJP's
    cotangents) change. ``shift_gradient`` and ``evaluate`` return a fresh request equal
    to ``shift_gradient_request`` / ``evaluate_request``'s (the same bytes on the wire),
    copied from a prototype kept per fixed part. Observables are recognised by identity
    (the prototype keeps them alive, so an id is never reused while it is cached; a list
    changed in place is therefore not noticed: callers pass lists they keep as they are); at most
    ``size`` prototypes are kept, then the cache starts over.

    Not thread-safe: one instance per thread (the mesh's event loop).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._prototypes: dict[tuple[object, ...], tuple[Sequence[PauliTerms], NodeRequest]] = {}

    def _request(
        self,
        key: tuple[object, ...],
        observables: Sequence[PauliTerms],
        build: Callable[[], _Request],
        values: npt.ArrayLike,
    ) -> _Request:
        """Return a copy of ``key``'s prototype (built by ``build`` when new) with ``values`` filled in."""
        entry = self._prototypes.get(key)
        if entry is None or entry[0] is not observables:
            if len(self._prototypes) >= self.size:
                self._prototypes.clear()
            entry = (observables, build())
            self._prototypes[key] = entry
        prototype = cast(_Request, entry[1])
        request = type(prototype)()
        request.CopyFrom(prototype)
        fill_tensor(request.params.values, values)
        return request

    def shift_gradient(
        self,
        observables: Sequence[PauliTerms],
        symbols: Sequence[str],
        values: npt.ArrayLike,
        *,
        wrt: Sequence[str] = (),
        cotangents: npt.ArrayLike | None = None,
        include_values: bool = False,
        shots: int | None = 0,
        seed: int | None = None,
    ) -> pb.ShiftGradientRequest:
        """``shift_gradient_request(observables, parameter_batch(symbols, values), ...)`` from a prototype.

        Raises:
            ValueError: shots or seed out of the wire's range.
        """
        key = ("ShiftGradient", id(observables), tuple(symbols), tuple(wrt), include_values, shots, seed)
        request = self._request(
            key,
            observables,
            lambda: shift_gradient_request(
                observables, pb.ParameterBatch(symbols=list(symbols)), wrt=wrt, include_values=include_values,
                shots=shots, seed=seed,
            ),
            values,
        )  # fmt: skip
        if cotangents is not None:
            fill_tensor(request.cotangents, cotangents)
        return request

    def evaluate(
        self,
        observables: Sequence[PauliTerms],
        symbols: Sequence[str],
        values: npt.ArrayLike,
        *,
        shots: int | None = 0,
        seed: int | None = None,
    ) -> pb.EvaluateRequest:
        """``evaluate_request(observables, parameter_batch(symbols, values), ...)`` from a prototype.

        Raises:
            ValueError: shots or seed out of the wire's range.
        """
        key = ("Evaluate", id(observables), tuple(symbols), shots, seed)
        return self._request(
            key,
            observables,
            lambda: evaluate_request(
                observables, pb.ParameterBatch(symbols=list(symbols)), shots=shots, seed=seed
            ),
            values,
        )


# --------------------------------------------------------------------------- sending


class _Resend:
    """The circuit policy of one call: by hash when held, once more in full on NOT_FOUND."""

    def __init__(self, request: NodeRequest, circuit: WireCircuit, held: HeldCircuits) -> None:
        self.request, self.circuit, self.held = request, circuit, held
        self.by_hash = circuit.hash in held
        request.circuit.CopyFrom(circuit.to_proto(include_json=not self.by_hash))

    def again(self, error: grpc.RpcError) -> bool:
        """Whether to resend after ``error`` (then the request carries the JSON)."""
        if not self.by_hash or status_code(error) != grpc.StatusCode.NOT_FOUND:
            return False
        self.by_hash = False
        self.held.discard(self.circuit.hash)
        self.request.circuit.CopyFrom(self.circuit.to_proto(include_json=True))
        return True

    def done(self) -> None:
        self.held.add(self.circuit.hash)


def call(
    method: Callable[..., _Reply],
    request: NodeRequest,
    circuit: WireCircuit,
    held: HeldCircuits,
    *,
    timeout: float,
    on_send: Callable[[], None] | None = None,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> _Reply:
    """Send ``request`` with ``circuit`` through a blocking stub method; resend on NOT_FOUND.

    Args:
        method: ``QPUNodeStub(channel).Evaluate`` or ``.ShiftGradient``.
        request: from ``evaluate_request`` / ``shift_gradient_request``.
        circuit: the circuit to run.
        held: what the node is believed to hold; updated.
        timeout: deadline of each send, in seconds.
        on_send: called before each send (for counters).
        metadata: gRPC metadata sent with each send (e.g. the trace context).

    Raises:
        grpc.RpcError: the call failed (a NOT_FOUND only after the resend).
    """
    resend = _Resend(request, circuit, held)
    while True:
        if on_send is not None:
            on_send()
        try:
            reply = method(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            if resend.again(error):
                continue
            raise
        resend.done()
        return reply


async def call_async(
    method: Callable[..., Awaitable[_Reply]],
    request: NodeRequest,
    circuit: WireCircuit,
    held: HeldCircuits,
    *,
    timeout: float,
    on_send: Callable[[], None] | None = None,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> _Reply:
    """``call`` through an asyncio stub method (``QPUNodeStub(aio_channel)``)."""
    resend = _Resend(request, circuit, held)
    while True:
        if on_send is not None:
            on_send()
        try:
            reply = await method(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            if resend.again(error):
                continue
            raise
        resend.done()
        return reply


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Evaluation:
    """A node's answer to an Evaluate request.

    Attributes:
        expectations: shape (rows, n_observables).
        standard_errors: same shape, only when shots > 0 were used; else None.
        backend: the engine that ran the request.
        queue_seconds: time the request waited for an execution slot on the node.
        execute_seconds: time the node spent compiling and simulating.
        hardware_seconds: how long the request takes on the node's hardware profile
            (``qpumesh.wire.hardware``).
        executions: circuit executions (one per row).
        shots: shots taken (0 for exact requests).
    """

    expectations: FloatArray
    standard_errors: FloatArray | None
    backend: str
    queue_seconds: float
    execute_seconds: float
    hardware_seconds: float = 0.0
    executions: int = 0
    shots: int = 0


@dataclass(frozen=True)
class Gradient:
    """A node's answer to a ShiftGradient request.

    Attributes:
        jacobian: shape (rows, n_observables, len(wrt)), or (rows, len(wrt)) when
            cotangents were given (a vector-Jacobian product).
        expectations: shape (rows, n_observables) when asked for; else None.
        wrt: the symbols differentiated, in the order of the last axis of ``jacobian``:
            the requested order (``wrt``, or the parameter columns when it was empty).
        backend: the engine that ran the request.
        queue_seconds: time the request waited for an execution slot on the node.
        execute_seconds: time the node spent compiling and simulating.
        method: the method that ran, "adjoint" or "parameter_shift".
        shift_rule_executions: circuit executions a hardware QPU would need for the request
            by the parameter-shift rule (whichever method ran).
        shift_rule_shots: shots those executions take (0 for exact requests).
        hardware_seconds: how long those executions take on the node's hardware profile.
    """

    jacobian: FloatArray
    expectations: FloatArray | None
    wrt: tuple[str, ...]
    backend: str
    queue_seconds: float
    execute_seconds: float
    method: str = "parameter_shift"
    shift_rule_executions: int = 0
    shift_rule_shots: int = 0
    hardware_seconds: float = 0.0


def _shape(request: NodeRequest) -> tuple[int, int]:
    """(rows, n_observables) of the request's answer."""
    shape = request.params.values.shape
    return (int(shape[0]) if shape else 0), len(request.observables)


def _tensor(
    reply: pb.EvaluateResponse | pb.ShiftGradientResponse,
    name: Literal["expectations", "standard_errors"],
    shape: tuple[int, ...],
) -> FloatArray | None:
    """Decode an optional Tensor field of a reply of known shape; None when unset."""
    if not reply.HasField(name):
        return None
    array = from_tensor(getattr(reply, name), name)
    if array.shape != shape:
        raise ValueError(f"{name} have shape {array.shape}, expected {shape}")
    return array


def decode_evaluation(reply: pb.EvaluateResponse, request: pb.EvaluateRequest) -> Evaluation:
    """Decode and check an Evaluate reply.

    Raises:
        ValueError: a tensor is malformed or has the wrong shape for the request.
    """
    shape = _shape(request)
    expectations = _tensor(reply, "expectations", shape)
    if expectations is None:
        raise ValueError("the reply has no expectations")
    return Evaluation(
        expectations=expectations,
        standard_errors=_tensor(reply, "standard_errors", shape),
        backend=reply.backend,
        queue_seconds=reply.timings.queue_seconds,
        execute_seconds=reply.timings.execute_seconds,
        hardware_seconds=reply.hardware_seconds,
        executions=reply.executions,
        shots=reply.shots,
    )


def decode_gradient(reply: pb.ShiftGradientResponse, request: pb.ShiftGradientRequest) -> Gradient:
    """Decode and check a ShiftGradient reply; the Jacobian's columns follow the requested order.

    Raises:
        ValueError: a tensor is malformed, or the Jacobian's shape or symbols do not
            match the request.
    """
    rows, n_obs = _shape(request)
    wanted = tuple(request.wrt) or tuple(request.params.symbols)
    answered = tuple(reply.wrt) or wanted
    jacobian = from_tensor(reply.jacobian, "jacobian")
    shape = (rows, len(wanted)) if request.HasField("cotangents") else (rows, n_obs, len(wanted))
    if jacobian.shape != shape or (answered != wanted and sorted(answered) != sorted(wanted)):
        raise ValueError(
            f"jacobian has shape {jacobian.shape} over {list(answered)}, expected {shape} over {list(wanted)}"
        )
    if answered != wanted:
        column = {symbol: i for i, symbol in enumerate(answered)}
        jacobian = np.ascontiguousarray(jacobian[..., [column[s] for s in wanted]])
    return Gradient(
        jacobian=jacobian,
        expectations=_tensor(reply, "expectations", (rows, n_obs)),
        wrt=wanted,
        backend=reply.backend,
        queue_seconds=reply.timings.queue_seconds,
        execute_seconds=reply.timings.execute_seconds,
        method=method_name(reply.method),
        shift_rule_executions=reply.shift_rule_executions,
        shift_rule_shots=reply.shift_rule_shots,
        hardware_seconds=reply.hardware_seconds,
    )
