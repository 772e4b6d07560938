"""Validation of node requests, and per-circuit plans that make repeated requests cheap.

Every request is checked completely (the messages name the symbol, shape, term or value to
fix), but the checks that depend only on what repeats between requests -- the observables,
the symbol order of the batch, the differentiated symbols -- are done once per circuit and
kept in its `CircuitRequests` (small bounded caches keyed by the exact content, so a cached
answer is the answer the full check would give). What changes every time -- the values,
cotangents, shots and sizes -- is checked every time. For a 10-row request of a small
circuit this takes the node's own overhead from ~150 µs to ~20 µs. A request's whole shape
(`qpumesh.node.plans`) is kept here too, once every check of it passed.

The slot angles of a batch are computed with one vectorised expression per symbol order
(``values[:, cols] * coeff + offset`` for the affine slots), the same arithmetic as
`CompiledCircuit.angles`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeVar

import numpy as np

from qpumesh.node.backends.base import PAULI_LETTERS
from qpumesh.node.circuits import CompiledCircuit
from qpumesh.node.errors import InvalidRequest, LimitExceeded
from qpumesh.node.gradients import ChainRule, GradientError, differentiable_slots
from qpumesh.node.limits import MAX_COEFFICIENTS, TERM_CACHE_BYTES
from qpumesh.wire.status import excerpt

__all__ = [
    "CircuitRequests",
    "Columns",
    "Differentiation",
    "KeptPlan",
    "Observables",
    "Terms",
    "check_cotangents",
    "check_finite",
    "check_reply_size",
    "check_shots",
    "check_table",
]

#: Each observable: ``[(coefficient, dense Pauli string), ...]`` in ``sorted(all_qubits())`` order.
Observables: TypeAlias = Sequence[Sequence[tuple[float, str]]]

#: Entries kept in each per-circuit cache (cleared when full).
_CACHE_SIZE = 64
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


@dataclass(frozen=True)
class Terms:
    """Unique Pauli terms of a request and their coefficients ``(n_terms, n_obs)``.

    Attributes:
        terms: Unique dense Pauli strings, in first-seen order.
        coefficients: ``coefficients[t, o]`` is the weight of term ``t`` in observable ``o``.
        measured: Number of non-identity terms (each is measured separately on hardware).
    """

    terms: tuple[str, ...]
    coefficients: np.ndarray
    measured: int


@dataclass(frozen=True)
class Columns:
    """A validated symbol order of a parameter batch, and how it maps to slot angles."""

    names: tuple[str, ...]
    affine_slots: np.ndarray
    affine_columns: np.ndarray
    coeff: np.ndarray
    offset: np.ndarray
    other_slots: tuple[int, ...]
    all_affine: bool = False
    """Every slot is affine, in slot order (``affine_slots`` is ``0, 1, ...``)."""

    def angles(self, compiled: CompiledCircuit, table: np.ndarray) -> np.ndarray:
        """Slot angles ``(rows, n_slots)`` of a ``(rows, len(names))`` batch.

        Raises:
            InvalidRequest: An angle is not finite (names the row, gate and symbol values).
        """
        if self.all_affine:  # the common case, without the scatter into an empty table (same numbers)
            with np.errstate(all="ignore"):
                # C-ordered, as the empty table was (``take``; fancy indexing's result is not).
                angles: np.ndarray = table.take(self.affine_columns, axis=1) * self.coeff
                angles += self.offset
        else:
            angles = self._general_angles(compiled, table)
        if not np.isfinite(angles).all():
            row, k = np.argwhere(~np.isfinite(angles))[0]
            slot = compiled.slots[k]
            values = ", ".join(f"{s} = {_number(table[row, self.names.index(s)])}" for s in slot.symbols)
            raise InvalidRequest(
                f"params.values row {row}: the angle of {slot.description} is not a finite real number "
                f"for {values}; send values for which every angle is finite"
            )
        return angles

    def _general_angles(self, compiled: CompiledCircuit, table: np.ndarray) -> np.ndarray:
        angles = np.empty((table.shape[0], len(compiled.slots)), dtype=np.float64)
        with np.errstate(all="ignore"):
            angles[:, self.affine_slots] = table[:, self.affine_columns] * self.coeff + self.offset
            for k in self.other_slots:
                slot = compiled.slots[k]
                assert slot.function is not None
                args = [table[:, self.names.index(s)] for s in slot.symbols]
                value = np.asarray(slot.function(*args), dtype=np.float64)
                angles[:, k] = np.broadcast_to(value, (table.shape[0],))
        return angles


@dataclass(frozen=True)
class Differentiation:
    """The differentiated symbols of a request, their slots and chain rule (or why not)."""

    names: tuple[str, ...]
    slots: list[list[int]]
    chain: ChainRule | None
    error: str | None


class KeptPlan(Protocol):
    """What a plan per request shape (`qpumesh.node.plans`) shows its circuit's cache."""

    @property
    def terms(self) -> Terms:
        """The request's unique terms (a plan of large terms is not kept)."""
        ...


