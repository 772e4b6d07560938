"""``python -m qpumesh.node [serve] ...``: the node's command line (see ``qpumesh.node.cli``)."""

from __future__ import annotations

import sys

from qpumesh.node.cli import main

if __name__ == "__main__":
    sys.exit(main())
