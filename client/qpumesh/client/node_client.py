"""``NodeClient``: call one QPU node with Cirq circuits and numpy parameter batches.

The client hides the wire format: it serialises each circuit once (cached per circuit
object), converts Cirq Pauli observables to dense terms, packs the parameter mapping
into one float64 batch, and decodes replies into numpy arrays. It remembers which
circuits the node already holds and then sends only their hash; when the node has
forgotten one (restart, cache eviction) it answers NOT_FOUND and the client resends the
circuit once, transparently. Every call carries a deadline; failures surface as
``QpuMeshError`` with the status code and the node's message.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

import cirq
import grpc
import numpy as np
import numpy.typing as npt

from qpumesh.client.errors import QpuMeshError, from_rpc_error
from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire.circuits import WireCircuit, observables_to_proto, pauli_terms
from qpumesh.wire.tensors import from_tensor, to_tensor

FloatArray = npt.NDArray[np.float64]
Observable = cirq.PauliString[Any] | cirq.PauliSum
ParamValues = Mapping[Any, npt.ArrayLike]
"""Symbol (name or ``sympy.Symbol``) -> one value or one value per row."""

# Retry a call that never reached a node (UNAVAILABLE) a few times, declared in the
# service config as gRPC recommends; INVALID_ARGUMENT & co. are never retried.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "qpumesh.v1.QPUNode"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # The node enforces its own limits (GetInfo.max_message_bytes); the client does not add lower ones.
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", _SERVICE_CONFIG),
)

_Reply = TypeVar("_Reply")


@dataclass(frozen=True)
class Evaluation:
    """A node's answer to ``evaluate_detailed``.

    Attributes:
        expectations: shape (rows, n_observables).
        standard_errors: same shape, only when shots > 0 were used; else None.
        backend: the engine that ran the request.
        queue_seconds: time the request waited for an execution slot on the node.
        execute_seconds: time the node spent compiling and simulating.
    """

    expectations: FloatArray
    standard_errors: FloatArray | None
    backend: str
    queue_seconds: float
    execute_seconds: float


@dataclass(frozen=True)
class Gradient:
    """A node's answer to ``shift_gradient_detailed``.

    Attributes:
        jacobian: shape (rows, n_observables, len(wrt)), or (rows, len(wrt)) when
            cotangents were given (a vector-Jacobian product).
        expectations: shape (rows, n_observables) when asked for; else None.
        wrt: the symbols differentiated, in the order of the last axis of ``jacobian``.
        backend: the engine that ran the request.
        queue_seconds: time the request waited for an execution slot on the node.
        execute_seconds: time the node spent compiling and simulating.
        method: the method that ran, ``"adjoint"`` or ``"parameter_shift"``.
        shift_rule_executions: circuit executions a hardware QPU would need for the request
            by the parameter-shift rule (whichever method ran).
        shift_rule_shots: shots those executions take (0 for exact requests).
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


