"""A user's series: one numeric column of a CSV file, read the same way by client and coordinator.

``qpumesh train --csv FILE`` and ``qpumesh predict --series-csv FILE`` read the file on
the client's machine and send the values (``JobSpec.series``, ``PredictRequest.series``);
a coordinator started with ``--data-root`` reads files under that root for jobs that
name one (``JobSpec.csv_path``). Both parse with ``parse_csv_series``, so a file means
the same wherever it is read. Errors raised for the client's own file quote the
offending cell; those for a file on the coordinator's machine (``quote=False``) never
quote its contents, only line numbers and column names the caller gave.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

MAX_SERIES_POINTS = 20_000
"""The most values a series may have (a job's or a prediction's), checked before any work."""
MAX_CSV_BYTES = 8 * 1024 * 1024
"""Larger CSV files are refused before they are read."""


class SeriesError(ValueError):
    """A series cannot be read; the message says what to fix."""


def read_csv_series(path: str | Path, column: str = "", *, quote: bool = True) -> list[float]:
    """Read one numeric column of a CSV file (see ``parse_csv_series``).

    Args:
        path: the file.
        column: a header name or a 0-based index; "" = the last column.
        quote: whether errors may quote the file's cells and header.

    Raises:
        SeriesError: the file cannot be read, is too large or not UTF-8, or
            ``parse_csv_series`` refuses it.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_CSV_BYTES:
            raise SeriesError(f"the CSV file has {size} bytes; at most {MAX_CSV_BYTES} are read")
        data = file.read_bytes()
    except OSError as error:
        raise SeriesError(f"cannot read {file}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeriesError("the CSV file is not UTF-8 text") from None
    return parse_csv_series(text, column, quote=quote)


def parse_csv_series(text: str, column: str = "", *, quote: bool = True) -> list[float]:
    """Return one column of CSV ``text`` as floats.

    The first row is a header when the chosen column's cell in it is not a number.
    Blank rows are skipped. At most ``MAX_SERIES_POINTS`` values.

    Args:
        text: the CSV text.
        column: a header name or a 0-based index; "" = the last column.
        quote: whether errors may quote cells and header names.

    Raises:
        SeriesError: no rows, an unknown column, a cell that is not a finite number
            (named by its line), or too many values.
    """
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise SeriesError(f"not a CSV file ({error})" if quote else "not a CSV file") from None
    if not rows:
        raise SeriesError("the CSV file holds no rows")
    first = [cell.strip() for cell in rows[0]]
    if column and column in first:
        index, has_header = first.index(column), True
    elif column and column.lstrip("-").isdigit():
        index = int(column)
        if not -len(first) <= index < len(first):
            raise SeriesError(f"no column {index}: the first row has {len(first)} column(s)")
        has_header = not _is_number(first[index])
    elif column:
        columns = f" (columns: {', '.join(first)})" if quote else ""
        raise SeriesError(f"no column named {column!r}{columns}")
    else:
        index = len(first) - 1
        has_header = not _is_number(first[index])
    body = rows[1:] if has_header else rows
    if len(body) > MAX_SERIES_POINTS:
        raise SeriesError(f"{len(body)} rows; a series has at most {MAX_SERIES_POINTS} values")
    values: list[float] = []
    for line, row in enumerate(body, start=2 if has_header else 1):
        cell = row[index].strip() if -len(row) <= index < len(row) else None
        if cell is None or not _is_number(cell):
            if cell is None:
                what = "missing"
            else:
                what = f"{cell[:40]!r} is not a finite number" if quote else "not a finite number"
            raise SeriesError(f"data row {line}: {what}")
        values.append(float(cell))
    if not values:
        raise SeriesError("the CSV file holds a header but no values")
    return values


def check_series(values: list[float], what: str = "series") -> list[float]:
    """Return ``values`` if they form a usable series: at most ``MAX_SERIES_POINTS``, all finite.

    Raises:
        SeriesError: naming ``what`` and the bound.
    """
    if len(values) > MAX_SERIES_POINTS:
        raise SeriesError(f"{what}: {len(values)} values; at most {MAX_SERIES_POINTS}")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise SeriesError(f"{what}: value {bad} is not finite")
    return values


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
