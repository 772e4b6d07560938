"""Compilation of parametrised Cirq circuits into engine-neutral op lists.

`compile_circuit` turns a `cirq.Circuit` into a `CompiledCircuit`: a flat list of operations
on qubit *indices* (qubit ``k`` is ``sorted(circuit.all_qubits())[k]``, the most significant bit
of a state index, as in Cirq), where

* every gate without free parameters becomes a `FixedOp` holding its unitary, and
* every gate with a symbolic exponent becomes a `RotationOp` ``exp(-i θ G / 2)`` (up to a
  global phase) with a Hermitian generator ``G`` satisfying ``G² = I``, whose angle ``θ`` is
  read from one *angle slot*.

A slot is an `AngleSlot`: normally an affine function ``θ = coeff * symbol + offset`` of one
sympy symbol, so that the parameter-shift rule ``∂f/∂θ = ½[f(θ+π/2) − f(θ−π/2)]`` holds exactly
for it and shifting one occurrence of a shared symbol is shifting one column of
`CompiledCircuit.angles`. Non-affine expressions (``s**2``, ``a*b``...) still compile -- the
angle is computed numerically -- but are flagged, and gradients with respect to their
symbols are refused instead of being silently wrong.

Which gates are rotations: any `cirq.EigenGate` whose symbolic exponent multiplies exactly two
distinct eigenvalues ``λ₀ < λ₁`` (X/Y/Z/H PowGates, Rx/Ry/Rz, CX/CZ/SWAP/XX/YY/ZZ PowGates...),
where ``U(t) ∝ exp(-i π (λ₁−λ₀) t (P₀−P₁) / 2)``; and `cirq.PhasedXPowGate` with a numeric phase
exponent. Up to global phase ``XPowGate(t) == rx(π t)``, so a slot's angle is ``π·(λ₁−λ₀)·t``.
Gates with three or more eigenvalues (ISWAP, FSim...) are accepted only with numeric
parameters.

The compiled circuit also carries a *canonical* Cirq circuit in which slot ``k`` is the same
gate with exponent ``_slot{k}`` scaled back to the original gate, so that Cirq-based engines
resolve the slot angles directly (`slot_resolvers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import cirq
import numpy as np
import sympy

from qpumesh.node.cancellation import checkpoint

__all__ = [
    "SUPPORTED_GATES",
    "AngleSlot",
    "CircuitError",
    "CompiledCircuit",
    "CompiledOp",
    "FixedOp",
    "RotationOp",
    "compile_circuit",
]


class CircuitError(ValueError):
    """A circuit cannot be compiled; the message says what to change."""


# Gate types the node accepts. Subclasses (cirq.Rx is an XPowGate, CNOT a CXPowGate...)
# are accepted through isinstance.
_GATE_TYPES: tuple[type, ...] = (
    cirq.XPowGate,
    cirq.YPowGate,
    cirq.ZPowGate,
    cirq.HPowGate,
    cirq.CXPowGate,
    cirq.CZPowGate,
    cirq.SwapPowGate,
    cirq.ISwapPowGate,
    cirq.XXPowGate,
    cirq.YYPowGate,
    cirq.ZZPowGate,
    cirq.CCXPowGate,
    cirq.CCZPowGate,
    cirq.PhasedXPowGate,
    cirq.PhasedXZGate,
    cirq.FSimGate,
    cirq.IdentityGate,
    cirq.MatrixGate,
)

#: Names reported by GetInfo: Cirq class names plus the usual aliases.
SUPPORTED_GATES: tuple[str, ...] = (
    *(t.__name__ for t in _GATE_TYPES),
    "Rx",
    "Ry",
    "Rz",
    "X",
    "Y",
    "Z",
    "H",
    "S",
    "T",
    "CNOT",
    "CX",
    "CZ",
    "SWAP",
    "ISWAP",
    "CCX",
    "CCZ",
    "I",
    "GlobalPhaseGate",
)

#: Largest gate (in qubits) accepted as a fixed unitary.
_MAX_GATE_QUBITS = 3


@dataclass(frozen=True)
class AngleSlot:
    """The angle of one parametrised gate occurrence.

    Attributes:
        symbols: Names of the sympy symbols the angle depends on (sorted).
        coeff: ``dθ/d symbol`` when `affine`, else 0.
        offset: ``θ`` at ``symbol = 0`` when `affine`, else 0.
        affine: True when ``θ = coeff * symbols[0] + offset`` exactly (one symbol).
        function: For non-affine slots, ``θ`` as a numpy function of `symbols` (positional).
        description: The original operation, for error messages.
    """

    symbols: tuple[str, ...]
    coeff: float
    offset: float
    affine: bool
    function: Callable[..., Any] | None
    description: str

    @property
    def symbol(self) -> str:
        """The slot's single symbol (affine slots) or its first symbol."""
        return self.symbols[0]


