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

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import cirq
import grpc
import numpy as np
import numpy.typing as npt

from qpumesh.v1 import qpu_node_pb2 as pb
from qpumesh.v1 import qpu_node_pb2_grpc as pb_grpc
from qpumesh.wire import node_calls
from qpumesh.wire.channels import open_channel
from qpumesh.wire.circuits import PauliTerms, WireCircuit, pauli_terms
from qpumesh.wire.errors import QpuMeshError, from_rpc_error
from qpumesh.wire.node_calls import Evaluation, FloatArray, Gradient, NodeRequest
from qpumesh.wire.tls import TlsConfig

Observable = cirq.PauliString[Any] | cirq.PauliSum
ParamValues = Mapping[Any, npt.ArrayLike]
"""Symbol (name or ``sympy.Symbol``) -> one value or one value per row."""

SERVICE = pb.DESCRIPTOR.services_by_name["QPUNode"]


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
    return node_calls.parameter_batch(names, values)


class NodeClient:
    """A blocking client of one QPU node.

    Thread-safe: one client (and its channel) may serve many threads.

    Args:
        address: ``host:port`` of the node.
        timeout: default deadline of every call, in seconds.
        tls: TLS settings (``qpumesh.wire.tls.load_tls``, or ``client_tls_from_environment``
            for ``QPUMESH_TLS_*``); a node started with ``--tls-ca`` admits only clients
            presenting a certificate its CA signed. None: plaintext.
    """

    def __init__(self, address: str, *, timeout: float = 30.0, tls: TlsConfig | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.address = address
        self.timeout = timeout
        self._channel = open_channel(address, tls=tls, retry_unavailable=SERVICE)
        self._stub = pb_grpc.QPUNodeStub(self._channel)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._held = node_calls.HeldCircuits()
        # id(circuit) -> (weak reference, its moments when serialised, the serialisation)
        self._wire: dict[int, tuple[weakref.ref[cirq.AbstractCircuit], tuple[Any, ...], WireCircuit]] = {}

    # --- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; later calls fail."""
        self._channel.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
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
        request = node_calls.evaluate_request(
            self._terms(wire, observables), parameter_batch(params), shots=shots, seed=seed
        )
        reply: pb.EvaluateResponse = self._call(self._stub.Evaluate, request, wire, timeout)
        return node_calls.decode_evaluation(reply, request)

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
        request = node_calls.shift_gradient_request(
            self._terms(wire, observables),
            parameter_batch(params),
            wrt=[str(symbol) for symbol in wrt],
            cotangents=cotangents,
            include_values=include_values,
            shots=shots,
            seed=seed,
            method=method,
        )
        reply: pb.ShiftGradientResponse = self._call(self._stub.ShiftGradient, request, wire, timeout)
        return node_calls.decode_gradient(reply, request)

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

    @staticmethod
    def _terms(wire: WireCircuit, observables: Sequence[Observable]) -> list[PauliTerms]:
        return [pauli_terms(o, wire.qubits) for o in observables]

    def _call(self, method: Any, request: NodeRequest, wire: WireCircuit, timeout: float | None) -> Any:
        """Send ``request`` (circuit by hash when the node holds it); failures become ``QpuMeshError``."""
        try:
            return node_calls.call(method, request, wire, self._held, timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _deadline(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout


__all__ = [
    "Evaluation",
    "Gradient",
    "NodeClient",
    "QpuMeshError",
    "parameter_batch",
]
