"""The node's compiled circuits, by SHA-256 of their JSON: bounded parsing, compiling, an LRU cache.

A request names its circuit by hash and may carry the JSON. On a cache miss the JSON is
checked against its hash, bounded (`circuit_json.scan_circuit_json`: size, operations after
inlining, expressions...) and the cost of compiling it is checked against the node's budget
(`limits.compile_cost`) -- all before Cirq parses it; then it is compiled once, its engine
chosen, and kept (LRU, thread-safe). A hit costs a dictionary lookup (the same JSON again is
not hashed twice).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import cirq

from qpumesh.node.circuit_json import check_size, scan_circuit_json
from qpumesh.node.circuits import CircuitError, CompiledCircuit, compile_circuit
from qpumesh.node.errors import InvalidRequest, LimitExceeded, UnknownCircuit
from qpumesh.node.limits import compile_cost
from qpumesh.node.requests import CircuitRequests
from qpumesh.wire.status import excerpt

__all__ = ["CachedCircuit", "CircuitCache", "CircuitLimits"]

logger = logging.getLogger(__name__)

_HASH_RE = re.compile(r"[0-9a-f]{64}")

EngineChoice = Callable[[CompiledCircuit], tuple[str, str | None]]
"""Picks the engine of a compiled circuit: its name and, when not the configured one, why."""


@dataclass(frozen=True)
class CachedCircuit:
    """A compiled circuit, the engine that runs it and the validated parts of its requests."""

    compiled: CompiledCircuit
    engine: str
    cirq_json: str
    requests: CircuitRequests


@dataclass(frozen=True)
class CircuitLimits:
    """The node settings that bound a new circuit (see `qpumesh.node.core.NodeConfig`)."""

    max_qubits: int
    max_circuit_bytes: int
    max_circuit_operations: int
    max_request_cost: int
    cache_size: int


class CircuitCache:
    """Compiled circuits by hash, at most ``limits.cache_size`` (least recently used dropped).

    Args:
        limits: Bounds of a new circuit.
        choose_engine: Picks the engine of each newly compiled circuit.
    """

    def __init__(self, limits: CircuitLimits, choose_engine: EngineChoice) -> None:
        self.limits = limits
        self._choose_engine = choose_engine
        self._entries: OrderedDict[str, CachedCircuit] = OrderedDict()
        self._lock = threading.Lock()
        self.lookups = {"hit": 0, "miss": 0, "not_found": 0}
        """Lookups by outcome: cached, not cached with the JSON sent (compiled), or NOT_FOUND."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def load(self, circuit_hash: str, cirq_json: str | None) -> CachedCircuit:
        """Return the circuit of `circuit_hash`, compiling `cirq_json` on a cache miss.

        Raises:
            InvalidRequest: Bad hash, hash/JSON mismatch, JSON the node refuses (see
                `scan_circuit_json`), not a circuit, unsupported gates, measurements, more
                than ``max_qubits`` qubits.
            LimitExceeded: The JSON or the circuit is over a node bound (bytes, operations,
                the cost of compiling it).
            UnknownCircuit: No JSON and the hash is not cached.
        """
        if not isinstance(circuit_hash, str) or not _HASH_RE.fullmatch(circuit_hash):
            raise InvalidRequest(
                "circuit.hash must be the SHA-256 of circuit.cirq_json as 64 lower-case hex digits, "
                f"got {excerpt(circuit_hash)}"
            )
        with self._lock:
            entry = self._entries.get(circuit_hash)
            # JSON equal to the text this hash was verified against needs no new SHA-256.
            if entry is not None and (not cirq_json or cirq_json == entry.cirq_json):
                self._entries.move_to_end(circuit_hash)
                self.lookups["hit"] += 1
                return entry
            self.lookups["miss" if cirq_json else "not_found"] += 1
        if not cirq_json:
            raise UnknownCircuit(f"circuit {circuit_hash} is not cached on this node; resend its cirq_json")
        check_size(cirq_json, self.limits.max_circuit_bytes)
        actual = hashlib.sha256(cirq_json.encode("utf-8", errors="surrogatepass")).hexdigest()
        if actual != circuit_hash:
            raise InvalidRequest(
                f"circuit.hash {circuit_hash} is not the SHA-256 of circuit.cirq_json, "
                f"which is {actual}; hash exactly the UTF-8 bytes sent as cirq_json and send "
                "the 64 lower-case hex digits"
            )
        entry = self._compile(circuit_hash, cirq_json)
        with self._lock:
            self._entries[circuit_hash] = entry
            self._entries.move_to_end(circuit_hash)
            while len(self._entries) > self.limits.cache_size:
                self._entries.popitem(last=False)
        return entry

    def _compile(self, circuit_hash: str, cirq_json: str) -> CachedCircuit:
        limits = self.limits
        shape = scan_circuit_json(
            cirq_json, max_bytes=limits.max_circuit_bytes, max_operations=limits.max_circuit_operations
        )
        qubits = min(shape.qubits, limits.max_qubits)
        cost = compile_cost(shape.operations, qubits, shape.expression_terms)
        if cost > limits.max_request_cost:
            raise LimitExceeded(
                f"compiling this circuit ({shape.operations} operations on {qubits} qubits, "
                f"{shape.expression_terms} terms in its expanded angles) would cost about "
                f"{cost:.3g} amplitude operations, over this node's "
                f"max_request_cost={limits.max_request_cost:.3g}; "
                "send a shorter or narrower circuit"
            )
        try:
            circuit = cirq.read_json(json_text=cirq_json)
        except Exception as exc:
            raise InvalidRequest(
                f"circuit.cirq_json is JSON but not a Cirq circuit ({excerpt(str(exc), 160)}); "
                'send cirq.to_json(circuit) output, an object with "cirq_type": "Circuit" '
                "(see docs/client.md, calling from other languages)"
            ) from None
        if not isinstance(circuit, cirq.AbstractCircuit):
            raise InvalidRequest(
                'circuit.cirq_json must encode a circuit (cirq_type "Circuit", cirq.to_json(circuit)), '
                f"got a {type(circuit).__name__}"
            )
        try:
            compiled = compile_circuit(circuit, limits.max_qubits)
        except CircuitError as exc:
            raise InvalidRequest(str(exc)) from None
        except (ArithmeticError, TypeError, ValueError) as exc:  # sympy/Cirq on hostile parameters
            raise InvalidRequest(
                "the circuit's parameters cannot be compiled "
                f"({type(exc).__name__}: {excerpt(str(exc), 160)}); "
                "use finite numeric or affine symbolic gate parameters"
            ) from None
        engine, reason = self._choose_engine(compiled)
        if reason:
            logger.info("circuit %s runs on %s: %s", circuit_hash[:12], engine, reason)
        return CachedCircuit(compiled, engine, cirq_json, CircuitRequests(compiled))
