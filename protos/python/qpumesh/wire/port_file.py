"""The port-file handshake between a launcher and a service started on port 0.

``qpumesh node serve --port 0 --port-file F`` (likewise the coordinator) binds any free
port and, once serving, writes it to ``F`` as decimal digits and a newline, atomically,
so a launcher (the client's local mesh, a benchmark) polling ``read_port_file`` never
sees a partial number.
"""

from __future__ import annotations

import os
from pathlib import Path

from qpumesh.wire.settings import Option

PORT_FILE_OPTION = Option(
    "port_file",
    "QPUMESH_PORT_FILE",
    "--port-file",
    Path,
    "once serving, write the bound port to PATH (atomically); useful with --port 0",
    "PATH",
)
"""The setting that asks a service for a port file."""


def write_port_file(path: Path, port: int) -> None:
    """Write ``port`` to ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="ascii") as handle:
        handle.write(f"{port}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_port_file(path: Path) -> int:
    """Return the port in ``path``, or 0 while it is missing or incomplete."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return 0
    return int(text) if text.isdigit() else 0
