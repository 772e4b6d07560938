r"""A bounded look at circuit JSON before Cirq and sympy see it.

`cirq.read_json` builds whatever the JSON describes, and the node then inlines sub-circuits
and expands every gate angle with sympy. A few hundred bytes can describe hours of that
work: a `cirq.CircuitOperation` with ``repetitions=10**9``, sub-circuits nested by
reference (``VAL``/``REF``) so that each level multiplies the one below, a ``4096 x 4096``
`cirq.MatrixGate`, ``sympy.Pow(3, 30000000)`` (an exact 14-million-digit integer) or
``(a+b+c+1)**40`` (12 341 terms once expanded). `scan_circuit_json` parses the text with
the standard ``json`` module (C, linear, its size bounded first) and walks it once,
following ``REF``\\ s by memo, to bound all of that without building anything:

* the operations and moments the circuit has after inlining, repetitions multiplied;
* the nesting of the JSON and of sub-circuits;
* matrices (lists of numeric rows): at most 64 x 64, and a `MatrixGate` at most 3 qubits;
* every symbolic expression: its nodes, the exponents of its powers (numbers only, their
  product along nested powers bounded) and an upper bound on its expanded size;
* `CircuitOperation` parameter resolvers: numbers or symbols only (an expression substituted
  into an expression could grow without bound);
* no NaN or infinite numbers.

It also returns the number of distinct qubits named, an upper bound on the circuit's width,
so that the cost of compiling is known before compiling (`limits.compile_cost`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from qpumesh.node.errors import InvalidRequest, LimitExceeded
from qpumesh.node.limits import (
    MAX_EXPANDED_TERMS,
    MAX_EXPONENT,
    MAX_EXPRESSION_NODES,
    MAX_JSON_DEPTH,
    MAX_SUBCIRCUIT_DEPTH,
)
from qpumesh.wire.status import excerpt

__all__ = ["CircuitShape", "check_size", "scan_circuit_json"]

#: Cirq JSON types of sympy objects the node accepts in gate parameters.
_SYMPY_OPERATORS = frozenset({"sympy.Add", "sympy.Mul", "sympy.Pow"})
_SYMPY_NUMBERS = frozenset({"sympy.Integer", "sympy.Float", "sympy.Rational"})
_SYMPY_CONSTANTS = frozenset({"sympy.pi", "sympy.E", "sympy.EulerGamma"})
_QUBIT_TYPES = frozenset({"LineQubit", "GridQubit", "NamedQubit", "LineQid", "GridQid", "NamedQid"})
#: A matrix in the JSON has at most this many rows and columns (a 6-qubit unitary).
_MAX_MATRIX_SIDE = 64
#: A `MatrixGate` acts on at most this many qubits (the compiler's bound on fixed gates).
_MAX_MATRIX_GATE_QUBITS = 3


@dataclass(frozen=True)
class CircuitShape:
    """What a circuit JSON amounts to once its sub-circuits are inlined (upper bounds).

    Attributes:
        operations: Operations, repetitions multiplied.
        moments: Moments, repetitions multiplied.
        qubits: Distinct qubits named anywhere in the JSON.
        expression_terms: Terms of every symbolic expression once expanded, summed,
            repetitions multiplied (what compiling the angles costs sympy).
    """

    operations: int
    moments: int
    qubits: int
    expression_terms: int = 0


@dataclass
class _Count:
    operations: int = 0
    moments: int = 0
    depth: int = 0  # sub-circuit nesting
    terms: int = 0  # expanded terms of the expressions


@dataclass
class _Scan:
    max_operations: int
    values: dict[Any, _Count] = field(default_factory=dict)  # VAL key -> its count
    qubits: set[str] = field(default_factory=set)

    def check(self, count: _Count) -> _Count:
        if count.operations > self.max_operations:
            raise LimitExceeded(
                f"the circuit has {count.operations} operations once its sub-circuits are inlined "
                f"(repetitions multiplied), over this node's max_circuit_operations={self.max_operations}; "
                "send a shorter circuit or fewer repetitions"
            )
        if count.moments > self.max_operations:
            raise LimitExceeded(
                f"the circuit has {count.moments} moments once its sub-circuits are inlined, over this "
                f"node's max_circuit_operations={self.max_operations} (which also bounds moments); "
                "drop empty moments "
                "or send a shorter circuit"
            )
        return count

    def visit(self, node: Any, depth: int) -> _Count:
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(
                f"circuit.cirq_json is nested more than {MAX_JSON_DEPTH} levels deep; flatten the circuit"
            )
        if isinstance(node, list):
            return self._list(node, depth)
        if isinstance(node, float) and not math.isfinite(node):
            raise InvalidRequest(
                f"circuit.cirq_json contains the non-finite number {node!r}; use finite numbers"
            )
        if not isinstance(node, dict):
            return _Count()
        kind = node.get("cirq_type")
        if not isinstance(kind, str):
            return self._sum(node.values(), depth)
        if kind.startswith("sympy."):
            return _Count(terms=_check_expression(node))
        if kind == "VAL":
            count = self.visit(node.get("val"), depth + 1)
            self.values[_key(node)] = count
            return count
        if kind == "REF":
            if _key(node) not in self.values:
                raise InvalidRequest(
                    "circuit.cirq_json refers to the undefined value "
                    f"{excerpt(node.get('key'))} (REF before VAL)"
                )
            return self.values[_key(node)]
        if kind in _QUBIT_TYPES:
            self.qubits.add(json.dumps(node, sort_keys=True))
            return _Count()
        if kind == "MatrixGate":
            _check_matrix_gate(node)
        if kind == "CircuitOperation":
            return self._circuit_operation(node, depth)
        count = self._sum(node.values(), depth)
        if kind == "Moment":
            count.moments = max(1, count.moments + 1)
        elif kind.endswith("Operation"):  # one operation, whatever it wraps (tags, controls)
            count.operations = max(1, count.operations)
        return self.check(count)

    def _list(self, items: list[Any], depth: int) -> _Count:
        matrix = len(items) > 1 and all(
            isinstance(row, list) and row and all(map(_is_number, row)) for row in items
        )
        if matrix and (len(items) > _MAX_MATRIX_SIDE or any(len(row) > _MAX_MATRIX_SIDE for row in items)):
            raise InvalidRequest(
                f"circuit.cirq_json contains a {len(items)} x {max(map(len, items))} matrix; "
                "matrices of at most "
                f"{_MAX_MATRIX_SIDE} x {_MAX_MATRIX_SIDE} are accepted (gates on at most "
                f"{_MAX_MATRIX_GATE_QUBITS} qubits)"
            )
        return self._sum(items, depth)

    def _sum(self, children: Any, depth: int) -> _Count:
        total = _Count()
        for child in children:
            count = self.visit(child, depth + 1)
            total.operations += count.operations
            total.moments += count.moments
            total.terms += count.terms
            total.depth = max(total.depth, count.depth)
            self.check(total)
        return total

    def _circuit_operation(self, node: dict[str, Any], depth: int) -> _Count:
        repetitions = node.get("repetitions", 1)
        if isinstance(repetitions, bool) or not isinstance(repetitions, int):
            raise InvalidRequest(
                f"CircuitOperation repetitions must be an integer, got {excerpt(repetitions)}"
            )
        _check_resolver(node.get("param_resolver"))
        inner = self.visit(node.get("circuit"), depth + 1)
        rest = self._sum((v for k, v in node.items() if k not in ("circuit", "param_resolver")), depth)
        times = max(1, abs(repetitions))
        count = _Count(
            operations=times * inner.operations + rest.operations,
            moments=times * inner.moments + rest.moments,
            terms=times * inner.terms + rest.terms,
            depth=inner.depth + 1,
        )
        if count.depth > MAX_SUBCIRCUIT_DEPTH:
            raise InvalidRequest(
                f"sub-circuits (CircuitOperation) are nested {count.depth} deep, "
                f"more than {MAX_SUBCIRCUIT_DEPTH}; "
                "inline some levels"
            )
        return self.check(count)


def _key(node: dict[str, Any]) -> Any:
    key = node.get("key")
    return key if isinstance(key, int | str) else excerpt(key)


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, dict) and value.get("cirq_type") == "complex"


def _check_matrix_gate(node: dict[str, Any]) -> None:
    shape = node.get("qid_shape")
    matrix = node.get("matrix")
    qubits = len(shape) if isinstance(shape, list) else 0
    side = len(matrix) if isinstance(matrix, list) else 0
    if qubits > _MAX_MATRIX_GATE_QUBITS or side > 1 << _MAX_MATRIX_GATE_QUBITS:
        raise LimitExceeded(
            f"a MatrixGate on {qubits} qubits ({side} x {side}) exceeds this node's bound of "
            f"{_MAX_MATRIX_GATE_QUBITS} qubits per gate; decompose it into gates on at most "
            f"{_MAX_MATRIX_GATE_QUBITS} qubits"
        )


def _check_resolver(resolver: Any) -> None:
    if not isinstance(resolver, dict):
        return
    pairs = resolver.get("param_dict", [])
    values = (
        [pair[1] for pair in pairs if isinstance(pair, list) and len(pair) == 2]
        if isinstance(pairs, list)
        else []
    )
    if isinstance(pairs, dict):
        values = list(pairs.values())
    for value in values:
        kind = value.get("cirq_type") if isinstance(value, dict) else None
        if not isinstance(kind, str):  # not hashable when a list
            kind = None
        if not (_is_number(value) or kind == "sympy.Symbol" or kind in _SYMPY_NUMBERS):
            raise InvalidRequest(
                "CircuitOperation param_resolver values must be numbers or symbols, got "
                f"{excerpt(value)}; substitute expressions in the gates instead"
            )


def _number(node: Any) -> float | None:
    """Return the value of a numeric literal (JSON number or sympy number), else None."""
    if isinstance(node, int | float) and not isinstance(node, bool):
        return float(node) if isinstance(node, float) or abs(node) < 2**1000 else math.inf
    if not isinstance(node, dict):
        return None
    kind = node.get("cirq_type")
    try:
        if kind == "sympy.Integer":
            return _number(node.get("i"))
        if kind == "sympy.Float":
            return _number(node.get("approx"))
        if kind == "sympy.Rational":
            p, q = node.get("p"), node.get("q")
            if isinstance(p, int) and isinstance(q, int) and q:
                return abs(p) / abs(q) if abs(p) < 2**1000 and abs(q) < 2**1000 else math.inf
    except (OverflowError, ZeroDivisionError):
        return math.inf
    return None


def _check_expression(root: dict[str, Any]) -> int:
    """Bound one symbolic expression before sympy builds (and the node expands) it.

    Returns:
        An upper bound on its terms once expanded.

    Raises:
        InvalidRequest: An unsupported sympy type, too many nodes, a non-numeric or too large
            exponent, or too many terms once expanded.
    """
    nodes = 0

    def terms(node: Any, power: float, depth: int) -> int:
        """Upper bound on the terms of `node` expanded (saturating above the limit)."""
        nonlocal nodes
        nodes += 1
        if nodes > MAX_EXPRESSION_NODES or depth > MAX_JSON_DEPTH:
            raise InvalidRequest(
                f"a symbolic expression of the circuit has more than {MAX_EXPRESSION_NODES} nodes; "
                "simplify it (the node accepts affine angles like 2*a + 1 and small polynomials)"
            )
        if _number(node) is not None:
            return 1
        kind = node.get("cirq_type") if isinstance(node, dict) else None
        if not isinstance(kind, str):  # e.g. a list: no type name, and not hashable
            kind = None
        if kind == "sympy.Symbol" or kind in _SYMPY_CONSTANTS:
            return 1
        if kind not in _SYMPY_OPERATORS:
            raise InvalidRequest(
                f"unsupported symbolic expression {excerpt(kind or node)} in circuit.cirq_json; "
                "gate parameters may use "
                "symbols, numbers, pi, E, +, * and powers with numeric exponents"
            )
        args = node.get("args")
        if not isinstance(args, list) or not args:
            raise InvalidRequest(f"symbolic {kind} in circuit.cirq_json needs a non-empty list of args")
        if kind == "sympy.Pow":
            if len(args) != 2:
                raise InvalidRequest(
                    f"sympy.Pow in circuit.cirq_json needs two args (base, exponent), got {len(args)}"
                )
            exponent = _number(args[1])
            if exponent is None or math.isnan(exponent):
                raise InvalidRequest(
                    "a power in a symbolic expression of the circuit has a non-numeric exponent; "
                    "only numeric exponents are accepted"
                )
            scale = power * max(1.0, abs(exponent))
            if scale > MAX_EXPONENT:
                raise InvalidRequest(
                    "a power in a symbolic expression of the circuit has exponent "
                    f"{exponent:g} (times "
                    f"{power:g} from enclosing powers); the node accepts exponents up to {MAX_EXPONENT} in "
                    "absolute value"
                )
            terms(args[1], power, depth + 1)
            base = terms(args[0], scale, depth + 1)
            whole = float(exponent).is_integer()
            # Expanding (t_1 + ... + t_k)**n gives at most C(n + k - 1, k - 1) monomials.
            return _saturate(math.comb(int(abs(exponent)) + base - 1, base - 1)) if whole else base
        parts = [terms(arg, power, depth + 1) for arg in args]
        if kind == "sympy.Add":
            return _saturate(sum(parts))
        product = 1
        for part in parts:
            product = _saturate(product * part)
        return product

    total = terms(root, 1.0, 0)
    if total > MAX_EXPANDED_TERMS:
        raise InvalidRequest(
            f"a symbolic expression of the circuit expands to more than {MAX_EXPANDED_TERMS} terms; "
            "simplify it (e.g. fewer symbols inside powers)"
        )
    return total


def _saturate(value: int) -> int:
    return min(value, MAX_EXPANDED_TERMS + 1)


def check_size(text: str, max_bytes: int) -> None:
    """Refuse circuit JSON of more than `max_bytes` UTF-8 bytes (before it is even hashed).

    Raises:
        LimitExceeded: Naming the size and the bound.
    """
    # A character takes at least one byte: a long text is refused without encoding it.
    size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise LimitExceeded(
            f"circuit.cirq_json is {size} {'characters' if size == len(text) else 'bytes'}, over this node's "
            f"max_circuit_bytes={max_bytes}; send a smaller circuit"
        )


def scan_circuit_json(text: str, *, max_bytes: int, max_operations: int) -> CircuitShape:
    """Bound what `text` describes before Cirq builds it (see the module docstring).

    Args:
        text: The request's ``cirq_json``.
        max_bytes: The node's ``max_circuit_bytes``.
        max_operations: The node's ``max_circuit_operations`` (bounds moments too).

    Returns:
        Upper bounds on the circuit's operations, moments and qubits.

    Raises:
        LimitExceeded: Too large (bytes, operations, moments, a matrix gate's width).
        InvalidRequest: Not JSON, nested too deep, a non-finite number, an expression the
            node does not accept, an undefined reference.
    """
    check_size(text, max_bytes)

    def finite_only(constant: str) -> float:
        raise InvalidRequest(
            f"circuit.cirq_json contains the non-finite number {constant}; use finite numbers"
        )

    try:
        data = json.loads(text, parse_constant=finite_only)
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"circuit.cirq_json is not valid JSON (line {error.lineno} column {error.colno}); "
            "send cirq.to_json(circuit)"
        ) from None
    except RecursionError:
        raise InvalidRequest(
            f"circuit.cirq_json is nested too deeply (the node accepts {MAX_JSON_DEPTH} levels); "
            "flatten the circuit"
        ) from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise InvalidRequest(
            f"circuit.cirq_json is not acceptable JSON: {excerpt(str(error), 120)}"
        ) from None
    scan = _Scan(max_operations)
    count = scan.check(scan.visit(data, 0))
    return CircuitShape(
        operations=count.operations,
        moments=count.moments,
        qubits=len(scan.qubits),
        expression_terms=count.terms,
    )
