"""docs/client.md's ``qpumesh train`` table is checked against ``JobSpec``, field by field.

The table is what a user (and a client in another language) reads for the defaults the
coordinator trains with when a field is left unset; it must not drift from
``qpumesh.wire.job_spec``, where the defaults live.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from qpumesh.wire.job_spec import FIELDS, JobSpec, flag_of

DOC = Path(__file__).resolve().parents[3] / "docs" / "client.md"
ROW = re.compile(r"^\| `(?P<flag>--[a-z-]+)[^`]*` \| `(?P<field>[a-z_]+)` \| (?P<meaning>.*) \|$")
DEFAULT = re.compile(r"\((?P<default>[^()]*)\)$")


def _rows() -> dict[str, tuple[str, str]]:
    section = DOC.read_text(encoding="utf-8").split("## `qpumesh train`", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if match := ROW.match(line.strip()):
            rows[match["field"]] = (match["flag"], match["meaning"].strip())
    return rows


def test_every_jobspec_field_has_a_row_with_its_flag() -> None:
    rows = _rows()
    assert sorted(rows) == sorted(FIELDS)
    for spec_field in dataclasses.fields(JobSpec):
        if spec_field.name in rows:
            assert rows[spec_field.name][0] == flag_of(spec_field), spec_field.name


def test_the_documented_defaults_are_the_jobspecs() -> None:
    defaults = JobSpec()
    for name, (_, meaning) in _rows().items():
        value = getattr(defaults, name)
        if value == "":
            continue  # "label shown ...", "(the last one)": no value to compare
        match = DEFAULT.search(meaning)
        assert match is not None, f"{name}: no '(default)' at the end of {meaning!r}"
        documented = match["default"].strip("`")
        assert documented == str(value), f"{name}: documented {documented}, JobSpec {value}"
