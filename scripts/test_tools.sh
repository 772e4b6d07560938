#!/usr/bin/env bash
# Install what the observability and foreign-client tests drive, each step skipped when done:
#   Debian: chromium (the dashboard's browser test), prometheus (the scrape test), nodejs/npm;
#   npm: examples/node's @grpc/grpc-js and @grpc/proto-loader (npm ci, from package-lock.json).
# Needs root for apt-get (CI and the dev machines run as root). scripts/test.sh calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test tools: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d examples/node/node_modules/@grpc/grpc-js ] || [ examples/node/package-lock.json -nt examples/node/node_modules ]; then
  echo "test tools: npm ci in examples/node"
  npm ci --prefix examples/node --no-audit --no-fund --loglevel=error
fi
