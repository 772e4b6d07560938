"""Server-side data files: CSV files under ``--data-root``, and nowhere else.

Clients normally send their series with the job (``qpumesh train --csv FILE`` reads the
file on the client's machine). A coordinator started with ``--data-root DIR``
(``QPUMESH_DATA_ROOT``) also accepts jobs naming a CSV file by a path *relative to DIR*
(``JobSpec.csv_path``); without a data root no job can make it read a file.

``read_data_file(root, name, column)`` is the only place that opens such a file:

- the name is checked as text first: no absolute path, no ``..`` part, no NUL byte, at
  most ``MAX_PATH_CHARS``; nothing is looked up for a name that fails;
- the path is resolved with every symbolic link followed, and must still lie inside the
  resolved root; the file is opened without following a final link (``O_NOFOLLOW``),
  and the opened descriptor's real path is checked again (a link swapped in between
  cannot lead out), and must be a regular file of at most ``MAX_CSV_BYTES``;
- every failure to find or open it (missing, outside the root, a directory, a device,
  unreadable) is the same ``DataFileError`` message, so the answers say nothing about
  which paths exist outside the root; parse errors name line numbers and never quote
  the file's contents.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from qpumesh.wire.job_spec import MAX_PATH_CHARS
from qpumesh.wire.series import MAX_CSV_BYTES, SeriesError, parse_csv_series


class DataFileError(ValueError):
    """A data file cannot be used; the message never reveals the file system beyond the root."""


def _not_found(name: str) -> DataFileError:
    return DataFileError(f"no readable CSV file {name[:200]!r} under the coordinator's data root")


def resolve_data_file(root: Path | None, name: str) -> Path:
    """Return the real path of ``name`` under ``root``.

    Raises:
        DataFileError: no data root, a name that is not a plain relative path, or no
            regular file by that name inside the root (one message for all of these).
    """
    if root is None:
        raise DataFileError(
            "this coordinator reads no files (it has no --data-root); send the series with the job "
            "instead (qpumesh train --csv FILE reads it on your machine)"
        )
    if not name or len(name) > MAX_PATH_CHARS or "\x00" in name or "\\" in name:
        raise DataFileError(f"must be a relative path of 1 to {MAX_PATH_CHARS} characters in the data root")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or name.startswith("~"):
        raise DataFileError("must be a path relative to the data root, without '..' (no absolute paths)")
    try:
        real_root = root.resolve(strict=True)
        candidate = (real_root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a link loop, unreadable directories
        raise _not_found(name) from None
    if not candidate.is_relative_to(real_root) or candidate == real_root:
        raise _not_found(name)
    return candidate


def read_data_file(root: Path | None, name: str, column: str = "") -> list[float]:
    """Read one column of the CSV file ``name`` under ``root`` (see the module docstring).

    Raises:
        DataFileError: the file cannot be used; the message never quotes its contents.
    """
    path = resolve_data_file(root, name)
    assert root is not None
    real_root = root.resolve()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise _not_found(name) from None
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}")) if Path("/proc/self/fd").is_dir() else path
        info = os.fstat(fd)
        if not opened.is_relative_to(real_root) or not stat.S_ISREG(info.st_mode):
            raise _not_found(name)
        if info.st_size > MAX_CSV_BYTES:
            raise DataFileError(f"{name[:200]!r} has {info.st_size} bytes; at most {MAX_CSV_BYTES} are read")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_CSV_BYTES + 1)
    except OSError:
        raise _not_found(name) from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataFileError(f"{name[:200]!r} is not UTF-8 text") from None
    try:
        return parse_csv_series(text, column, quote=False)
    except SeriesError as error:
        raise DataFileError(f"{name[:200]!r}: {error}") from None
