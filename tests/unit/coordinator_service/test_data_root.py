"""Server-side data files only under --data-root; errors never leak contents or existence (defect 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qpumesh.coordinator.data_root import DataFileError, read_data_file

SECRET = "QPUMESH_ADMIN_TOKEN=s3cr3t-value-from-environ"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "ok.csv").write_text("t,value\n0,1.5\n1,2.5\n2,3.5\n")
    (root / "sub" / "nested.csv").write_text("4\n5\n6\n")
    (tmp_path / "secret.csv").write_text(f"{SECRET}\n")
    return root


def test_relative_paths_under_the_root_are_read(root: Path) -> None:
    assert read_data_file(root, "ok.csv") == [1.5, 2.5, 3.5]
    assert read_data_file(root, "ok.csv", "t") == [0.0, 1.0, 2.0]
    assert read_data_file(root, "sub/nested.csv") == [4.0, 5.0, 6.0]
    assert read_data_file(root, "./sub//nested.csv") == [4.0, 5.0, 6.0]


def test_without_a_data_root_nothing_is_read(root: Path) -> None:
    with pytest.raises(DataFileError, match="reads no files"):
        read_data_file(None, "ok.csv")


@pytest.mark.parametrize(
    "name",
    ["/proc/self/environ", "/etc/passwd", "../secret.csv", "sub/../../secret.csv", "~/.bashrc", "a\x00b", ""],
)
def test_absolute_and_escaping_paths_are_refused_before_any_lookup(root: Path, name: str) -> None:
    with pytest.raises(DataFileError) as info:
        read_data_file(root, name)
    assert SECRET not in str(info.value) and "s3cr3t" not in str(info.value)


def test_links_out_of_the_root_are_answered_like_missing_files(root: Path, tmp_path: Path) -> None:
    (root / "environ.csv").symlink_to("/proc/self/environ")
    (root / "secret.csv").symlink_to(tmp_path / "secret.csv")
    (root / "nowhere.csv").symlink_to(tmp_path / "no-such-file")
    (root / "up").symlink_to(tmp_path)
    messages = set()
    for name in ("environ.csv", "secret.csv", "nowhere.csv", "up/secret.csv", "missing.csv", "sub"):
        with pytest.raises(DataFileError) as info:
            read_data_file(root, name)
        assert "s3cr3t" not in str(info.value)
        messages.add(str(info.value).replace(repr(name), "NAME"))
    # One answer for "outside the root", "missing" and "not a file": nothing reveals what exists.
    assert len(messages) == 1, messages


def test_a_link_inside_the_root_is_followed(root: Path) -> None:
    (root / "alias.csv").symlink_to(root / "sub" / "nested.csv")
    assert read_data_file(root, "alias.csv") == [4.0, 5.0, 6.0]


def test_parse_errors_name_lines_never_contents(root: Path) -> None:
    (root / "bad.csv").write_text(f"value\n1\n{SECRET}\n")
    with pytest.raises(DataFileError, match="data row 3: not a finite number") as info:
        read_data_file(root, "bad.csv")
    assert "s3cr3t" not in str(info.value)
    (root / "header.csv").write_text(f"{SECRET},other\n1,2\n")
    with pytest.raises(DataFileError, match="no column named 'price'") as info:
        read_data_file(root, "header.csv", "price")
    assert "s3cr3t" not in str(info.value)  # the header is not listed either
    (root / "latin1.csv").write_bytes(b"value\n\xe9\n")
    with pytest.raises(DataFileError, match="not UTF-8"):
        read_data_file(root, "latin1.csv")


def test_a_fifo_in_the_root_does_not_hang_the_coordinator(root: Path) -> None:
    os.mkfifo(root / "pipe.csv")
    with pytest.raises(DataFileError, match="no readable CSV file"):
        read_data_file(root, "pipe.csv")