@dataclass(frozen=True)
class FixedOp:
    """A gate without free parameters.

    Attributes:
        targets: Qubit indices, in the gate's qubit order.
        matrix: Its unitary, ``2**k x 2**k`` (big-endian in `targets`).
    """

    targets: tuple[int, ...]
    matrix: np.ndarray


@dataclass(frozen=True)
class RotationOp:
    """``exp(-i θ G / 2) = cos(θ/2) I − i sin(θ/2) G`` with ``G² = I``, ``θ`` from a slot.

    Attributes:
        targets: Qubit indices, in the gate's qubit order.
        generator: Hermitian involution ``G``, ``2**k x 2**k``.
        slot: Index into `CompiledCircuit.slots`.
    """

    targets: tuple[int, ...]
    generator: np.ndarray
    slot: int


CompiledOp: TypeAlias = FixedOp | RotationOp


@dataclass(frozen=True, eq=False)
class CompiledCircuit:
    """A circuit ready for every engine. Immutable and shared between threads.

    Attributes:
        qubits: ``sorted(circuit.all_qubits())``; index ``k`` in ops is ``qubits[k]``.
        ops: Operations in time order.
        slots: Angle slots; `RotationOp.slot` indexes this.
        symbols: Sorted names of the circuit's free symbols.
        canonical: The circuit with slot ``k`` parametrised by the symbol ``_slot{k}`` taking
            the slot angle in radians.
        gate_names: Sorted names of the gate types used (for logs).
    """

    qubits: tuple[cirq.Qid, ...]
    ops: tuple[CompiledOp, ...]
    slots: tuple[AngleSlot, ...]
    symbols: tuple[str, ...]
    canonical: cirq.Circuit
    gate_names: tuple[str, ...]

    @property
    def n_qubits(self) -> int:
        """Number of qubits."""
        return len(self.qubits)

    @property
    def slot_symbols(self) -> tuple[str, ...]:
        """Names of the canonical circuit's slot symbols, ``_slot{k}``."""
        return tuple(_slot_name(k) for k in range(len(self.slots)))

    def slots_of(self, symbol: str) -> list[int]:
        """Return the indices of the slots whose angle depends on `symbol`."""
        return [k for k, slot in enumerate(self.slots) if symbol in slot.symbols]

    def angles(self, symbols: Sequence[str], values: np.ndarray) -> np.ndarray:
        """Map a parameter batch to slot angles.

        Args:
            symbols: Column names of `values`; must include every circuit symbol.
            values: ``(rows, len(symbols))`` float64.

        Returns:
            ``(rows, len(slots))`` float64 angles in radians.

        Raises:
            KeyError: A circuit symbol is not among `symbols` (callers validate first).
        """
        column = {name: j for j, name in enumerate(symbols)}
        rows = values.shape[0]
        out = np.empty((rows, len(self.slots)), dtype=np.float64)
        for k, slot in enumerate(self.slots):
            if slot.affine:
                out[:, k] = slot.coeff * values[:, column[slot.symbol]] + slot.offset
            else:
                assert slot.function is not None
                args = [values[:, column[s]] for s in slot.symbols]
                out[:, k] = np.broadcast_to(np.asarray(slot.function(*args), dtype=np.float64), (rows,))
        return out


def _slot_name(k: int) -> str:
    return f"_slot{k}"


def _describe(op: cirq.Operation) -> str:
    text = str(op)
    return text if len(text) <= 200 else text[:197] + "..."


def _describe_angle(op: cirq.Operation, theta: sympy.Expr) -> str:
    """Name a parametrised gate by its angle in radians: ``Ry on q(1) (angle a**2/pi rad)``.

    (Cirq's own ``str`` shows the exponent in half turns, ``Ry(a**2/pi**2π)``, which
    reads like a typo to anyone who did not write the circuit with Cirq.)
    """
    name = type(op.gate).__name__ if op.gate is not None else type(op).__name__
    text = f"{name} on {', '.join(map(str, op.qubits))} (angle {sympy.sstr(theta)} rad)"
    return text if len(text) <= 200 else text[:197] + "..."


def _rotation_form(gate: cirq.Gate) -> tuple[sympy.Expr, sympy.Expr, np.ndarray] | None:
    """``(exponent, scale, G)`` with ``U ∝ exp(-i scale·exponent·G/2)``, or None if not a rotation."""
    if isinstance(gate, cirq.PhasedXPowGate):
        if cirq.is_parameterized(gate.phase_exponent):
            return None
        g = cirq.unitary(cirq.PhasedXPowGate(phase_exponent=gate.phase_exponent, exponent=1.0))
        return sympy.sympify(gate.exponent), sympy.pi, np.asarray(g, dtype=np.complex128)
    if isinstance(gate, cirq.EigenGate):
        components: dict[float, np.ndarray] = {}
        for half_turns, projector in gate._eigen_components():
            key = round(float(half_turns), 12)
            components[key] = components.get(key, 0) + np.asarray(projector, dtype=np.complex128)
        if len(components) != 2:
            return None
        (lo, p_lo), (hi, p_hi) = sorted(components.items())
        scale = sympy.pi * sympy.nsimplify(hi - lo, tolerance=1e-12, rational=True)
        return sympy.sympify(gate.exponent), scale, p_lo - p_hi
    return None


