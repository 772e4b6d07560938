#!/usr/bin/env bash
# Create .venv and install qpumesh with its dev tools. torch goes first, as the local
# CPU build (torch==2.13.0), so that nothing later pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e '.[dev]'
# Compile the node's numba kernels once into their on-disk cache (numba's __pycache__ beside
# the sources): a node compiles them at start otherwise, tens of CPU seconds per process,
# minutes when a local mesh starts several nodes at once on a busy machine.
.venv/bin/python -c "from qpumesh.node.backends.compiled import warm_up; warm_up()"
echo "qpumesh installed in .venv; activate it with: . .venv/bin/activate"
