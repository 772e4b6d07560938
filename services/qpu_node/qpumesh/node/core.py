"""The QPU node without gRPC: circuit cache, validation, limits, engine choice.

`NodeCore` is what the gRPC servicer and the coordinator's in-process executor both call,
so in-process and mesh runs give identical numbers. It

* keeps compiled circuits by the SHA-256 of their JSON (`qpumesh.node.circuit_cache`:
  bounded before Cirq parses them, compiled once, LRU); a request may then carry only the
  hash;
* validates every request (`qpumesh.node.requests`, with per-circuit plans of what repeats
  and a plan per request shape, `qpumesh.node.plans`) and bounds its work before any
  (`qpumesh.node.limits`): it raises `InvalidRequest` (fix
  the request), `UnknownCircuit` (resend the circuit JSON), `LimitExceeded` (split the
  request) or `PreconditionFailed` (not on this node) -- messages name the offending
  symbol, shape, value or bound; no error leaves state behind;
* runs each circuit on the engine chosen for it (`qpumesh.node.engines`), reported as
  ``backend``;
* turns observables (weighted Pauli strings) into unique terms for the engines, then applies
  readout error and shot sampling (`qpumesh.node.noise`); differentiates exact requests by
  the adjoint method (`qpumesh.node.adjoint`) and the others by the parameter-shift rule
  (`qpumesh.node.gradients`), reporting the shift rule's hardware cost either way; refuses
  results that overflow float64 rather than sending infinities.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Hashable, Sequence
from importlib import metadata
from typing import cast

import numpy as np

from qpumesh.node.adjoint import adjoint_gradient
from qpumesh.node.backends import Backend, BatchedBackend
from qpumesh.node.backends.compiled import warm_up
from qpumesh.node.circuit_cache import CachedCircuit, CircuitCache, CircuitLimits
from qpumesh.node.circuits import SUPPORTED_GATES, CompiledCircuit
from qpumesh.node.engines import NodeEngines
from qpumesh.node.errors import InvalidRequest, LimitExceeded, NodeError, PreconditionFailed, UnknownCircuit
from qpumesh.node.gradients import (
    MAX_STACKED_ROWS,
    parameter_shift,
    shift_rule_executions,
)
from qpumesh.node.limits import Work
from qpumesh.node.mitigation import Extrapolation
from qpumesh.node.node_config import NodeConfig
from qpumesh.node.noise import readout_factors, sample_terms, standard_errors
from qpumesh.node.plans import EvaluatePlan, GradientPlan, evaluate_key, gradient_key
from qpumesh.node.requests import (
    Observables,
    Terms,
    check_cotangents,
    check_finite,
    check_reply_size,
    check_shots,
    check_table,
)
from qpumesh.node.results import EvalResult, GradResult, NodeInfo, Part

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


def _version() -> str:
    try:
        return metadata.version("qpumesh")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class NodeCore:
    """One emulated QPU, without the network. Thread-safe.

    Args:
        config: Node settings.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._engines = NodeEngines(config.backend, config.precision, config.noise)
        limits = CircuitLimits(
            max_qubits=config.max_qubits,
            max_circuit_bytes=config.max_circuit_bytes,
            max_circuit_operations=config.max_circuit_operations,
            max_request_cost=config.max_request_cost,
            cache_size=config.circuit_cache_size,
        )
        zne = config.zne
        self._extrapolation = Extrapolation(zne) if zne.enabled else None
        self._circuits = CircuitCache(limits, self._engines.choose, zne.fold if zne.enabled else None)

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
            hardware=c.hardware.name,
            mitigation=c.zne.describe(),
        )

    @property
    def cache_lookups(self) -> dict[str, int]:
        """Circuit lookups by outcome: cached, not cached with the JSON sent (compiled), or NOT_FOUND."""
        return self._circuits.lookups

    def cached_circuits(self) -> int:
        """Return how many compiled circuits the cache holds."""
        return len(self._circuits)

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
        return self._circuits.load(circuit_hash, cirq_json).compiled

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
        entry = self._circuits.load(circuit_hash, cirq_json)
        n_shots = check_shots(shots, self.config.default_shots)
        # Only sampling draws from it (noise trajectories are seeded by the engine): an exact
        # request skips seeding a generator from the OS's entropy.
        rng = np.random.default_rng(seed) if n_shots else None
        key = evaluate_key(observables, symbols, values, n_shots)
        parts = [
            self._evaluate_variant(variant, key, observables, symbols, values, n_shots, seed, rng)
            for variant in entry.folded or (entry,)  # the circuit, or its folded versions under ZNE
        ]
        executions, shots_taken = sum(p.executions for p in parts), sum(p.shots for p in parts)
        qpu = math.fsum(p.hardware_seconds for p in parts)
        mitigated, errors = parts[0].values, parts[0].errors
        if self._extrapolation is not None:
            combine = self._extrapolation.combine_values
            mitigated, errors = combine([p.values for p in parts], [p.errors for p in parts])
            check_finite(mitigated, "extrapolated expectation value")
        seconds = time.perf_counter() - start
        return EvalResult(mitigated, errors, parts[0].backend, seconds, executions, shots_taken, qpu)

    def _evaluate_variant(  # noqa: PLR0917 (private helper of evaluate)
        self,
        entry: CachedCircuit,
        key: Hashable | None,
        observables: Observables,
        symbols: Sequence[str],
        values: np.ndarray,
        n_shots: int,
        seed: int | None,
        rng: np.random.Generator | None,
    ) -> Part:
        """One circuit's expectations; ``key`` (`plans.evaluate_key`): its plan's, None = not kept."""
        compiled = entry.compiled
        plan = None if key is None else entry.requests.plan(key, EvaluatePlan)
        if plan is None:
            table, plan = self._plan_evaluation(entry, observables, symbols, values, n_shots)
            if key is not None:
                entry.requests.keep_plan(key, plan)
        else:  # a shape planned before: only the numbers are new
            table = check_table(values, plan.columns, self.config.max_batch_rows)
        terms = plan.terms
        angles = plan.columns.angles(compiled, table)
        engine = self._engine(entry, seed)
        exact = self._exact_terms(engine, compiled, terms, angles)
        errors = None
        if rng is not None:
            sampled = sample_terms(exact, n_shots, rng)
            expectations = sampled @ terms.coefficients
            errors = standard_errors(exact, terms.coefficients, n_shots)
        else:
            expectations = exact @ terms.coefficients
        check_finite(expectations, "expectation value")
        return Part(expectations, errors, engine.name, plan.executions, plan.shots, plan.hardware_seconds)

    def _plan_evaluation(
        self,
        entry: CachedCircuit,
        observables: Observables,
        symbols: Sequence[str],
        values: np.ndarray,
        n_shots: int,
    ) -> tuple[np.ndarray, EvaluatePlan]:
        """Check an Evaluate request of a shape not planned yet, in full; return its table and plan.

        Raises:
            InvalidRequest, LimitExceeded: See `evaluate`.
        """
        terms = entry.requests.terms(observables)
        columns = entry.requests.columns(symbols)
        table = check_table(values, columns, self.config.max_batch_rows)
        rows = table.shape[0]
        check_reply_size(
            rows * terms.coefficients.shape[1] * (2 if n_shots else 1), self.config.max_message_bytes
        )
        self._work(entry, terms, rows).check(self.config.max_request_cost)
        qpu = self.config.hardware.request_seconds(rows, terms.measured, n_shots, entry.arities)
        return table, EvaluatePlan(terms, columns, rows, rows * n_shots * terms.measured, qpu)

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
        entry = self._circuits.load(circuit_hash, cirq_json)
        n_shots = check_shots(shots, self.config.default_shots)
        variants = entry.folded or (entry,)
        if len(variants) == 1:
            return self._gradient_variant(
                entry, observables, symbols, values, wrt, cotangents, include_values, n_shots, seed, method,
                started=start,
            )  # fmt: skip
        # ZNE: full Jacobians of every folded circuit, combined with the extrapolation's weights.
        assert self._extrapolation is not None
        with_values = include_values or self._extrapolation.needs_values
        options = (n_shots, seed, method)
        parts = [
            self._gradient_variant(v, observables, symbols, values, wrt, None, with_values, *options)
            for v in variants
        ]
        jacobian, values_out = self._extrapolation.combine_jacobians(
            [p.jacobian for p in parts], [p.expectations for p in parts], include_values
        )
        tangent = check_cotangents(cotangents, *jacobian.shape[:2])
        result = jacobian if tangent is None else np.einsum("ro,row->rw", tangent, jacobian)
        check_finite(result, "derivative")
        if values_out is not None:
            check_finite(values_out, "extrapolated expectation value")
        first = parts[0]
        return GradResult(
            result,
            values_out,
            first.wrt,
            first.backend,
            time.perf_counter() - start,
            method=first.method,
            shift_rule_executions=sum(p.shift_rule_executions for p in parts),
            shift_rule_shots=sum(p.shift_rule_shots for p in parts),
            hardware_seconds=math.fsum(p.hardware_seconds for p in parts),
        )

    def _gradient_variant(  # noqa: PLR0917 (private helper of shift_gradient)
        self,
        entry: CachedCircuit,
        observables: Observables,
        symbols: Sequence[str],
        values: np.ndarray,
        wrt: Sequence[str],
        cotangents: np.ndarray | None,
        include_values: bool,
        n_shots: int,
        seed: int | None,
        method: str,
        started: float | None = None,
    ) -> GradResult:
        """One circuit's gradient; ``started`` given: its ``execute_seconds`` count from then."""
        compiled = entry.compiled
        vjp = cotangents is not None
        key = gradient_key(observables, symbols, values, wrt, vjp, include_values, n_shots, method)
        plan = None if key is None else entry.requests.plan(key, GradientPlan)
        if plan is None:
            table, tangent, plan = self._plan_gradient(
                entry, observables, symbols, values, wrt, cotangents, include_values, n_shots, method
            )  # fmt: skip
            if key is not None:
                entry.requests.keep_plan(key, plan)
        else:  # a shape planned before: only the numbers are new
            table = check_table(values, plan.columns, self.config.max_batch_rows)
            tangent = check_cotangents(cotangents, table.shape[0], plan.terms.coefficients.shape[1])
        terms, chain_rule = plan.terms, plan.differentiation
        angles = plan.columns.angles(compiled, table)
        engine = self._engine(entry, seed)
        # Overflow (huge coefficients of symbols or observables) is refused by check_finite below.
        with np.errstate(over="ignore", invalid="ignore"):
            if plan.method == "adjoint":
                batched = cast(BatchedBackend, engine)
                assert chain_rule.chain is not None
                values_out, result = adjoint_gradient(
                    batched, compiled, terms.terms, terms.coefficients, angles, chain_rule.chain, tangent,
                    include_values,
                )  # fmt: skip
            else:
                rng = np.random.default_rng(seed)

                def observe(shifted: np.ndarray) -> np.ndarray:
                    return self._observe(engine, compiled, terms, shifted, shots=n_shots, rng=rng)

                values_out, jacobian = parameter_shift(
                    observe, compiled, angles, chain_rule.slots, include_values
                )  # fmt: skip
                result = jacobian if tangent is None else np.einsum("ro,row->rw", tangent, jacobian)
        check_finite(result, "derivative")
        if values_out is not None:
            check_finite(values_out, "expectation value")
        return GradResult(
            result,
            values_out,
            chain_rule.names,
            engine.name,
            0.0 if started is None else time.perf_counter() - started,
            method=plan.method,
            shift_rule_executions=plan.executions,
            shift_rule_shots=plan.shots,
            hardware_seconds=plan.hardware_seconds,
        )

    def _plan_gradient(  # noqa: PLR0917 (private helper of _gradient_variant)
        self,
        entry: CachedCircuit,
        observables: Observables,
        symbols: Sequence[str],
        values: np.ndarray,
        wrt: Sequence[str],
        cotangents: np.ndarray | None,
        include_values: bool,
        n_shots: int,
        method: str,
    ) -> tuple[np.ndarray, np.ndarray | None, GradientPlan]:
        """Check a request of a shape not planned yet, in full; return its table, cotangents and plan.

        Raises:
            InvalidRequest, PreconditionFailed, LimitExceeded: See `shift_gradient`.
        """
        terms = entry.requests.terms(observables)
        columns = entry.requests.columns(symbols)
        table = check_table(values, columns, self.config.max_batch_rows)
        plan = entry.requests.differentiation(columns, wrt)
        names = plan.names
        rows, n_obs = table.shape[0], terms.coefficients.shape[1]
        tangent = check_cotangents(cotangents, rows, n_obs)
        width = len(names) if tangent is not None else n_obs * len(names)
        check_reply_size(rows * (width + (n_obs if include_values else 0)), self.config.max_message_bytes)
        if plan.chain is None:
            raise InvalidRequest(plan.error)
        chosen = self._engines.gradient_method(method, n_shots, entry.engine)
        vjp_by_adjoint = chosen == "adjoint" and tangent is not None
        executions = shift_rule_executions(plan.slots, rows, include_values)
        costates = 1 if vjp_by_adjoint else n_obs  # outputs differentiated per row
        passes = 2 + 2 * costates if chosen == "adjoint" else executions // max(rows, 1)
        work = self._work(entry, terms, rows, passes=passes, derivatives=costates, wrt=len(names))
        work.check(self.config.max_request_cost)
        hardware = self.config.hardware.request_seconds(executions, terms.measured, n_shots, entry.arities)
        shots = executions * n_shots * terms.measured
        return table, tangent, GradientPlan(terms, columns, plan, chosen, executions, shots, hardware)

    # -- circuits and engines -----------------------------------------------------------

    def _work(self, entry: CachedCircuit, terms: Terms, rows: int, **sizes: int) -> Work:
        """Return the size of a request on `entry` (see `limits.Work`; `sizes` are its other fields)."""
        compiled = entry.compiled
        passes = sizes.get("passes", 1)
        return Work(
            engine=entry.engine,
            qubits=compiled.n_qubits,
            operations=len(compiled.ops),
            slots=len(compiled.slots),
            terms=len(terms.terms),
            observables=terms.coefficients.shape[1],
            rows=rows,
            rows_per_call=min(rows * passes, max(rows, MAX_STACKED_ROWS)),
            trajectories=self.config.noise.trajectories,
            term_tables=entry.engine == "batched-trajectories"
            or (entry.engine == "batched" and self.config.precision == "single"),
            **sizes,
        )

    def _engine(self, entry: CachedCircuit, seed: int | None) -> Backend:
        return self._engines.get(entry.engine, seed)

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
