"""Fixtures for every test directory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest

ModulesLoaded = Callable[[str, Sequence[str]], list[str]]


@pytest.fixture
def modules_loaded() -> ModulesLoaded:
    """Run ``code`` in a fresh interpreter; return the ``watched`` modules (or packages) it loaded.

    For the rule that building a command line loads nothing heavy (``--help`` stays fast) and,
    for the client, no service.
    """

    def run(code: str, watched: Sequence[str]) -> list[str]:
        report = (
            "\nimport json, sys\n"
            f"watched = {list(watched)!r}\n"
            "loaded = [m for m in sys.modules if any(m == w or m.startswith(w + '.') for w in watched)]\n"
            "print(json.dumps(sorted(loaded)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code + report], capture_output=True, text=True, check=True, timeout=120
        )
        loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
        return loaded

    return run
