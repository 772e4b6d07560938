"""The dependency rule holds, and import-linter would catch a planted violation of it.

``lint-imports`` (run by scripts/test.sh) checks the contracts in pyproject.toml on the
installed tree. These tests show the contracts can fail: they copy the sources to a
temporary directory, plant one forbidden import at a time, and run ``lint-imports`` on
the copy (put first on ``PYTHONPATH``, so the copy is what gets analysed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE_ROOTS = ("protos/python", "services/qpu_node", "services/coordinator", "client")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tree / root) for root in SOURCE_ROOTS))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sources and of pyproject.toml (the contracts)."""
    copy = tmp_path_factory.mktemp("tree")
    for root in SOURCE_ROOTS:
        shutil.copytree(
            ROOT / root / "qpumesh", copy / root / "qpumesh", ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_contracts_hold_on_the_sources(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "reported"),
    [
        # The client reaching into the coordinator (what client/outputs.py used to do).
        ("client/qpumesh/client/outputs.py", "from qpumesh.coordinator import store",
         "qpumesh.client.outputs -> qpumesh.coordinator.store"),
        # The coordinator importing the node anywhere but its in-process executor.
        ("services/coordinator/qpumesh/coordinator/jobs.py", "import qpumesh.node.core",
         "qpumesh.coordinator.jobs -> qpumesh.node.core"),
        # The node using a client (what node/bench.py used to do).
        ("services/qpu_node/qpumesh/node/server.py", "from qpumesh.client import node_client",
         "qpumesh.node.server -> qpumesh.client.node_client"),
        # The shared contract depending on a service.
        ("protos/python/qpumesh/wire/records.py", "import qpumesh.coordinator.store",
         "qpumesh.wire.records -> qpumesh.coordinator.store"),
    ],
)  # fmt: skip
def test_a_planted_violation_breaks_a_contract(tree: Path, module: str, planted: str, reported: str) -> None:
    path = next(
        tree / root / module.removeprefix(root + "/") for root in SOURCE_ROOTS if module.startswith(root)
    )
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original + f"\n{planted}  # planted by the test\n", encoding="utf-8")
        result = _lint(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and reported in result.stdout