_P = TypeVar("_P", bound=KeptPlan)


class CircuitRequests:
    """The validated, repeating parts of requests for one compiled circuit. Thread-safe.

    Args:
        compiled: The circuit.
    """

    def __init__(self, compiled: CompiledCircuit) -> None:
        self.compiled = compiled
        self._lock = threading.Lock()
        self._terms: dict[Hashable, Terms] = {}
        self._columns: dict[tuple[str, ...], Columns] = {}
        self._wrt: dict[tuple[tuple[str, ...], tuple[str, ...]], Differentiation] = {}
        self._plans: dict[Hashable, KeptPlan] = {}

    def plan(self, key: Hashable, kind: type[_P]) -> _P | None:
        """Return the plan of type `kind` kept for a request shape (`qpumesh.node.plans`), or None."""
        with self._lock:
            hit = self._plans.get(key)
        return hit if isinstance(hit, kind) else None

    def keep_plan(self, key: Hashable, plan: KeptPlan) -> None:
        """Keep the plan of a request shape whose every check passed (unless its terms are large)."""
        if small_terms(plan.terms):
            self._store(self._plans, key, plan)

    def _cached(self, cache: dict[_K, _V], key: _K) -> _V | None:
        with self._lock:
            return cache.get(key)

    def _store(self, cache: dict[_K, _V], key: _K, value: _V) -> _V:
        with self._lock:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[key] = value
        return value

    def terms(self, observables: Observables) -> Terms:
        """Validate observables and collect their unique terms.

        Raises:
            InvalidRequest: No observables, a malformed term, a non-finite coefficient, or a
                Pauli string of the wrong length or with other letters than IXYZ.
        """
        key = observables_key(observables)
        if key is not None and (hit := self._cached(self._terms, key)) is not None:
            return hit
        terms = _validate_terms(self.compiled, observables)
        return terms if key is None or not small_terms(terms) else self._store(self._terms, key, terms)

    def columns(self, symbols: Sequence[str]) -> Columns:
        """Validate the symbol order of a batch: every circuit symbol exactly once.

        Raises:
            InvalidRequest: A duplicate, unknown or missing symbol (named).
        """
        key = tuple(symbols)
        if (hit := self._cached(self._columns, key)) is not None:
            return hit
        return self._store(self._columns, key, _validate_columns(self.compiled, key))

    def differentiation(self, columns: Columns, wrt: Sequence[str]) -> Differentiation:
        """Validate the differentiated symbols (empty = every column, in order).

        Raises:
            InvalidRequest: A symbol that is not a column or is listed twice. (A symbol the
                shift rule cannot handle is reported in `Differentiation.error`, raised by
                the caller after its other checks.)
        """
        key = (columns.names, tuple(wrt))
        if (hit := self._cached(self._wrt, key)) is not None:
            return hit
        names = key[1] if key[1] else columns.names
        seen: set[str] = set()
        for name in names:
            if name not in columns.names:
                raise InvalidRequest(
                    f"wrt symbol {excerpt(name)} is not a column of the parameter batch "
                    f"{excerpt(list(columns.names), 300)}"
                )
            if name in seen:
                raise InvalidRequest(f"duplicate wrt symbol {excerpt(name)}; list each symbol once")
            seen.add(name)
        try:
            slots = differentiable_slots(self.compiled, names)
            plan = Differentiation(names, slots, ChainRule(self.compiled, slots), None)
        except GradientError as exc:
            plan = Differentiation(names, [], None, str(exc))
        return self._store(self._wrt, key, plan)