def parameter_batch(params: ParamValues) -> pb.ParameterBatch:
    """Pack ``{symbol: value(s)}`` into one ``ParameterBatch``.

    Scalars (and length-1 arrays) are broadcast to the batch; every longer value must
    have the same length, the number of rows. An empty mapping is one row of nothing
    (a circuit without parameters).

    Raises:
        ValueError: when values are not 0-D/1-D or their lengths disagree.
    """
    names = [str(symbol) for symbol in params]
    columns = [np.asarray(value, dtype=np.float64) for value in params.values()]
    for name, column in zip(names, columns, strict=True):
        if column.ndim > 1:
            raise ValueError(
                f"parameter {name!r}: expected a scalar or a 1-D array, got shape {column.shape}"
            )
    lengths = {column.size for column in columns if column.ndim == 1 and column.size != 1}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}: {c.size}" for n, c in zip(names, columns, strict=True))
        raise ValueError(f"parameter arrays have different lengths ({detail}); give one value per row")
    rows = lengths.pop() if lengths else 1
    values = np.empty((rows, len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        values[:, j] = column.reshape(-1)
    return pb.ParameterBatch(symbols=names, values=to_tensor(values))


class NodeClient:
    """A blocking client of one QPU node.

    Thread-safe: one client (and its channel) may serve many threads.

    Args:
        address: ``host:port`` of the node.
        timeout: default deadline of every call, in seconds.
        channel_options: gRPC channel options (default: no client-side message limits,
            retries of UNAVAILABLE).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 30.0,
        channel_options: Sequence[tuple[str, Any]] = DEFAULT_CHANNEL_OPTIONS,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address, options=list(channel_options))
        self._stub = pb_grpc.QPUNodeStub(self._channel)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._held: set[str] = set()  # circuit hashes the node is believed to hold
        # id(circuit) -> (weak reference, its moments when serialised, the serialisation)
        self._wire: dict[int, tuple[weakref.ref[cirq.AbstractCircuit], tuple[Any, ...], WireCircuit]] = {}

    # --- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; later calls fail."""
        self._channel.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- calls -----------------------------------------------------------------------

    def info(self, *, timeout: float | None = None) -> pb.GetInfoResponse:
        """Return the node's description: engine, limits, noise, supported gates.

        Raises:
            QpuMeshError: when the call fails (e.g. UNAVAILABLE: no node at the address).
        """
        try:
            reply: pb.GetInfoResponse = self._stub.GetInfo(
                pb.GetInfoRequest(), timeout=self._deadline(timeout)
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return reply

    def evaluate(
        self,
        circuit: cirq.AbstractCircuit,
        observables: Sequence[Observable],
        params: ParamValues,
        shots: int | None = 0,
        seed: int | None = None,
        *,
        timeout: float | None = None,
    ) -> FloatArray:
        """Return the expectation values of ``observables`` for every row of ``params``.

        Args:
            circuit: a circuit whose free parameters are sympy symbols.
            observables: Pauli strings or sums on the circuit's qubits.
            params: every free symbol of the circuit -> a value or one value per row.
            shots: measurement shots per observable term; 0 = exact; None = the node's default.
            seed: seed of the node's shot sampler (reproducible shot noise).
            timeout: deadline in seconds (default: the client's).

        Returns:
            Shape (rows, len(observables)).

        Raises:
            QpuMeshError: the node refused or failed the request (code + message).
            ValueError: the observables or params cannot be encoded.
        """
        return self.evaluate_detailed(circuit, observables, params, shots, seed, timeout=timeout).expectations

    def evaluate_detailed(
        self,
        circuit: cirq.AbstractCircuit,
        observables: Sequence[Observable],
        params: ParamValues,
        shots: int | None = 0,
        seed: int | None = None,
        *,
        timeout: float | None = None,
    ) -> Evaluation:
        """Like ``evaluate``, also returning standard errors, engine and node timings."""
        wire = self.wire_circuit(circuit)
        request = pb.EvaluateRequest(
            observables=observables_to_proto([pauli_terms(o, wire.qubits) for o in observables]),
            params=parameter_batch(params),
        )
        _set_sampling(request, shots, seed)
        reply: pb.EvaluateResponse = self._call(self._stub.Evaluate, request, wire, timeout)
        return Evaluation(
            expectations=from_tensor(reply.expectations, "expectations"),
            standard_errors=_optional_tensor(reply, "standard_errors"),
            backend=reply.backend,
            queue_seconds=reply.timings.queue_seconds,
            execute_seconds=reply.timings.execute_seconds,
        )

    def shift_gradient(
        self,
        circuit: cirq.AbstractCircuit,
        observables: Sequence[Observable],
        params: ParamValues,
        wrt: Sequence[Any] = (),
        cotangents: npt.ArrayLike | None = None,
        *,
        shots: int | None = 0,
        seed: int | None = None,
        method: str = "auto",
        timeout: float | None = None,
    ) -> FloatArray:
        """Return the derivatives of ``observables`` for every row of ``params``.

        Args:
            circuit: a circuit whose free parameters are sympy symbols.
            observables: Pauli strings or sums on the circuit's qubits.
            params: every free symbol of the circuit -> a value or one value per row.
            wrt: symbols to differentiate by; empty = every symbol, in ``params`` order.
            cotangents: optional upstream gradients, shape (rows, len(observables)); the
                node then returns the vector-Jacobian product.
            shots: measurement shots per observable term; 0 = exact; None = the node's default.
            seed: seed of the node's shot sampler.
            method: ``"auto"`` (adjoint when exact, else the shift rule), ``"parameter_shift"``
                or ``"adjoint"``.
            timeout: deadline in seconds (default: the client's).

        Returns:
            Shape (rows, len(observables), len(wrt)), or (rows, len(wrt)) with cotangents.

        Raises:
            QpuMeshError: the node refused or failed the request (code + message).
            ValueError: the observables or params cannot be encoded.
        """
        return self.shift_gradient_detailed(
            circuit, observables, params, wrt, cotangents,
            shots=shots, seed=seed, method=method, timeout=timeout,
        ).jacobian  # fmt: skip

    def shift_gradient_detailed(
        self,
        circuit: cirq.AbstractCircuit,
        observables: Sequence[Observable],
        params: ParamValues,
        wrt: Sequence[Any] = (),
        cotangents: npt.ArrayLike | None = None,
        *,
        include_values: bool = False,
        shots: int | None = 0,
        seed: int | None = None,
        method: str = "auto",
        timeout: float | None = None,
    ) -> Gradient:
        """Like ``shift_gradient``, optionally with the unshifted values, plus engine and timings."""
        wire = self.wire_circuit(circuit)
        request = pb.ShiftGradientRequest(
            observables=observables_to_proto([pauli_terms(o, wire.qubits) for o in observables]),
            params=parameter_batch(params),
            wrt=[str(symbol) for symbol in wrt],
            include_values=include_values,
            method=_gradient_method(method),
        )
        if cotangents is not None:
            request.cotangents.CopyFrom(to_tensor(cotangents))
        _set_sampling(request, shots, seed)
        reply: pb.ShiftGradientResponse = self._call(self._stub.ShiftGradient, request, wire, timeout)
        return Gradient(
            jacobian=from_tensor(reply.jacobian, "jacobian"),
            expectations=_optional_tensor(reply, "expectations"),
            wrt=tuple(reply.wrt),
            backend=reply.backend,
            queue_seconds=reply.timings.queue_seconds,
            execute_seconds=reply.timings.execute_seconds,
            method=str(pb.GradientMethod.Name(reply.method)).removeprefix(_METHOD_PREFIX).lower(),
            shift_rule_executions=reply.shift_rule_executions,
            shift_rule_shots=reply.shift_rule_shots,
        )

    # --- circuits --------------------------------------------------------------------

    def wire_circuit(self, circuit: cirq.AbstractCircuit) -> WireCircuit:
        """Return the serialised form of ``circuit``, computed once per circuit object.

        The cache is keyed by object identity and checked against the circuit's moments
        (Cirq moments are immutable, so appending to or editing a ``cirq.Circuit``
        replaces them): a mutated circuit is serialised again.
        """
        key = id(circuit)
        moments = tuple(circuit.moments)
        with self._lock:
            entry = self._wire.get(key)
        if entry is not None:
            ref, cached_moments, wire = entry
            if (
                ref() is circuit
                and len(cached_moments) == len(moments)
                and all(a is b for a, b in zip(cached_moments, moments, strict=True))
            ):
                return wire
        wire = WireCircuit.from_cirq(circuit)
        wire_cache = self._wire
        ref = weakref.ref(circuit, lambda _: wire_cache.pop(key, None))
        with self._lock:
            self._wire[key] = (ref, moments, wire)
        return wire

    def _call(
        self,
        method: Callable[..., _Reply],
        request: pb.EvaluateRequest | pb.ShiftGradientRequest,
        wire: WireCircuit,
        timeout: float | None,
    ) -> _Reply:
        """Send ``request`` with the circuit by hash when the node holds it, else in full."""
        with self._lock:
            hash_only = wire.hash in self._held
        request.circuit.CopyFrom(wire.to_proto(include_json=not hash_only))
        try:
            try:
                reply = method(request, timeout=self._deadline(timeout))
            except grpc.RpcError as error:
                if not (hash_only and from_rpc_error(error).code == grpc.StatusCode.NOT_FOUND):
                    raise
                # The node forgot the circuit (restart or cache eviction): send it once more.
                with self._lock:
                    self._held.discard(wire.hash)
                request.circuit.CopyFrom(wire.to_proto(include_json=True))
                reply = method(request, timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        with self._lock:
            self._held.add(wire.hash)
        return reply

    def _deadline(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout


_METHOD_PREFIX = "GRADIENT_METHOD_"


def _gradient_method(method: str) -> str:
    """``"adjoint"`` -> ``"GRADIENT_METHOD_ADJOINT"`` (names derived from the proto enum)."""
    name = _METHOD_PREFIX + method.upper()
    if name not in pb.GradientMethod.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
        names = [n.removeprefix(_METHOD_PREFIX).lower() for n in pb.GradientMethod.keys()]  # noqa: SIM118
        raise ValueError(f"unknown gradient method {method!r}; use one of {names}")
    return name


def _optional_tensor(
    reply: pb.EvaluateResponse | pb.ShiftGradientResponse, field: Literal["expectations", "standard_errors"]
) -> FloatArray | None:
    """Decode an optional Tensor field of a reply; None when the node left it unset."""
    if not reply.HasField(field):
        return None
    message: pb.Tensor = getattr(reply, field)
    return from_tensor(message, field)


def _set_sampling(
    request: pb.EvaluateRequest | pb.ShiftGradientRequest, shots: int | None, seed: int | None
) -> None:
    """Set the optional shots/seed fields, refusing values the wire cannot carry."""
    if shots is not None:
        if not 0 <= shots < 2**32:
            raise ValueError(f"shots must be in 0..{2**32 - 1}, got {shots}")
        request.shots = shots
    if seed is not None:
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in 0..{2**64 - 1}, got {seed}")
        request.seed = seed


__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "Evaluation",
    "Gradient",
    "NodeClient",
    "QpuMeshError",
    "parameter_batch",
]
