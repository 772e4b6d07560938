#!/usr/bin/env bash
# The project's test command: generated-code staleness, lint, types, import contracts, then pytest.
#   bash scripts/test.sh          unit + integration tests (no Docker needed)
#   bash scripts/test.sh --e2e    also the end-to-end test on a real Docker engine
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run 'bash scripts/setup.sh' first" >&2; exit 2; }
"$PY" scripts/gen_protos.py --check
"$PY" -m ruff check .
"$PY" -m mypy
"$(dirname "$PY")/lint-imports" --no-cache --no-logo
# chromium, prometheus, node + npm packages for the dashboard, scrape and Node.js client tests;
# with them installed, a missing tool is a failure rather than a skip.
bash scripts/test_tools.sh
export QPUMESH_REQUIRE_TOOLS=1
if [ "${1:-}" = "--e2e" ]; then
  "$PY" -m pytest -m "not e2e"
  bash tests/e2e/run_e2e.sh
else
  "$PY" -m pytest -m "not e2e"
fi
