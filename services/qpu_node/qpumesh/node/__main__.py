"""``python -m qpumesh.node [serve|info|bench] ...``: the node's command line on its own."""

from __future__ import annotations

import sys

from qpumesh.node.cli import main

if __name__ == "__main__":
    sys.exit(main())
