#!/usr/bin/env bash
# Build both qpumesh images (Dockerfile targets node and coordinator) with BuildKit.
#
#   bash scripts/build_images.sh [--offline] [TAG]      -> qpumesh-node:TAG, qpumesh-coordinator:TAG
#
# TAG defaults to $QPUMESH_TAG, else latest (what docker-compose.yml and the Swarm stack
# run). Without --offline the images come from python:3.11-slim and the package index,
# like `docker build` on any machine with network access.
#
# --offline: for machines whose containers reach no registry and no package index (this
# project's dev and CI machines, docs/docker.md): wheels are built on the host into
# build/wheelhouse (torch 2.13.0 CPU + qpumesh's dependencies, pinned to the versions of
# the venv of $PY so that host client and containers speak the same gRPC/protobuf), and
# the base image is $QPUMESH_BASE_IMAGE (default qpumesh-base:bookworm, made by
# `tests/e2e/docker_engine.sh start`).
#
# Environment: PY (default .venv/bin/python), QPUMESH_TAG, QPUMESH_BASE_IMAGE,
# QPUMESH_BUILD_LOGS (build logs; default /tmp/qpumesh-build). Each step prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."

OFFLINE=0
if [ "${1:-}" = --offline ]; then OFFLINE=1; shift; fi
case "${1:-}" in -*) echo "usage: $0 [--offline] [TAG]" >&2; exit 2 ;; esac
TAG=${1:-${QPUMESH_TAG:-latest}}
PY=${PY:-.venv/bin/python}
LOGS=${QPUMESH_BUILD_LOGS:-/tmp/qpumesh-build}
WHEELHOUSE=build/wheelhouse
TORCH_SPEC="torch==2.13.0"

LOG_TAG=build_images
# shellcheck source=scripts/shell_steps.sh
source "$(dirname "$0")/shell_steps.sh"
mkdir -p "$LOGS"

# The wheelhouse, rebuilt from scratch each time (seconds, from pip's cache) so that no
# stale wheel can be picked up.
build_wheelhouse() {
  [ -x "$PY" ] || die "$PY not found; run 'bash scripts/setup.sh' first (or set PY)"
  local req constraints
  req=$(mktemp)
  constraints=$(mktemp)
  "$PY" -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(d['project']['dependencies'] + ['setuptools>=69']))" >"$req"
  "$PY" -m pip freeze --exclude-editable | grep -v ' @ ' >"$constraints" || true
  rm -rf "$WHEELHOUSE"
  if ! "$PY" -m pip wheel --disable-pip-version-check --wheel-dir "$WHEELHOUSE" \
      --constraint "$constraints" "$TORCH_SPEC" -r "$req" >"$LOGS/wheelhouse.log" 2>&1; then
    tail -n 30 "$LOGS/wheelhouse.log" >&2
    die "pip wheel failed (full log: $LOGS/wheelhouse.log)"
  fi
  # [tool.qpumesh] no-deps (mitiq): without their dependency pins, as scripts/setup.sh installs them.
  "$PY" -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['tool']['qpumesh']['no-deps']))" >"$req"
  if ! "$PY" -m pip wheel --disable-pip-version-check --no-deps --wheel-dir "$WHEELHOUSE" -r "$req" \
      >>"$LOGS/wheelhouse.log" 2>&1; then
    tail -n 30 "$LOGS/wheelhouse.log" >&2
    die "pip wheel of the no-deps packages failed (full log: $LOGS/wheelhouse.log)"
  fi
  rm -f "$req" "$constraints"
  log "wheelhouse: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
}

BUILD_ARGS=()
build_image() {
  local target=$1 image=$2 logfile="$LOGS/build-$1.log"
  if ! "${DOCKER_BUILD[@]}" --progress=plain --target "$target" -t "$image" "${BUILD_ARGS[@]}" . \
      >"$logfile" 2>&1; then
    tail -n 40 "$logfile" >&2
    die "building $image failed (full log: $logfile)"
  fi
  log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}

docker info >/dev/null 2>&1 || die "no Docker engine (on a bare Debian host: bash tests/e2e/docker_engine.sh start)"
pick_builder
if [ "$OFFLINE" = 1 ]; then
  base=${QPUMESH_BASE_IMAGE:-qpumesh-base:bookworm}
  docker image inspect "$base" >/dev/null 2>&1 \
    || die "base image $base missing (bash tests/e2e/docker_engine.sh start makes it)"
  step wheelhouse build_wheelhouse
  BUILD_ARGS=(--build-arg BASE_IMAGE="$base" --build-arg PIP_INSTALL_ARGS="--no-index --find-links=/wheelhouse")
fi
# One after the other: the second build reuses the first one's layers.
step build-node build_image node "qpumesh-node:$TAG"
step build-coord build_image coordinator "qpumesh-coordinator:$TAG"
# Keep the image store from growing build after build: drop the replaced (untagged) versions.
docker image prune --force >/dev/null || true