def _slot_for(op: cirq.Operation, exponent: sympy.Expr, scale: sympy.Expr) -> AngleSlot:
    theta = sympy.expand(scale * exponent)
    free = sorted(theta.free_symbols, key=lambda s: s.name)
    names = tuple(s.name for s in free)
    if len(free) == 1:
        (s,) = free
        derivative = sympy.diff(theta, s)
        if not derivative.free_symbols:
            offset = theta.subs(s, 0)
            return AngleSlot(names, float(derivative), float(offset), True, None, _describe_angle(op, theta))
    function = sympy.lambdify(free, theta, modules="numpy")
    return AngleSlot(names, 0.0, 0.0, False, function, _describe_angle(op, theta))


def _canonical_gate(gate: cirq.Gate, scale: sympy.Expr, slot: int) -> cirq.Gate:
    """Return the gate with its exponent replaced so that ``_slot{k}`` is the angle in radians."""
    exponent = sympy.Symbol(_slot_name(slot)) / scale
    if isinstance(gate, cirq.PhasedXPowGate):
        return cirq.PhasedXPowGate(
            phase_exponent=gate.phase_exponent, exponent=exponent, global_shift=gate.global_shift
        )
    assert isinstance(gate, cirq.EigenGate)
    return gate._with_exponent(exponent)


def compile_circuit(circuit: cirq.AbstractCircuit, max_qubits: int) -> CompiledCircuit:
    """Compile a circuit for the node's engines.

    Args:
        circuit: A measurement-free circuit over the supported gate set.
        max_qubits: The node's qubit limit.

    Returns:
        The compiled circuit.

    Raises:
        CircuitError: Measurements, unsupported gates or symbolic forms, or too many qubits.
    """
    # Sub-circuits (cirq.CircuitOperation, e.g. from cirq.Circuit.freeze/repetitions) are inlined.
    circuit = cirq.unroll_circuit_op(circuit, deep=True, tags_to_check=None)
    qubits = tuple(sorted(circuit.all_qubits()))
    if len(qubits) > max_qubits:
        raise CircuitError(
            f"the circuit acts on {len(qubits)} qubits but this node simulates at most {max_qubits}"
        )
    if not qubits:
        raise CircuitError("the circuit has no operations on qubits")
    index = {q: k for k, q in enumerate(qubits)}
    ops: list[CompiledOp] = []
    slots: list[AngleSlot] = []
    canonical_ops: list[cirq.Operation] = []
    gate_names: set[str] = set()
    for tagged in circuit.all_operations():
        checkpoint()  # a caller that went away stops the compiling too (sympy: ms per gate)
        op = tagged.untagged
        if cirq.is_measurement(op):
            raise CircuitError(
                f"measurement {op!r}: remove measurements; the node measures the observables itself"
            )
        gate = op.gate
        if isinstance(gate, cirq.GlobalPhaseGate) and not cirq.is_parameterized(gate):
            continue
        if gate is None or not isinstance(gate, _GATE_TYPES) or not isinstance(op, cirq.GateOperation):
            raise CircuitError(
                f"unsupported operation {_describe(op)}; supported gates: {', '.join(SUPPORTED_GATES)}"
            )
        if any(q.dimension != 2 for q in op.qubits):
            raise CircuitError(f"operation {_describe(op)} acts on a non-qubit; only qubits are supported")
        if len(op.qubits) > _MAX_GATE_QUBITS:
            raise CircuitError(f"operation {_describe(op)} acts on more than {_MAX_GATE_QUBITS} qubits")
        gate_names.add(type(gate).__name__)
        targets = tuple(index[q] for q in op.qubits)
        if not cirq.is_parameterized(gate):
            ops.append(FixedOp(targets, np.asarray(cirq.unitary(gate), dtype=np.complex128)))
            canonical_ops.append(op)
            continue
        form = _rotation_form(gate)
        if form is None:
            names = sorted(p for p in cirq.parameter_names(gate))
            raise CircuitError(
                f"operation {_describe(op)} with symbol(s) {names}: a symbolic {type(gate).__name__} is "
                "not a single-generator rotation; give it a numeric exponent or use Rx/Ry/Rz, X/Y/Z/H, "
                "CZ/CX/SWAP or XX/YY/ZZ powers"
            )
        exponent, scale, generator = form
        k = len(slots)
        slots.append(_slot_for(op, exponent, scale))
        ops.append(RotationOp(targets, generator, k))
        canonical_ops.append(_canonical_gate(gate, scale, k).on(*op.qubits))
    symbols = tuple(sorted({s for slot in slots for s in slot.symbols}))
    return CompiledCircuit(
        qubits=qubits,
        ops=tuple(ops),
        slots=tuple(slots),
        symbols=symbols,
        canonical=cirq.Circuit(canonical_ops),
        gate_names=tuple(sorted(gate_names)),
    )
