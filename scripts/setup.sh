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
echo "qpumesh installed in .venv; activate it with: . .venv/bin/activate"
