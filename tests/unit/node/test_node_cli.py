"""The node's command line: light to build, and `python -m qpumesh.node` defaults to serve."""

from __future__ import annotations

import subprocess
import sys

from qpumesh.node.cli import _with_default_command, build_parser


def test_building_the_node_commands_does_not_import_torch_or_cirq() -> None:
    # `qpumesh --help` must stay fast: the heavy engines load only when a command runs.
    code = (
        "import argparse, sys\n"
        "from qpumesh.node import cli\n"
        "cli.register(argparse.ArgumentParser().add_subparsers())\n"
        "print(sorted(m for m in ('torch', 'cirq', 'qsimcirq') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_no_subcommand_means_serve_after_the_global_options() -> None:
    assert _with_default_command([]) == ["serve"]
    assert _with_default_command(["--port", "0"]) == ["serve", "--port", "0"]
    assert _with_default_command(["--log-level", "DEBUG", "--port", "0"]) == [
        "--log-level",
        "DEBUG",
        "serve",
        "--port",
        "0",
    ]
    assert _with_default_command(["info", "localhost:1"]) == ["info", "localhost:1"]


def test_serve_flags_parse_into_option_destinations() -> None:
    args = build_parser().parse_args(["serve", "--port", "0", "--backend", "qsim", "--port-file", "p"])
    assert (args.port, args.backend, str(args.port_file)) == (0, "qsim", "p")
    assert args.max_qubits is None  # unset flags stay None so the environment can apply
