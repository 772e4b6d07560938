"""The node's entry point: light to build, and `python -m qpumesh.node` defaults to serve."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qpumesh.node.cli import build_parser


def test_building_the_node_command_line_does_not_import_torch_or_cirq() -> None:
    # `--help` must stay fast: the heavy engines load only when the node runs.
    code = (
        "import sys\n"
        "from qpumesh.node import cli\n"
        "cli.build_parser()\n"
        "print(sorted(m for m in ('torch', 'cirq', 'qsimcirq') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


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
