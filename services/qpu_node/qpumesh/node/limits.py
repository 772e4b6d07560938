"""How much work one request may cause on a node, decided before the work starts.

A node answers every request it can, so every bound must be checked *before* the work it
bounds: a request that would parse, expand, allocate or simulate too much is refused at once
with `LimitExceeded` (RESOURCE_EXHAUSTED, "split the request") or, when it is malformed
rather than large, `InvalidRequest` (INVALID_ARGUMENT) -- each message names the bound, its
value and what to change. The bounds, in the order a request meets them:

| bound | value (see below) | checked |
|---|---|---|
| requests in flight | workers + `max_queued_requests` | `server`, before parsing |
| protobuf fields of a request | `MAX_REQUEST_FIELDS` | `server`, before parsing |
| tensor dimensions | `wire.tensors.MAX_DIMENSIONS` | before the shape's product |
| circuit JSON size | `max_circuit_bytes` | `circuit_json`, before the JSON |
| operations, moments (sub-circuits inlined) | `max_circuit_operations` | JSON scan, before Cirq |
| JSON and sub-circuit nesting | `MAX_JSON_DEPTH`, `MAX_SUBCIRCUIT_DEPTH` | JSON scan |
| matrix gates | 3 qubits (8 x 8) | JSON scan |
| expressions: nodes, exponents, expansion | `MAX_EXPRESSION_NODES`, ... | JSON scan, before sympy |
| compiling a new circuit | `max_request_cost` | `compile_cost`, before Cirq |
| terms x observables (coefficients) | `MAX_COEFFICIENTS` | `requests` |
| memory (terms x 2^n, rows x slots...) | `MAX_REQUEST_BYTES` | `Work.check` |
| simulation cost | `max_request_cost` | `Work.check`, before simulating |
| rows, reply size | `max_batch_rows`, `max_message_bytes` | `requests` |

Settings (`max_*`) are `NodeConfig` fields (`max_queued_requests` a `ServerConfig` one), each
a ``qpumesh node serve`` flag and variable; constants (`MAX_*`) are below.

Costs are counted in *amplitude operations*: one gate applied to one amplitude of one
state by the compiled kernels (about 1-2 ns on one core). The constants of `compile_cost`
and `run_cost` were measured with ``benchmarks/calibrate_cost.py`` (docs/node.md, "Limits");
they are conservative, and which requests pass depends only on the request and the node's
settings, never on load.
"""

from __future__ import annotations

from dataclasses import dataclass

from qpumesh.node.errors import LimitExceeded

__all__ = [
    "COMPILE_PER_AMPLITUDE",
    "COMPILE_PER_OPERATION",
    "COMPILE_PER_TERM",
    "ENGINE_COSTS",
    "MAX_COEFFICIENTS",
    "MAX_EXPANDED_TERMS",
    "MAX_EXPONENT",
    "MAX_EXPRESSION_NODES",
    "MAX_JSON_DEPTH",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_FIELDS",
    "MAX_SUBCIRCUIT_DEPTH",
    "TERM_CACHE_BYTES",
    "EngineCost",
    "Work",
    "compile_cost",
    "run_cost",
]

#: Protobuf fields (every element of a repeated field counts) of one Evaluate/ShiftGradient
#: request. Parsing holds the GIL; 100 000 fields take ~30 ms, the scan that counts them
#: before parsing at most ~0.4 s (and gives the GIL up every few ms).
MAX_REQUEST_FIELDS = 100_000
#: Nesting of the circuit JSON (objects and lists).
MAX_JSON_DEPTH = 100
#: Nesting of sub-circuits (`cirq.CircuitOperation` inside `cirq.CircuitOperation`...).
MAX_SUBCIRCUIT_DEPTH = 8
#: Nodes (symbols, numbers, operators) of one symbolic expression of the circuit JSON.
MAX_EXPRESSION_NODES = 200
#: Largest |exponent| of a power in a symbolic expression, multiplied along nested powers
#: (``(a**4)**4`` counts 16): sympy computes integer powers exactly, so ``3**30000000``
#: holds the GIL for seconds.
MAX_EXPONENT = 16
#: Upper bound on the terms of an expression once expanded (the node expands every gate
#: angle): ``(a+b+c+1)**16`` has 969, ``(a+b+c+1)**40`` 12 341 and takes sympy seconds.
MAX_EXPANDED_TERMS = 1_000
#: Entries of a request's ``(unique terms, observables)`` coefficient matrix.
MAX_COEFFICIENTS = 4_000_000
#: Memory one request may allocate beyond the node's fixed state buffers (`Work.memory`).
MAX_REQUEST_BYTES = 1024 * 1024 * 1024
#: Bytes of tabulated terms kept per circuit between requests (larger tables are rebuilt
#: per request instead of cached).
TERM_CACHE_BYTES = 32 * 1024 * 1024

#: Compiling a circuit: per operation (Cirq, sympy, fusion) ...
COMPILE_PER_OPERATION = 1_000_000
#: ... and per operation and amplitude (fused gathers of wide registers), in amplitude ops ...
COMPILE_PER_AMPLITUDE = 16
#: ... and per term of the gate angles once expanded (sympy), in amplitude operations.
COMPILE_PER_TERM = 200_000


@dataclass(frozen=True)
class EngineCost:
    """How an engine's simulation cost scales, in amplitude operations.

    Attributes:
        state_power: Amplitudes per parameter set are ``2 ** (state_power * qubits)``
            (1: a statevector, 2: a density matrix).
        per_operation: Extra cost of every gate of every row, whatever the size (Python or
            per-call overhead of Cirq and qsim), in amplitude operations.
        trajectories: Whether every row runs once per Monte Carlo trajectory.
    """

    state_power: int
    per_operation: int
    trajectories: bool = False


