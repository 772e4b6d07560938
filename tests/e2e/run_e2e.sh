#!/usr/bin/env bash
# End-to-end test of the containerised mesh on a real Docker engine (called by
# `bash scripts/test.sh --e2e`, hence by CI):
#
#   1. start the engine, the Compose plugin and the base image (tests/e2e/docker_engine.sh)
#   2.-3. scripts/build_images.sh --offline: the wheelhouse on the host (build/wheelhouse:
#      torch + every dependency), then both images (the node and coordinator targets of the
#      Dockerfile) offline from it (BuildKit, --build-arg BASE_IMAGE=qpumesh-base:bookworm)
#   4. pytest -m e2e tests/e2e: the Compose mesh (compose up with 4 nodes, a training job,
#      faults, ...), then the Swarm stack (a one-node swarm, docker stack deploy of
#      deploy/swarm/qpumesh-stack.yml, a killed task, scaling, stack rm), then the same
#      stack over two hosts (a second dockerd in a network namespace; QPUMESH_E2E_TWO_HOSTS=0
#      skips it), all on the same engine and images
#
# Always, also on failure or Ctrl-C: `docker compose down -v` of the test project, the
# test stack removed with its volume and secret (and the swarm left, if the test created
# it), and stop the dockerd that docker_engine.sh started (by its recorded PID; an engine
# it did not start is left alone). Each step's wall time is printed at the end.
#
# Environment:
#   PY                          python with qpumesh[dev] (default .venv/bin/python)
#   COMPOSE_PROJECT_NAME        compose project of the test mesh (default qpumesh-e2e)
#   QPUMESH_E2E_STACK           swarm stack of the test (default qpmswarm-e2e; STACK-2h for two hosts)
#   QPUMESH_E2E_TWO_HOSTS=0     skip the two-host swarm test
#   QPUMESH_TAG                 tag of the images built and tested (default e2e)
#   QPUMESH_E2E_STATE           state/log directory (default /tmp/qpumesh-e2e)
#   QPUMESH_E2E_KEEP_ENGINE=1   leave dockerd running afterwards (for repeated local runs)
#   QPUMESH_E2E_SKIP_BUILD=1    reuse the images already tagged $QPUMESH_TAG
#   extra arguments             passed to pytest (e.g. -k hetero, -x)
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
export QPUMESH_E2E_STATE=${QPUMESH_E2E_STATE:-/tmp/qpumesh-e2e}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-qpumesh-e2e}
export QPUMESH_E2E_STACK=${QPUMESH_E2E_STACK:-qpmswarm-e2e}
export QPUMESH_TAG=${QPUMESH_TAG:-e2e}
export QPUMESH_E2E_REQUIRED=1
ENGINE=tests/e2e/docker_engine.sh
PIDFILE="$QPUMESH_E2E_STATE/dockerd.pid"
BASE_IMAGE=${QPUMESH_BASE_IMAGE:-qpumesh-base:bookworm}

LOG_TAG=run_e2e
# shellcheck source=scripts/shell_steps.sh
source "scripts/shell_steps.sh"

[ -x "$PY" ] || die "$PY not found; run 'bash scripts/setup.sh' first (or set PY)"
mkdir -p "$QPUMESH_E2E_STATE"

TIMINGS=()
T_ALL=$(date +%s%N)
CHILD=
# timed NAME CMD...: run CMD, remember its wall time. CMD runs in the background and is
# waited for, so that a signal to this script is handled at once (see on_signal).
timed() {
  local name=$1 t0 ms rc=0
  shift
  log "== $name"
  t0=$(date +%s%N)
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  [ "$rc" = 0 ] || { log "$name failed (exit status $rc)"; exit "$rc"; }
  ms=$((($(date +%s%N) - t0) / 1000000))
  TIMINGS+=("$(printf '%-12s %4d.%01d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))")
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  log "== teardown (exit status $rc)"
  if docker info >/dev/null 2>&1; then
    docker compose -p "$COMPOSE_PROJECT_NAME" -f docker-compose.yml -f docker-compose.hetero.yml \
      down --volumes --remove-orphans --timeout 10 >&2 || log "compose down failed"
    COMPOSE_PROFILES=observability docker compose -p "$COMPOSE_PROJECT_NAME-obs" -f docker-compose.yml \
      down --volumes --remove-orphans --timeout 10 >&2 || log "compose down (observability) failed"
    # The swarm tests' stacks, volumes, secrets, labels, the second host (two-host test),
    # and the swarm if a test created it.
    "$PY" tests/e2e/e2e_swarm.py teardown "$QPUMESH_E2E_STACK" "$QPUMESH_E2E_STACK-2h" >&2 \
      || log "swarm teardown failed"
  fi
  if [ "${QPUMESH_E2E_KEEP_ENGINE:-}" != 1 ]; then
    bash "$ENGINE" stop || log "stopping dockerd failed"
  elif [ -s "$PIDFILE" ]; then
    log "QPUMESH_E2E_KEEP_ENGINE=1: dockerd PID $(cat "$PIDFILE") left running" \
      "(stop it with: bash $ENGINE stop)"
  fi
  local ms=$((($(date +%s%N) - T_ALL) / 1000000))
  log "timings:"
  for line in "${TIMINGS[@]}"; do log "  $line"; done
  log "  $(printf '%-12s %4d.%01d s' total $((ms / 1000)) $((ms % 1000 / 100)))"
  exit "$rc"
}
# INT/TERM: stop the running step (pytest, a build) first, then the EXIT trap tears down.
on_signal() {
  log "interrupted by SIG$1"
  if [ -n "$CHILD" ]; then
    pkill -TERM -P "$CHILD" 2>/dev/null || true
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

start_engine() { bash "$ENGINE" start; }

build_prometheus() {
  local logfile="$QPUMESH_E2E_STATE/build-prometheus.log"
  if ! "${DOCKER_BUILD[@]}" --progress=plain -t "qpumesh-prometheus:$QPUMESH_TAG" \
      --build-arg BASE_IMAGE="$BASE_IMAGE" observability >"$logfile" 2>&1; then
    tail -n 15 "$logfile" >&2
    echo "apt-get inside the build failed (log: $logfile)" >"$QPUMESH_E2E_STATE/prometheus-skipped"
    log "building qpumesh-prometheus failed; its test will skip (log: $logfile)"
    return 0
  fi
  rm -f "$QPUMESH_E2E_STATE/prometheus-skipped"
  log "built qpumesh-prometheus:$QPUMESH_TAG"
}

timed engine start_engine
if [ "${QPUMESH_E2E_SKIP_BUILD:-}" = 1 ]; then
  log "QPUMESH_E2E_SKIP_BUILD=1: using the existing images tagged $QPUMESH_TAG"
else
  # Wheelhouse on the host, both images offline on the base image (wall time of each step
  # in its log lines; build logs in $QPUMESH_E2E_STATE).
  timed build env PY="$PY" QPUMESH_BASE_IMAGE="$BASE_IMAGE" QPUMESH_BUILD_LOGS="$QPUMESH_E2E_STATE" \
    bash scripts/build_images.sh --offline "$QPUMESH_TAG"
  # The observability profile's Prometheus: Debian's package installed by apt inside the
  # build. Where containers reach no Debian mirror this cannot be built; its test then
  # skips saying so (docs/observability.md), the rest of the e2e test runs.
  pick_builder
  timed build-prom build_prometheus
  # Keep the image store from growing run after run: drop the replaced image versions.
  docker image prune --force >/dev/null || true
fi
timed pytest "$PY" -m pytest -m e2e tests/e2e -p no:cacheprovider -v "$@"
