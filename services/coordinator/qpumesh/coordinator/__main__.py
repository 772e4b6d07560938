"""``python -m qpumesh.coordinator [serve] ...``: the coordinator's command line on its own."""

from __future__ import annotations

import sys

from qpumesh.coordinator.cli import main

if __name__ == "__main__":
    sys.exit(main())
