"""A user's series from CSV text, read the same way on both sides (qpumesh.wire.series)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qpumesh.wire.series import (
    MAX_CSV_BYTES,
    MAX_SERIES_POINTS,
    SeriesError,
    parse_csv_series,
    read_csv_series,
)


def test_columns_by_name_index_or_the_last() -> None:
    text = "t,a,b\n0,1.5,10\n1,2.5,20\n\n2,3.5,30\n"
    assert parse_csv_series(text) == [10, 20, 30]
    assert parse_csv_series(text, "a") == [1.5, 2.5, 3.5]
    assert parse_csv_series(text, "0") == [0, 1, 2]
    assert parse_csv_series("1\n2\n3\n") == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "column", "quoted", "unquoted"),
    [
        ("", "", "holds no rows", "holds no rows"),
        (
            "a,b\n1,2\n3,oops\n",
            "",
            "data row 3: 'oops' is not a finite number",
            "data row 3: not a finite number",
        ),
        ("a,b\n1,2\n", "c", "no column named 'c' (columns: a, b)", "no column named 'c'"),
        ("a,b\n1\n", "", "data row 2: missing", "data row 2: missing"),
        ("value\n", "", "a header but no values", "a header but no values"),
        ("1\ninf\n", "", "data row 2: 'inf' is not a finite number", "data row 2: not a finite number"),
    ],
)
def test_errors_quote_cells_only_when_allowed(text: str, column: str, quoted: str, unquoted: str) -> None:
    with pytest.raises(SeriesError, match=re.escape(quoted)):
        parse_csv_series(text, column)
    with pytest.raises(SeriesError) as info:
        parse_csv_series(text, column, quote=False)
    assert unquoted in str(info.value)
    assert "oops" not in str(info.value) and "columns:" not in str(info.value)


def test_bounds_are_checked_before_parsing_values(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match=f"at most {MAX_SERIES_POINTS} values"):
        parse_csv_series("1\n" * (MAX_SERIES_POINTS + 1))
    big = tmp_path / "big.csv"
    big.write_bytes(b"1\n" * (MAX_CSV_BYTES // 2 + 1))
    with pytest.raises(SeriesError, match=f"at most {MAX_CSV_BYTES} are read"):
        read_csv_series(big)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"\xe9\n")
    with pytest.raises(SeriesError, match="not UTF-8"):
        read_csv_series(latin)
    with pytest.raises(SeriesError, match="cannot read"):
        read_csv_series(tmp_path / "missing.csv")
