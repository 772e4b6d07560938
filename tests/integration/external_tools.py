"""Tools from outside Python that some integration tests drive: chromium, prometheus, node.

``scripts/test_tools.sh`` installs them (Debian packages, the npm packages of
``examples/node``) and ``scripts/test.sh`` sets ``QPUMESH_REQUIRE_TOOLS=1``: there a
missing tool fails the test. A plain ``pytest`` elsewhere skips such tests, saying what
to install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("QPUMESH_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
"""Where tests keep what a person may want to look at (screenshots)."""


def require(path: str | Path, how: str) -> Path:
    """Return ``path`` if it exists; else skip (or fail under ``QPUMESH_REQUIRE_TOOLS=1``)."""
    found = Path(path) if Path(path).is_absolute() else shutil.which(str(path))
    if found is not None and Path(found).exists():
        return Path(found)
    message = f"{path} not found; {how} (scripts/test_tools.sh does it)"
    if os.environ.get("QPUMESH_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