def observables_key(observables: Observables) -> Hashable | None:
    """Return the observables as a dictionary key (None when they are not hashable)."""
    try:
        key = tuple(tuple(observable) for observable in observables)
        hash(key)
    except TypeError:
        return None
    return key


def small_terms(terms: Terms) -> bool:
    """Whether `terms` may be kept between requests.

    Large observables are validated again per request rather than kept: each per-circuit
    cache holds at most _CACHE_SIZE entries of at most TERM_CACHE_BYTES / _CACHE_SIZE each.
    """
    return terms.coefficients.nbytes + sum(map(len, terms.terms)) <= TERM_CACHE_BYTES // _CACHE_SIZE


def _validate_terms(compiled: CompiledCircuit, observables: Observables) -> Terms:
    n = compiled.n_qubits
    if len(observables) == 0:
        raise InvalidRequest("no observables: send at least one observable (a list of Pauli terms)")
    index: dict[str, int] = {}
    entries: list[tuple[int, int, float]] = []
    qubits = list(map(str, compiled.qubits))
    for o, observable in enumerate(observables):
        for t, term in enumerate(observable):
            try:
                coefficient, paulis = term
                coefficient = float(coefficient) + 0.0  # + 0.0: -0.0 and 0.0 are one key
            except (TypeError, ValueError):
                raise InvalidRequest(
                    f"observable {o} term {t} must be (coefficient, pauli_string), got {excerpt(term)}"
                ) from None
            if not math.isfinite(coefficient):
                raise InvalidRequest(f"observable {o} term {t} has a non-finite coefficient {coefficient!r}")
            if not isinstance(paulis, str) or len(paulis) != n:
                raise InvalidRequest(
                    f"observable {o} term {t}: Pauli string {excerpt(paulis, 40)} must have one letter per "
                    f"qubit ({n} for this circuit, in sorted qubit order {excerpt(qubits, 200)})"
                )
            if not set(paulis) <= PAULI_LETTERS:
                bad = sorted(set(paulis) - PAULI_LETTERS)
                raise InvalidRequest(
                    f"observable {o} term {t}: Pauli string {excerpt(paulis, 40)} has invalid letters "
                    f"{excerpt(bad, 40)}; use only 'I', 'X', 'Y', 'Z'"
                )
            j = index.setdefault(paulis, len(index))
            entries.append((j, o, coefficient))
    if len(index) * len(observables) > MAX_COEFFICIENTS:
        raise LimitExceeded(
            f"{len(index)} unique Pauli terms x {len(observables)} observables are more than the node's "
            f"{MAX_COEFFICIENTS} coefficients per request; send fewer observables or terms per request"
        )
    coefficients = np.zeros((len(index), len(observables)), dtype=np.float64)
    # |<P>| <= 1 for every Pauli term, so a finite sum of |coefficients| keeps values finite.
    with np.errstate(over="ignore", invalid="ignore"):
        for j, o, coefficient in entries:
            coefficients[j, o] += coefficient
        bound = np.abs(coefficients).sum(axis=0)
    if not np.isfinite(bound).all():
        o = int(np.argmin(np.isfinite(bound)))
        raise InvalidRequest(
            f"observable {o}: the sum of its coefficients' magnitudes overflows float64 (over 1.8e308), "
            "so its "
            "value would not be finite; scale the coefficients down"
        )
    coefficients.flags.writeable = False
    measured = sum(1 for term in index if term.strip("I"))
    return Terms(tuple(index), coefficients, measured)


def _validate_columns(compiled: CompiledCircuit, names: tuple[str, ...]) -> Columns:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidRequest(
                f"duplicate symbol {excerpt(name)} in the parameter batch; send each column once"
            )
        seen.add(name)
    circuit_symbols = set(compiled.symbols)
    for name in names:
        if name not in circuit_symbols:
            raise InvalidRequest(
                f"unknown symbol {excerpt(name)}; the circuit's symbols are "
                f"{excerpt(list(compiled.symbols), 300)}"
            )
    missing = [s for s in compiled.symbols if s not in seen]
    if missing:
        raise InvalidRequest(
            f"the parameter batch lacks the circuit's symbol(s) {excerpt(missing, 300)}; "
            "add a column for each"
        )
    column = {name: j for j, name in enumerate(names)}
    affine = [k for k, slot in enumerate(compiled.slots) if slot.affine]
    return Columns(
        all_affine=affine == list(range(len(compiled.slots))),
        names=names,
        affine_slots=np.array(affine, dtype=np.int64),
        affine_columns=np.array([column[compiled.slots[k].symbol] for k in affine], dtype=np.int64),
        coeff=np.array([compiled.slots[k].coeff for k in affine], dtype=np.float64),
        offset=np.array([compiled.slots[k].offset for k in affine], dtype=np.float64),
        other_slots=tuple(k for k, slot in enumerate(compiled.slots) if not slot.affine),
    )


