"""``qpumesh train --ansatz-circuit FILE|MODULE:FUNCTION``: the client turns it into JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from qpumesh.client.cli_support import UsageError
from qpumesh.client.spec_flags import add_spec_flags, build_spec

MODULE = '''
import cirq, sympy

def ansatz(qubits, layers):
    if qubits > 2:
        return None
    wires = cirq.LineQubit.range(qubits)
    circuit = cirq.Circuit(cirq.ry(sympy.Symbol(f"atan_x_{i}")).on(w) for i, w in enumerate(wires))
    for layer in range(layers):
        circuit.append(cirq.rx(sympy.Symbol(f"w_{layer * qubits + i}")).on(w) for i, w in enumerate(wires))
    return circuit

def broken(qubits, layers):
    return "not a circuit"
'''


def _spec(*argv: str):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_spec_flags(parser)
    return build_spec(parser.parse_args(list(argv)))


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_ansatz.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_ansatz", raising=False)
    return "my_ansatz"


def test_an_entry_point_is_called_on_the_client_for_every_width(user_module: str) -> None:
    spec = _spec("--ansatz-circuit", f"{user_module}:ansatz", "--qubits", "4", "--layers", "2")
    assert spec.ansatz == "custom"
    circuits = json.loads(spec.ansatz_circuit)["circuits"]
    assert len(circuits) == 2  # widths 1 and 2; None for the others
    assert "w_3" in spec.ansatz_circuit and "atan_x_1" in spec.ansatz_circuit


def test_a_file_is_sent_as_it_is(tmp_path: Path, user_module: str) -> None:
    text = '{"circuits": []}'
    (tmp_path / "c.json").write_text(text)
    assert _spec("--ansatz-circuit", "c.json").ansatz_circuit == text


def test_bad_references_are_usage_errors(user_module: str) -> None:
    with pytest.raises(UsageError, match="no such file, and not a MODULE:FUNCTION"):
        _spec("--ansatz-circuit", "missing.json")
    with pytest.raises(UsageError, match="cannot load it"):
        _spec("--ansatz-circuit", f"{user_module}:nothing")
    with pytest.raises(UsageError, match=r"returned a str, not a cirq.Circuit"):
        _spec("--ansatz-circuit", f"{user_module}:broken")
