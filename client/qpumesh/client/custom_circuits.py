"""``qpumesh train --ansatz-circuit``: a job's own ansatz, read from a file or built by user code.

The value is either a file holding Cirq JSON (one ``cirq.to_json(circuit)``, or
``{"circuits": [circuit, ...]}`` with one circuit per width), or a Python entry point
``MODULE:FUNCTION``. The function is called here, on the client, as ``FUNCTION(qubits,
layers)`` for every width ``qubits`` from 1 to the job's ``--qubits`` (the widths the
model's sub-circuits may have), and returns a ``cirq.Circuit`` or None for a width it does
not support; the circuits travel as JSON in the job spec. **The coordinator never imports
user code**: it only parses the JSON and checks the symbol convention (docs/model.md).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

from qpumesh.client.cli_support import UsageError

__all__ = ["load_ansatz_circuit"]

_ENTRY_POINT = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def load_ansatz_circuit(reference: str, qubits: int, layers: int, base: Path | None = None) -> str:
    """Return the ``ansatz_circuit`` JSON of a file or an entry point (see the module docstring).

    Args:
        reference: a path (relative to ``base``, default the working directory) or
            ``MODULE:FUNCTION``.
        qubits: the job's ``qubits``: the function is called for widths 1..qubits.
        layers: the job's ``layers``, passed to the function.
        base: directory of relative paths (a YAML spec's directory).

    Raises:
        UsageError: no such file, a module or function that cannot be loaded, a function
            that fails or returns something other than a circuit, or no circuit at all.
    """
    path = (base or Path.cwd()) / reference
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read the ansatz circuit {path}: {error.strerror or error}") from None
    if not _ENTRY_POINT.fullmatch(reference):
        raise UsageError(f"--ansatz-circuit {reference}: no such file, and not a MODULE:FUNCTION entry point")
    return _from_entry_point(reference, qubits, layers)


def _from_entry_point(reference: str, qubits: int, layers: int) -> str:
    import cirq

    module_name, _, function_name = reference.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a module next to the user, as `python -m` would find it
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--ansatz-circuit {reference}: cannot load it ({error})") from None
    documents = []
    for width in range(1, qubits + 1):
        try:
            circuit = function(width, layers)
        except Exception as error:
            raise UsageError(f"--ansatz-circuit {reference}({width}, {layers}) failed: {error!r}") from None
        if circuit is None:
            continue
        if not isinstance(circuit, cirq.AbstractCircuit):
            raise UsageError(
                f"--ansatz-circuit {reference}({width}, {layers}) returned a {type(circuit).__name__}, "
                "not a cirq.Circuit (or None for a width it does not support)"
            )
        documents.append(json.loads(cirq.to_json(circuit)))
    if not documents:
        raise UsageError(f"--ansatz-circuit {reference} returned no circuit for widths 1 to {qubits}")
    return json.dumps({"circuits": documents})
