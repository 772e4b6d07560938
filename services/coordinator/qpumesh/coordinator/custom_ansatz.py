"""The user's own ansatz: Cirq circuits brought by a job, checked and turned into sub-circuits.

A job with ``ansatz = "custom"`` carries ``ansatz_circuit``: the Cirq JSON
(``cirq.to_json``) of one circuit, or of ``{"circuits": [circuit, ...]}`` with at most one
circuit per width. Each sub-circuit of the model on ``q`` qubits uses the circuit acting on
exactly ``cirq.LineQubit.range(q)``; it reads the ``q`` entries ``v_i`` of its part of
``[h_{t-1}; x_t]`` and returns ``<Z>`` of its first ``d_out`` qubits, like the built-in
ansatzes. Its free symbols follow one convention (`SYMBOL_CONVENTION`):

- inputs: ``x_i`` (the angle is ``v_i``), ``atan_x_i`` (``arctan v_i``) and ``atan_x2_i``
  (``arctan v_i^2``), for qubit ``i < q``; the non-linear encodings are computed in torch,
  so gradients reach ``h_{t-1}`` through them;
- weights: ``w_0, w_1, ..., w_{W-1}``, every one used, trained from ``0.01 N(0, 1)``.

Every parametrised gate's angle must be affine in one symbol (``c * s + d``), so the
nodes can differentiate it by the parameter-shift rule. Anything else -- other symbol
names, a gap in the weights, measurements, more than `MAX_CUSTOM_QUBITS` qubits, or a
non-affine angle -- is refused as a ``SpecError`` naming ``ansatz_circuit`` (INVALID_ARGUMENT
at submission). The coordinator only parses JSON: it never imports user code (a Python
entry point runs on the client, which sends the JSON it returns).

`export_circuits` writes a built-in ansatz in this convention (``qpumesh ansatz export``
is not needed: the function is the one place that knows both naming schemes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import cirq
import sympy

from qpumesh.coordinator.ansatz import CUSTOM_INPUT_KINDS, Ansatz, build_ansatz
from qpumesh.wire.circuits import WireCircuit, pauli_terms
from qpumesh.wire.job_spec import SpecError

__all__ = ["MAX_CUSTOM_QUBITS", "SYMBOL_CONVENTION", "custom_ansatz", "export_circuits", "parse_circuits"]

MAX_CUSTOM_QUBITS = 30
"""Widest custom circuit accepted (the widest ``qubits`` a job may ask for)."""

SYMBOL_CONVENTION = "inputs x_i, atan_x_i, atan_x2_i (qubit i); weights w_0, w_1, ..."
"""The symbol names a custom circuit may use, for error messages."""

_SYMBOL = re.compile(r"(x|atan_x|atan_x2|w)_(0|[1-9][0-9]*)")
_FIELD = "ansatz_circuit"


def parse_circuits(text: str) -> dict[int, cirq.Circuit]:
    """Parse and check a job's ``ansatz_circuit``; return its circuits by width.

    Raises:
        SpecError: naming ``ansatz_circuit`` and saying what to fix.
    """
    try:
        data = json.loads(text)
    except ValueError as error:
        raise SpecError(_FIELD, f"is not JSON ({error})") from None
    documents = data["circuits"] if isinstance(data, dict) and set(data) == {"circuits"} else [data]
    if not isinstance(documents, list) or not documents:
        raise SpecError(_FIELD, '"circuits" must be a non-empty list of Cirq circuits')
    circuits: dict[int, cirq.Circuit] = {}
    for k, document in enumerate(documents):
        circuit = _circuit(document, k)
        width = len(circuit.all_qubits())
        if width in circuits:
            raise SpecError(_FIELD, f"circuit {k} is the second one on {width} qubits; give one per width")
        circuits[width] = circuit
    return circuits


def _circuit(document: Any, k: int) -> cirq.Circuit:
    try:
        circuit = cirq.read_json(json_text=json.dumps(document))
    except Exception as error:  # Cirq raises many types for JSON it cannot read
        raise SpecError(
            _FIELD, f"circuit {k} is not a Cirq circuit ({error}); send cirq.to_json(circuit)"
        ) from None
    if not isinstance(circuit, cirq.AbstractCircuit):
        raise SpecError(_FIELD, f"circuit {k} must be a Cirq circuit, got a {type(circuit).__name__}")
    circuit = cirq.Circuit(cirq.unroll_circuit_op(circuit, deep=True, tags_to_check=None))
    qubits = sorted(circuit.all_qubits())
    if not 1 <= len(qubits) <= MAX_CUSTOM_QUBITS:
        raise SpecError(_FIELD, f"circuit {k} acts on {len(qubits)} qubits; use 1 to {MAX_CUSTOM_QUBITS}")
    if qubits != cirq.LineQubit.range(len(qubits)):
        raise SpecError(
            _FIELD,
            f"circuit {k} must act on cirq.LineQubit(0) ... LineQubit({len(qubits) - 1}), got {qubits}",
        )
    if circuit.has_measurements():
        raise SpecError(
            _FIELD, f"circuit {k} has measurements; the nodes measure <Z> themselves, remove them"
        )
    _check_symbols(circuit, k, len(qubits))
    return circuit


def _check_symbols(circuit: cirq.Circuit, k: int, width: int) -> None:
    weights: set[int] = set()
    for op in circuit.all_operations():
        for name in sorted(cirq.parameter_names(op)):
            match = _SYMBOL.fullmatch(name)
            if match is None:
                raise SpecError(
                    _FIELD, f"circuit {k}: unknown symbol {name!r} in {op}; use {SYMBOL_CONVENTION}"
                )
            kind, index = match.group(1), int(match.group(2))
            if kind == "w":
                weights.add(index)
            elif index >= width:
                raise SpecError(
                    _FIELD, f"circuit {k}: symbol {name!r} names qubit {index} of a {width}-qubit circuit"
                )
        if cirq.is_parameterized(op):
            _check_affine(op, k)
    missing = sorted(set(range(len(weights))) - weights)
    if missing:
        raise SpecError(
            _FIELD, f"circuit {k}: weights must be w_0 ... w_{len(weights) - 1}, all used; missing {missing}"
        )


def _check_affine(op: cirq.Operation, k: int) -> None:
    """Refuse a parametrised gate whose angle is not ``c * s + d`` in one symbol."""
    gate = op.gate
    exponent = getattr(gate, "exponent", None) if isinstance(gate, cirq.EigenGate) else None
    if not isinstance(exponent, sympy.Basic):
        raise SpecError(
            _FIELD,
            f"circuit {k}: {op} is parametrised but not a rotation (Rx/Ry/Rz, X/Y/Z/H, CX/CZ... powers)",
        )
    symbols = exponent.free_symbols
    affine = len(symbols) == 1 and not sympy.diff(exponent, next(iter(symbols))).free_symbols
    if not affine:
        raise SpecError(
            _FIELD,
            f"circuit {k}: the angle of {op} is not affine in one symbol (c * s + d) as the shift rule needs",
        )


def custom_ansatz(circuits: Mapping[int, cirq.Circuit], qubits: int, outputs: int) -> Ansatz:
    """Return the sub-circuit on ``qubits`` qubits from a job's circuits (see the module docstring).

    Raises:
        SpecError: no circuit of that width (the widths given and needed are named).
    """
    circuit = circuits.get(qubits)
    if circuit is None:
        raise SpecError(
            _FIELD,
            f"the model has a {qubits}-qubit sub-circuit, but the circuits given act on {sorted(circuits)} "
            "qubits; add one of that width (a Python entry point is called for every width)",
        )
    names = {name for op in circuit.all_operations() for name in cirq.parameter_names(op)}
    inputs = tuple(
        f"{kind}_{i}" for kind in CUSTOM_INPUT_KINDS for i in range(qubits) if f"{kind}_{i}" in names
    )
    weights = tuple(f"w_{j}" for j in range(sum(1 for name in names if name.startswith("w_"))))
    wires = cirq.LineQubit.range(qubits)
    return Ansatz(
        name="custom",
        qubits=qubits,
        layers=0,
        outputs=outputs,
        circuit=WireCircuit.from_cirq(circuit),
        observables=tuple(pauli_terms(cirq.Z(wires[i]), wires) for i in range(outputs)),
        input_symbols=inputs,
        weight_symbols=weights,
    )


def export_circuits(name: str, widths: Iterable[int], layers: int) -> str:
    """Return a built-in ansatz as a custom ``ansatz_circuit``: its circuits for ``widths``, renamed.

    The result trains exactly like the built-in ansatz (same gates, weights in the same order).
    """
    renames = {"v0": {"x": "x"}, "chen2020": {"a": "atan_x", "b": "atan_x2"}}[name]
    documents = []
    for width in widths:
        built = build_ansatz(name, width, layers, 1)
        circuit = cirq.read_json(json_text=built.circuit.cirq_json)
        mapping: dict[str, str] = {}
        for symbol in built.input_symbols:
            prefix, index = re.fullmatch(r"([a-z]+)(\d+)", symbol).groups()  # type: ignore[union-attr]
            mapping[symbol] = f"{renames[prefix]}_{index}"
        mapping.update({symbol: f"w_{j}" for j, symbol in enumerate(built.weight_symbols)})
        resolver = cirq.ParamResolver({old: sympy.Symbol(new) for old, new in mapping.items()})
        documents.append(json.loads(cirq.to_json(cirq.resolve_parameters(circuit, resolver))))
    return json.dumps({"circuits": documents})
