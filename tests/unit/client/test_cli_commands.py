"""The `qpumesh` command line: every command is there, and service commands go to their services."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from qpumesh.client import cli


def _commands(parser: object) -> dict[str, object]:
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # type: ignore[attr-defined]
    return dict(action.choices)


def test_every_command_is_registered() -> None:
    top = _commands(cli.build_parser())
    assert set(top) == {
        "train", "jobs", "watch", "results", "predict", "cancel", "delete", "nodes", "fault", "plan", "mesh",
        "node", "coordinator", "certs",
    }  # fmt: skip
    assert set(_commands(top["certs"])) == {"init"}
    assert set(_commands(top["node"])) == {"serve", "info", "bench"}
    assert set(_commands(top["coordinator"])) == {"serve"}
    assert set(_commands(top["mesh"])) == {"up"}


def test_building_the_command_line_imports_no_service_and_nothing_heavy(modules_loaded: Any) -> None:
    # `qpumesh --help` must stay fast, and a client-only install must be able to build it.
    code = "from qpumesh.client import cli\ncli.build_parser()"
    assert modules_loaded(code, ["qpumesh.node", "qpumesh.coordinator", "torch", "cirq"]) == []


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["node", "serve", "--port", "0", "--backend", "qsim"],
         ["qpumesh.node", "--log-level", "INFO", "serve", "--port", "0", "--backend", "qsim"]),
        (["--log-level", "DEBUG", "coordinator", "serve", "--in-process", "--help"],
         ["qpumesh.coordinator", "--log-level", "DEBUG", "serve", "--in-process", "--help"]),
    ],
)  # fmt: skip
def test_servers_replace_the_cli_process(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], command: list[str]
) -> None:
    execs: list[list[str]] = []

    def execv(path: str, args: list[str]) -> None:
        execs.append(args)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert execs == [[sys.executable, "-m", *command]]


def test_plan_runs_in_the_coordinator_and_returns_its_status(capfd: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "--qubits", "4", "--partitions", "2", "--node-qubits", "4,4"]) == 0
    assert "M = 2 partition(s), 8 sub-circuits" in capfd.readouterr().out
    assert cli.main(["plan", "--qubits", "4", "--partitions", "1", "--node-qubits", "3,2"]) == 2
    assert "use --partitions >= 2" in capfd.readouterr().err


def test_unknown_arguments_of_a_client_command_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["jobs", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