#: Measured scaling of each engine relative to the compiled kernels (`calibrate_cost.py`).
ENGINE_COSTS: dict[str, EngineCost] = {
    "batched": EngineCost(1, 64),
    "batched-density": EngineCost(2, 0),
    "batched-trajectories": EngineCost(1, 64, trajectories=True),
    "cirq": EngineCost(1, 20_000),
    "cirq-noisy": EngineCost(2, 20_000),
    "qsim": EngineCost(1, 2_000),
    "qsim-noisy": EngineCost(1, 2_000, trajectories=True),
}


def compile_cost(operations: int, qubits: int, expression_terms: int = 0) -> int:
    """Amplitude operations of compiling `operations` gates on `qubits` qubits.

    `expression_terms` are the terms of the gate angles once expanded (``a`` is one, ``(a +
    b + c + 1)**16`` is 969: sympy expands, differentiates and compiles each angle).
    """
    gates = operations * (COMPILE_PER_OPERATION + COMPILE_PER_AMPLITUDE * (1 << qubits))
    return gates + expression_terms * COMPILE_PER_TERM


def run_cost(
    engine: str,
    *,
    qubits: int,
    operations: int,
    terms: int,
    rows: int,
    passes: int,
    trajectories: int = 1,
) -> int:
    """Amplitude operations of simulating `rows` parameter sets `passes` times each.

    Args:
        engine: The engine that will run (a key of `ENGINE_COSTS`).
        qubits: Width of the circuit.
        operations: Gates of the compiled circuit.
        terms: Unique Pauli terms measured.
        rows: Parameter rows of the request.
        passes: Circuit passes per row: 1 to evaluate, one per shifted evaluation for the
            shift rule, ``2 + 2 x co-states`` for an adjoint sweep.
        trajectories: Monte Carlo trajectories per row (trajectory engines).
    """
    scale = ENGINE_COSTS[engine]
    amplitudes = 1 << (scale.state_power * qubits)
    per_row = operations * (amplitudes + scale.per_operation) + terms * amplitudes
    return rows * passes * per_row * (trajectories if scale.trajectories else 1)


@dataclass(frozen=True)
class Work:
    """The size of one simulation request, known before it runs.

    Attributes:
        engine: The engine that will run it.
        qubits: Circuit width.
        operations: Gates of the compiled circuit.
        slots: Angle slots (parametrised gates).
        terms: Unique Pauli terms measured.
        observables: Observables of the request.
        rows: Parameter rows.
        passes: Circuit passes per row (see `run_cost`).
        rows_per_call: Rows an engine gets at once (more than `rows` for the shift rule's
            stacked shifted rows).
        derivatives: Outputs differentiated per row (the observables; 1 for a
            vector-Jacobian product by the adjoint method; 0 to evaluate).
        wrt: Differentiated symbols.
        trajectories: Monte Carlo trajectories per row (trajectory engines).
        term_tables: The engine tabulates every term over the state (``2**qubits`` phases
            per term: the torch programs of single precision and of trajectories); the
            compiled kernels read terms from bit masks instead.
    """

    engine: str
    qubits: int
    operations: int
    slots: int
    terms: int
    observables: int
    rows: int
    passes: int = 1
    rows_per_call: int = 0
    derivatives: int = 0
    wrt: int = 0
    trajectories: int = 1
    term_tables: bool = False

    @property
    def cost(self) -> int:
        """Amplitude operations of the simulation (`run_cost`)."""
        return run_cost(
            self.engine,
            qubits=self.qubits,
            operations=self.operations,
            terms=self.terms,
            rows=self.rows,
            passes=self.passes,
            trajectories=self.trajectories,
        )

    @property
    def memory(self) -> int:
        """Bytes the request allocates besides the engines' bounded state buffers.

        Tabulated terms (``terms x 2**qubits`` phase vectors in the torch engines), the
        per-call angle tables and term values, the coefficients (and per-row weights of a
        vector-Jacobian product), every pass's outputs and the Jacobians.
        """
        per_call = max(self.rows_per_call, self.rows)
        tables = self.terms * (2 << self.qubits) if self.term_tables else 0
        return 8 * (
            tables
            + per_call * (self.terms + 4 * self.slots)
            + self.terms * (self.observables + self.rows)
            + self.rows * self.passes * self.observables
            + self.rows * self.derivatives * (self.slots + self.wrt)
        )

    def check(self, max_request_cost: int) -> None:
        """Refuse the request when it is over the node's cost or memory bound.

        Raises:
            LimitExceeded: Naming the estimate, the bound and what to split.
        """
        cost = self.cost
        if cost > max_request_cost:
            raise LimitExceeded(
                f"this request would cost about {cost:.3g} amplitude operations ({self.rows} rows x "
                f"{self.passes} circuit pass(es) x ({self.operations} operations + {self.terms} terms) x "
                f"2^{self.qubits} amplitudes on the {self.engine} engine), over this node's "
                f"max_request_cost={max_request_cost:.3g}; split the batch into smaller requests"
            )
        memory = self.memory
        if memory > MAX_REQUEST_BYTES:
            raise LimitExceeded(
                f"this request would need about {memory / 2**20:.0f} MiB ({self.terms} unique terms x "
                f"2^{self.qubits} amplitudes, {self.rows} rows x {self.slots} angles, {self.observables} "
                f"observables), over this node's bound of {MAX_REQUEST_BYTES // 2**20} MiB per request; "
                "split the batch or measure fewer terms per request"
            )
