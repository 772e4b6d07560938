"""The node's entry point: light to build, and `python -m qpumesh.node` defaults to serve."""

from __future__ import annotations

from typing import Any

import pytest

from qpumesh.node.cli import build_parser


def test_building_the_node_command_line_does_not_import_torch_or_cirq(modules_loaded: Any) -> None:
    # `--help` must stay fast: the heavy engines load only when the node runs.
    code = "from qpumesh.node import cli\ncli.build_parser()"
    assert modules_loaded(code, ["torch", "cirq", "qsimcirq"]) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "0"],
        ["serve", "--port", "0"],
        ["--log-level", "DEBUG", "serve", "--port", "0"],
        ["--port", "0", "serve"],
    ],
)
def test_serve_is_the_command_with_or_without_its_name(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == "serve" and args.port == 0


def test_serve_flags_parse_into_option_destinations() -> None:
    args = build_parser().parse_args(["serve", "--port", "0", "--backend", "qsim", "--port-file", "p"])
    assert (args.port, args.backend, str(args.port_file)) == (0, "qsim", "p")
    assert args.max_qubits is None  # unset flags stay None so the environment can apply


def test_other_commands_belong_to_the_client(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["info", "localhost:1"])
    assert "invalid choice: 'info'" in capsys.readouterr().err
