"""``python -m qpumesh.coordinator [serve|plan] ...``: see ``qpumesh.coordinator.cli``."""

from __future__ import annotations

import sys

from qpumesh.coordinator.cli import main

if __name__ == "__main__":
    sys.exit(main())
