# Shell helpers shared by scripts/build_images.sh, tests/e2e/run_e2e.sh and
# tests/e2e/docker_engine.sh (sourced, not run). Set LOG_TAG before sourcing.
#   log MSG...        print "[LOG_TAG] MSG" on stderr
#   die MSG...        log "ERROR: MSG" and exit 1
#   step NAME CMD...  run CMD and log its wall time
#   pick_builder      set DOCKER_BUILD to a BuildKit-capable `docker build` command

log() { printf '[%s] %s\n' "${LOG_TAG:-qpumesh}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

step() {
  local name=$1 t0 ms
  shift
  t0=$(date +%s%N)
  "$@"
  ms=$((($(date +%s%N) - t0) / 1000000))
  log "$(printf 'step %-12s %d.%01d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))"
}

# BuildKit is needed (RUN --mount). Docker >= 23 with buildx uses it by default; Debian's
# docker.io 20.10 CLI has it built in with DOCKER_BUILDKIT=1.
DOCKER_BUILD=()
pick_builder() {
  if docker buildx version >/dev/null 2>&1; then
    DOCKER_BUILD=(docker build)
  elif [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
    DOCKER_BUILD=(env DOCKER_BUILDKIT=1 /usr/bin/docker build)
  else
    die "no BuildKit-capable docker CLI (install docker-buildx, or docker.io's CLI)"
  fi
}
