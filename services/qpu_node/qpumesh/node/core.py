"""The QPU node without gRPC: circuit cache, validation, limits, engine choice.

`NodeCore` is what the gRPC servicer and the coordinator's in-process executor both call,
so in-process and mesh runs give identical numbers. It

* parses Cirq JSON once per SHA-256 hash and keeps the `CompiledCircuit` in an LRU cache
  (thread-safe); a request may then carry only the hash (or the same JSON again, which is
  not hashed twice);
* validates every request (`qpumesh.node.requests`, with per-circuit plans of what repeats)
  and raises `InvalidRequest` (fix the request), `UnknownCircuit` (resend the circuit JSON),
  `LimitExceeded` (split the request) or `PreconditionFailed` (not on this node) -- messages
  name the offending symbol, shape or value; no error leaves state behind;
* picks the engine per circuit: with gate noise and the ``batched`` backend, the torch engines
  ``batched-density`` (exact) or ``batched-trajectories`` (Monte Carlo) per
  `NoiseConfig.method`; with gate noise and another backend, the references ``cirq`` (exact
  density matrix) or ``qsim`` (trajectories); without gate noise the configured backend,
  falling back to ``qsim`` when the configured engine cannot run the circuit. The choice is
  logged once per circuit when it differs from the configured backend, and reported as
  ``backend``;
* turns observables (weighted Pauli strings) into unique terms for the engines, then applies
  readout error and shot sampling (`qpumesh.node.noise`); differentiates exact requests by
  the adjoint method (`qpumesh.node.adjoint`) and the others by the parameter-shift rule
  (`qpumesh.node.gradients`), reporting the shift rule's hardware cost either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import cast

import cirq
import numpy as np

from qpumesh.node.adjoint import adjoint_gradient
from qpumesh.node.backends import (
    BACKENDS,
    Backend,
    BatchedBackend,
    CirqBackend,
    DensityBackend,
    QsimBackend,
    TrajectoriesBackend,
)
from qpumesh.node.backends.compiled import warm_up
from qpumesh.node.circuits import SUPPORTED_GATES, CircuitError, CompiledCircuit, compile_circuit
from qpumesh.node.errors import InvalidRequest, LimitExceeded, NodeError, PreconditionFailed, UnknownCircuit
from qpumesh.node.gradients import (
    GRADIENT_METHODS,
    parameter_shift,
    shift_rule_executions,
)
from qpumesh.node.noise import NoiseConfig, readout_factors, sample_terms, standard_errors
from qpumesh.node.requests import (
    CircuitRequests,
    Observables,
    Terms,
    check_cotangents,
    check_reply_size,
    check_shots,
    check_table,
)

__all__ = [
    "CompiledCircuit",
    "EvalResult",
    "GradResult",
    "InvalidRequest",
    "LimitExceeded",
    "NodeConfig",
    "NodeCore",
    "NodeError",
    "NodeInfo",
    "Observables",
    "PreconditionFailed",
    "UnknownCircuit",
]

logger = logging.getLogger(__name__)

_HASH_RE = re.compile(r"[0-9a-f]{64}")


def _version() -> str:
    try:
        return metadata.version("qpumesh")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class NodeConfig:
    """Deployment settings of one node.

    Attributes:
        node_id: Name reported by GetInfo.
        backend: Engine for noise-free circuits: ``"batched"``, ``"qsim"`` or ``"cirq"``.
        max_qubits: Largest circuit accepted.
        noise: Noise profile.
        default_shots: Shots when a request leaves them unset (0 = exact).
        max_batch_rows: Most parameter sets per request.
        max_message_bytes: Largest reply the node will build.
        precision: Batched engine precision, ``"double"`` or ``"single"``.
        circuit_cache_size: Compiled circuits kept (LRU).

    Raises:
        ValueError: An unknown backend/precision or a non-positive limit.
    """

    node_id: str = "qpu-0"
    backend: str = "batched"
    max_qubits: int = 20
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    default_shots: int = 0
    max_batch_rows: int = 100_000
    max_message_bytes: int = 64 * 1024 * 1024
    precision: str = "double"
    circuit_cache_size: int = 256

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"NodeConfig.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.precision not in ("double", "single"):
            raise ValueError(f"NodeConfig.precision must be 'double' or 'single', got {self.precision!r}")
        for name in ("max_qubits", "max_batch_rows", "max_message_bytes", "circuit_cache_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NodeConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.default_shots, int) or self.default_shots < 0:
            raise ValueError(f"NodeConfig.default_shots must be >= 0, got {self.default_shots!r}")
        if not isinstance(self.noise, NoiseConfig):
            raise ValueError(f"NodeConfig.noise must be a NoiseConfig, got {type(self.noise).__name__}")


@dataclass(frozen=True)
class NodeInfo:
    """What GetInfo reports."""

    node_id: str
    backend: str
    max_qubits: int
    supported_gates: tuple[str, ...]
    noise: NoiseConfig
    default_shots: int
    version: str
    max_batch_rows: int
    max_message_bytes: int


@dataclass(frozen=True)
class EvalResult:
    """Expectations ``(rows, n_obs)``; standard errors of the same shape iff shots > 0.

    ``executions`` (one per row) and ``shots`` (executions x shots x measured terms) are what
    the request costs a hardware QPU, as ``GradResult``'s shift-rule fields.
    """

    expectations: np.ndarray
    standard_errors: np.ndarray | None
    backend: str
    execute_seconds: float
    executions: int = 0
    shots: int = 0


@dataclass(frozen=True)
class GradResult:
    """Jacobian ``(rows, n_obs, len(wrt))`` or VJP ``(rows, len(wrt))``; optional values.

    Attributes:
        jacobian: The Jacobian or VJP.
        expectations: The unshifted values ``(rows, n_obs)`` when asked for.
        wrt: The differentiated symbols, in the order of the last axis.
        backend: The engine that ran.
        execute_seconds: Time spent in the core.
        method: ``"adjoint"`` or ``"parameter_shift"``: what actually ran.
        shift_rule_executions: Circuit executions a hardware QPU would need for this request
            by the parameter-shift rule (`gradients.shift_rule_executions`), whichever
            method ran -- the honest cost of the experiment.
        shift_rule_shots: Shots those executions take: executions x shots x measured
            (non-identity) Pauli terms; 0 for exact requests.
    """

    jacobian: np.ndarray
    expectations: np.ndarray | None
    wrt: tuple[str, ...]
    backend: str
    execute_seconds: float
    method: str = "parameter_shift"
    shift_rule_executions: int = 0
    shift_rule_shots: int = 0


@dataclass(frozen=True)
class _Entry:
    compiled: CompiledCircuit
    engine: str
    cirq_json: str
    requests: CircuitRequests


class NodeCore:
    """One emulated QPU, without the network. Thread-safe.

    Args:
        config: Node settings.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_lookups = {"hit": 0, "miss": 0, "not_found": 0}
        """Circuit lookups by outcome: cached, not cached with the JSON sent (compiled), or NOT_FOUND."""
        noise = config.noise
        self._engines: dict[str, Backend] = {
            "batched": BatchedBackend(config.precision),
            "cirq": CirqBackend(),
            "qsim": QsimBackend(),
        }
        if noise.has_gate_noise:
            self._engines["batched-density"] = DensityBackend(noise)
            self._engines["batched-trajectories"] = TrajectoriesBackend(noise)
            self._engines["cirq-noisy"] = CirqBackend(noise)
            self._engines["qsim-noisy"] = QsimBackend(noise)

    # -- public API ---------------------------------------------------------------------

    def info(self) -> NodeInfo:
        """Return the node's identity, capabilities and limits."""
        c = self.config
        return NodeInfo(
            node_id=c.node_id,
            backend=c.backend,
            max_qubits=c.max_qubits,
            supported_gates=SUPPORTED_GATES,
            noise=c.noise,
            default_shots=c.default_shots,
            version=_version(),
            max_batch_rows=c.max_batch_rows,
            max_message_bytes=c.max_message_bytes,
        )

    def cached_circuits(self) -> int:
        """Return how many compiled circuits the cache holds."""
        with self._lock:
            return len(self._cache)

    def warm_up(self) -> None:
        """Compile the batched engine's kernels now (seconds once per machine), not on a request."""
        if self.config.backend == "batched":
            warm_up()

    def load_circuit(self, circuit_hash: str, cirq_json: str | None) -> CompiledCircuit:
        """Return the compiled circuit of `circuit_hash`, parsing `cirq_json` on a cache miss.

        Args:
            circuit_hash: Lower-case hex SHA-256 of ``cirq_json.encode()``.
            cirq_json: ``cirq.to_json(circuit)``, or empty/None when the node holds the hash.

        Raises:
            InvalidRequest: Bad hash, hash/JSON mismatch, malformed JSON, not a circuit,
                unsupported gates, measurements, or more than ``max_qubits`` qubits.
            UnknownCircuit: No JSON and the hash is not cached.
        """
        return self._load(circuit_hash, cirq_json).compiled

    def evaluate(  # noqa: PLR0917 (public API signature)
        self,
        circuit_hash: str,
        cirq_json: str | None,
        observables: Observables,
        symbols: Sequence[str],
        values: np.ndarray,
        shots: int | None = None,
        seed: int | None = None,
    ) -> EvalResult:
        """Compute expectation values of `observables` for every row of `values`.

        Args:
            circuit_hash: See `load_circuit`.
            cirq_json: See `load_circuit`.
            observables: Weighted Pauli strings, one list per observable.
            symbols: Column names of `values`: every circuit symbol exactly once.
            values: ``(rows, len(symbols))`` float64.
            shots: Shots per Pauli term; 0 = exact; None = ``config.default_shots``.
            seed: Seed of the shot sampler and of Monte Carlo trajectories; None = random shots
                (batched trajectories are then seeded from the request's content).

        Returns:
            Expectations ``(rows, n_obs)`` and, when shots > 0, their standard errors.

        Raises:
            InvalidRequest, UnknownCircuit, LimitExceeded: See the module docstring.
        """
        start = time.perf_counter()
        entry = self._load(circuit_hash, cirq_json)
        compiled = entry.compiled
        terms = entry.requests.terms(observables)
        columns = entry.requests.columns(symbols)
        table = check_table(values, columns, self.config.max_batch_rows)
        n_shots = check_shots(shots, self.config.default_shots)
        n_out = table.shape[0] * terms.coefficients.shape[1] * (2 if n_shots else 1)
        check_reply_size(n_out, self.config.max_message_bytes)
        angles = columns.angles(compiled, table)
        engine = self._engine(entry, seed)
        exact = self._exact_terms(engine, compiled, terms, angles)
        errors = None
        if n_shots:
            sampled = sample_terms(exact, n_shots, np.random.default_rng(seed))
            expectations = sampled @ terms.coefficients
            errors = standard_errors(exact, terms.coefficients, n_shots)
        else:
            expectations = exact @ terms.coefficients
        rows = table.shape[0]
        seconds, shots_taken = time.perf_counter() - start, rows * n_shots * terms.measured
        return EvalResult(expectations, errors, engine.name, seconds, rows, shots_taken)

    def shift_gradient(  # noqa: PLR0917 (public API signature)
        self,
        circuit_hash: str,
        cirq_json: str | None,
        observables: Observables,
        symbols: Sequence[str],
        values: np.ndarray,
        wrt: Sequence[str] = (),
        cotangents: np.ndarray | None = None,
        include_values: bool = False,
        shots: int | None = None,
        seed: int | None = None,
        method: str = "auto",
    ) -> GradResult:
        """Jacobians (or vector-Jacobian products) for every row of `values`.

        Exact requests (no shots, no noise on this node, the batched engine) are
        differentiated by the adjoint method unless `method` says otherwise; everything else
        by the parameter-shift rule. Both give the same numbers (to ~1e-15).

        Args:
            circuit_hash: See `load_circuit`.
            cirq_json: See `load_circuit`.
            observables: See `evaluate`.
            symbols: See `evaluate`.
            values: See `evaluate`.
            wrt: Symbols to differentiate with respect to; empty = all `symbols`, in order.
            cotangents: Optional ``(rows, n_obs)``; the reply is then ``(rows, len(wrt))``.
            include_values: Also return the unshifted expectations.
            shots: Shots per Pauli term of every shifted evaluation; see `evaluate`.
            seed: See `evaluate`.
            method: ``"auto"`` (adjoint when exact, else the shift rule),
                ``"parameter_shift"`` or ``"adjoint"``.

        Returns:
            The Jacobian ``(rows, n_obs, len(wrt))`` or VJP ``(rows, len(wrt))``, the method
            that ran and the shift rule's hardware cost.

        Raises:
            InvalidRequest: As `evaluate`, plus bad `wrt`/`cotangents`/`method`, a symbol
                whose gates are not affine in it alone (named in the message), or
                ``method="adjoint"`` with shots.
            PreconditionFailed: ``method="adjoint"`` on a node with noise or another engine.
            UnknownCircuit, LimitExceeded: See the module docstring.
        """
        start = time.perf_counter()
        entry = self._load(circuit_hash, cirq_json)
        compiled = entry.compiled
        terms = entry.requests.terms(observables)
        columns = entry.requests.columns(symbols)
        table = check_table(values, columns, self.config.max_batch_rows)
        n_shots = check_shots(shots, self.config.default_shots)
        plan = entry.requests.differentiation(columns, wrt)
        names = plan.names
        rows, n_obs = table.shape[0], terms.coefficients.shape[1]
        tangent = check_cotangents(cotangents, rows, n_obs)
        width = len(names) if tangent is not None else n_obs * len(names)
        check_reply_size(rows * (width + (n_obs if include_values else 0)), self.config.max_message_bytes)
        if plan.chain is None:
            raise InvalidRequest(plan.error)
        wrt_slots = plan.slots
        chosen = self._gradient_method(method, n_shots, entry)
        angles = columns.angles(compiled, table)
        engine = self._engine(entry, seed)
        if chosen == "adjoint":
            batched = cast(BatchedBackend, engine)
            values_out, result = adjoint_gradient(
                batched, compiled, terms.terms, terms.coefficients, angles, plan.chain, tangent,
                include_values,
            )  # fmt: skip
        else:
            rng = np.random.default_rng(seed)

            def observe(shifted: np.ndarray) -> np.ndarray:
                return self._observe(engine, compiled, terms, shifted, shots=n_shots, rng=rng)

            values_out, jacobian = parameter_shift(observe, compiled, angles, wrt_slots, include_values)
            result = jacobian if tangent is None else np.einsum("ro,row->rw", tangent, jacobian)
        executions = shift_rule_executions(wrt_slots, rows, include_values)
        return GradResult(
            result,
            values_out,
            tuple(names),
            engine.name,
            time.perf_counter() - start,
            method=chosen,
            shift_rule_executions=executions,
            shift_rule_shots=executions * n_shots * terms.measured,
        )

    def _gradient_method(self, method: str, shots: int, entry: _Entry) -> str:
        """Resolve ``auto`` and check that an explicit ``adjoint`` can run here."""
        if method not in GRADIENT_METHODS:
            raise InvalidRequest(
                f"unknown gradient method {method!r}; use one of {', '.join(map(repr, GRADIENT_METHODS))}"
            )
        noise = self.config.noise
        blocker = None
        if noise.is_noisy:
            blocker = (
                f"this node simulates noise (depolarizing {noise.depolarizing_1q:g}/"
                f"{noise.depolarizing_2q:g}, readout {noise.readout_error:g}), and adjoint "
                "differentiation needs noise-free states"
            )
        elif entry.engine != "batched":
            blocker = (
                f"adjoint differentiation runs on the batched engine and this circuit runs on "
                f"{entry.engine!r} here"
            )
        if method == "adjoint":
            if shots:
                raise InvalidRequest(
                    f"method 'adjoint' needs exact expectations but the request asks for {shots} shots; "
                    "send shots=0, or use method 'parameter_shift' or 'auto' for shot-sampled gradients"
                )
            if blocker:
                raise PreconditionFailed(
                    f"method 'adjoint' is not available: {blocker}; use 'auto' or 'parameter_shift' "
                    "(or a noise-free batched node)"
                )
            return "adjoint"
        if method == "auto" and not shots and blocker is None:
            return "adjoint"
        return "parameter_shift"

    # -- circuits and engines -----------------------------------------------------------

    def _load(self, circuit_hash: str, cirq_json: str | None) -> _Entry:
        if not isinstance(circuit_hash, str) or not _HASH_RE.fullmatch(circuit_hash):
            raise InvalidRequest(
                "circuit.hash must be the SHA-256 of circuit.cirq_json as 64 lower-case hex digits, "
                f'got "{circuit_hash}"'
            )
        with self._lock:
            entry = self._cache.get(circuit_hash)
            # JSON equal to the text this hash was verified against needs no new SHA-256.
            known = entry is not None and (not cirq_json or cirq_json == entry.cirq_json)
            if entry is not None and known:
                self._cache.move_to_end(circuit_hash)
                self.cache_lookups["hit"] += 1
                return entry
            self.cache_lookups["miss" if cirq_json else "not_found"] += 1
        if cirq_json:
            actual = hashlib.sha256(cirq_json.encode()).hexdigest()
            if actual != circuit_hash:
                raise InvalidRequest(
                    f"circuit.hash {circuit_hash} is not the SHA-256 of circuit.cirq_json, "
                    f"which is {actual}; hash exactly the UTF-8 bytes sent as cirq_json and send "
                    "the 64 lower-case hex digits"
                )
        if not cirq_json:
            raise UnknownCircuit(f"circuit {circuit_hash} is not cached on this node; resend its cirq_json")
        entry = self._compile(circuit_hash, cirq_json)
        with self._lock:
            self._cache[circuit_hash] = entry
            self._cache.move_to_end(circuit_hash)
            while len(self._cache) > self.config.circuit_cache_size:
                self._cache.popitem(last=False)
        return entry

    def _compile(self, circuit_hash: str, cirq_json: str) -> _Entry:
        try:
            json.loads(cirq_json)
        except ValueError as exc:  # JSONDecodeError names the line and column; its type name helps nobody
            raise InvalidRequest(f"circuit.cirq_json is not JSON: {exc}") from None
        try:
            circuit = cirq.read_json(json_text=cirq_json)
        except Exception as exc:  # Cirq raises many types for JSON it cannot read.
            raise InvalidRequest(
                f"circuit.cirq_json is JSON but not a Cirq circuit ({exc}); "
                'send cirq.to_json(circuit) output, an object with "cirq_type": "Circuit" '
                "(see docs/client.md, calling from other languages)"
            ) from None
        if not isinstance(circuit, cirq.AbstractCircuit):
            raise InvalidRequest(
                f'circuit.cirq_json must encode a circuit (cirq_type "Circuit", cirq.to_json(circuit)), '
                f"got a {type(circuit).__name__}"
            )
        try:
            compiled = compile_circuit(circuit, self.config.max_qubits)
        except CircuitError as exc:
            raise InvalidRequest(str(exc)) from None
        engine, reason = self._choose_engine(compiled)
        if reason:
            logger.info("circuit %s runs on %s: %s", circuit_hash[:12], engine, reason)
        return _Entry(compiled, engine, cirq_json, CircuitRequests(compiled))

    def _choose_engine(self, compiled: CompiledCircuit) -> tuple[str, str | None]:
        if self.config.noise.has_gate_noise:
            return self._choose_noisy_engine(compiled)
        reason = self._engines[self.config.backend].supports(compiled)
        if reason is None:
            return self.config.backend, None
        return "qsim", f"the {self.config.backend} engine cannot run it ({reason})"

    def _choose_noisy_engine(self, compiled: CompiledCircuit) -> tuple[str, str | None]:
        """Pick the gate-noise engine: torch for the ``batched`` backend, else the references."""
        noise = self.config.noise
        exact = noise.method == "density_matrix"
        qsim = f"qsim Monte Carlo with {noise.trajectories} trajectories"
        if self.config.backend != "batched":
            if exact:
                return "cirq-noisy", "gate noise is configured; exact density-matrix simulation (cirq)"
            return "qsim-noisy", f"gate noise is configured; {qsim}"
        name = "batched-density" if exact else "batched-trajectories"
        reason = self._engines[name].supports(compiled)
        if reason is None:
            method = "exact density matrix" if exact else f"{noise.trajectories} Monte Carlo trajectories"
            return name, f"gate noise is configured; {method} of the whole batch (torch)"
        if exact:
            raise InvalidRequest(
                f"the circuit acts on {compiled.n_qubits} qubits, but {reason}; send a smaller circuit, or "
                "run the node with --noise-method trajectories (or --backend cirq for Cirq's density matrix)"
            )
        return "qsim-noisy", f"{reason}; {qsim}"

    def _engine(self, entry: _Entry, seed: int | None) -> Backend:
        engine = self._engines[entry.engine]
        if isinstance(engine, TrajectoriesBackend):
            return engine.seeded(seed)
        if entry.engine == "qsim-noisy" and seed is not None:
            return QsimBackend(self.config.noise, seed=seed)
        return engine

    # -- numerics ---------------------------------------------------------------------

    def _exact_terms(
        self, engine: Backend, compiled: CompiledCircuit, terms: Terms, angles: np.ndarray
    ) -> np.ndarray:
        values = engine.expectations(compiled, terms.terms, angles)
        if self.config.noise.readout_error > 0:
            values = values * readout_factors(terms.terms, self.config.noise.readout_error)
        return values

    def _observe(
        self,
        engine: Backend,
        compiled: CompiledCircuit,
        terms: Terms,
        angles: np.ndarray,
        *,
        shots: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        values = self._exact_terms(engine, compiled, terms, angles)
        if shots:
            values = sample_terms(values, shots, rng)
        return np.asarray(values @ terms.coefficients, dtype=np.float64)
