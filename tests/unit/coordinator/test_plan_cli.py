"""``python -m qpumesh.coordinator plan`` prints the planner's table or a clear refusal."""

from __future__ import annotations

import pytest

from qpumesh.coordinator.cli import main, with_default_command


def test_plan_prints_partitions_and_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--qubits", "4", "--partitions", "2", "--node-qubits", "4,4,6"]) == 0
    out = capsys.readouterr().out
    assert "M = 2 partition(s), 8 sub-circuits" in out
    assert out.count("part/") == 2 and "max qubits" in out


def test_plan_auto(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--qubits", "6", "--partitions", "auto", "--node-qubits", "3,3"]) == 0
    assert "M = 2 partition(s)" in capsys.readouterr().out


def test_plan_impossible(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--qubits", "4", "--partitions", "1", "--node-qubits", "3,2"]) == 2
    assert "use --partitions >= 2" in capsys.readouterr().err


def test_plan_bad_flags() -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--qubits", "4", "--node-qubits", "4,x"])
    with pytest.raises(SystemExit):
        main(["plan", "--qubits", "4", "--partitions", "0"])


def test_serve_is_the_default_command_after_the_global_options() -> None:
    assert with_default_command([]) == ["serve"]
    assert with_default_command(["--port", "0"]) == ["serve", "--port", "0"]
    assert with_default_command(["--log-level", "DEBUG", "-x"]) == ["--log-level", "DEBUG", "serve", "-x"]
    assert with_default_command(["--log-level=DEBUG"]) == ["--log-level=DEBUG", "serve"]
    assert with_default_command(["plan", "--qubits", "4"]) == ["plan", "--qubits", "4"]
    assert with_default_command(["--help"]) == ["--help"]
