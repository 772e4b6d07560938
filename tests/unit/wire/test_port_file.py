"""The port-file handshake: a service writes its port whole, a launcher reads it or 0."""

from __future__ import annotations

import argparse
from pathlib import Path

from qpumesh.wire.port_file import PORT_FILE_OPTION, read_port_file, write_port_file
from qpumesh.wire.settings import add_arguments


def test_port_file_flag_defaults_to_none() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, [PORT_FILE_OPTION])
    assert parser.parse_args([]).port_file is None
    assert parser.parse_args(["--port-file", "p"]).port_file == Path("p")


def test_port_file_is_written_whole_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "port"
    path.write_text("stale")
    write_port_file(path, 50051)
    assert path.read_text(encoding="ascii") == "50051\n"
    assert [p.name for p in tmp_path.iterdir()] == ["port"]  # no temporary file left behind
    assert read_port_file(path) == 50051


def test_a_missing_or_partial_port_file_reads_as_zero(tmp_path: Path) -> None:
    assert read_port_file(tmp_path / "none") == 0
    (tmp_path / "partial").write_text("500")
    assert read_port_file(tmp_path / "partial") == 500
    (tmp_path / "junk").write_text("50x")
    assert read_port_file(tmp_path / "junk") == 0