def check_table(values: np.ndarray, columns: Columns, max_rows: int) -> np.ndarray:
    """Return `values` as a finite float64 ``(rows, len(columns.names))`` array.

    Raises:
        InvalidRequest: Not numeric, the wrong shape, or a NaN/inf (row and symbol named).
        LimitExceeded: More than `max_rows` rows.
    """
    names = list(columns.names)
    try:
        table = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidRequest("values must be a numeric (rows, len(symbols)) array") from None
    if table.ndim != 2 or table.shape[1] != len(names):
        raise InvalidRequest(
            f"values must have shape (rows, {len(names)}) -- one column per symbol {excerpt(names, 300)} -- "
            f"got shape {excerpt(tuple(table.shape), 120)}"
        )
    if table.shape[0] > max_rows:
        raise LimitExceeded(
            f"{table.shape[0]} parameter rows exceed this node's max_batch_rows={max_rows}; split the batch"
        )
    if not np.isfinite(table).all():
        row, col = np.argwhere(~np.isfinite(table))[0]
        raise InvalidRequest(
            f"params.values row {row}, column {col} (symbol {excerpt(names[col])}) is "
            f"{_number(table[row, col])}; every parameter must be a finite number"
        )
    return table


def _number(value: float) -> str:
    """Write a number as people do: ``nan``, ``inf``, ``0.5`` (never ``np.float64(nan)``)."""
    return f"{float(value):g}"


def check_shots(shots: int | None, default: int) -> int:
    """Resolve the shots of a request (None = the node's default).

    Raises:
        InvalidRequest: Not a non-negative integer.
    """
    if shots is None:
        return default
    if isinstance(shots, bool) or not isinstance(shots, int | np.integer) or shots < 0:
        raise InvalidRequest(f"shots must be a non-negative integer (0 = exact), got {excerpt(shots)}")
    return int(shots)


def check_cotangents(cotangents: np.ndarray | None, rows: int, n_obs: int) -> np.ndarray | None:
    """Return finite float64 cotangents ``(rows, n_obs)``, or None when none were sent.

    Raises:
        InvalidRequest: Not numeric, the wrong shape, or NaN/inf.
    """
    if cotangents is None:
        return None
    try:
        tangent = np.asarray(cotangents, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidRequest("cotangents must be a numeric (rows, n_observables) array") from None
    if tangent.shape != (rows, n_obs):
        raise InvalidRequest(
            f"cotangents must have shape (rows, n_observables) = ({rows}, {n_obs}), "
            f"got {excerpt(tuple(tangent.shape), 120)}"
        )
    if not np.isfinite(tangent).all():
        raise InvalidRequest("cotangents contain NaN or infinite values")
    return tangent


def check_reply_size(n_doubles: int, limit: int) -> None:
    """Refuse a reply of `n_doubles` float64 values over `limit` bytes.

    Raises:
        LimitExceeded: The reply would be too large (both sizes named).
    """
    size = 8 * n_doubles
    if size > limit:
        raise LimitExceeded(
            f"the reply would be {size} bytes, over this node's max_message_bytes={limit}; split the batch"
        )


def check_finite(result: np.ndarray, what: str) -> None:
    """Refuse a result with an infinite or NaN entry (float64 overflow) instead of sending it.

    The values of an observable are bounded by its coefficients (checked with the request);
    derivatives also scale with the symbols' coefficients in the circuit, and can overflow.

    Raises:
        InvalidRequest: Naming the first bad row and what to scale down.
    """
    if np.isfinite(result).all():
        return
    row = int(np.argwhere(~np.isfinite(result))[0][0])
    raise InvalidRequest(
        f"row {row}: a {what} is not finite (float64 overflow); scale down the observables' coefficients "
        "or the symbols' coefficients in the circuit"
    )
