#!/bin/sh
# Entry point of the qpumesh images: secret values from files, then the command.
#
# Orchestrators hand secrets to a container as files (Docker Swarm and Kubernetes mount
# them under /run/secrets/...), while a service reads some secrets as values from its
# environment. For each variable below, NAME_FILE=/path exports NAME with the file's
# content (trailing newlines dropped), so the value never appears in `docker inspect`,
# the stack file or the pod spec:
#
#   QPUMESH_ADMIN_TOKEN_FILE   the node's NodeAdmin token (QPUMESH_ADMIN_TOKEN)
#   QPUMESH_TOKEN_FILE         a client's coordinator token (QPUMESH_TOKEN)
#
# Settings that are file paths already (QPUMESH_TLS_CERT, QPUMESH_TLS_KEY, QPUMESH_TLS_CA,
# QPUMESH_AUTH_TOKENS) need no help: point them at the secret files directly.
# Setting both NAME and NAME_FILE, or naming a file that cannot be read, stops the
# container with a message saying which variable to fix (exit status 64). Then the command
# (CMD: `qpumesh node serve` / `qpumesh coordinator serve`) replaces this shell, so the
# service stays the container's main process and gets its signals.
set -eu

for name in QPUMESH_ADMIN_TOKEN QPUMESH_TOKEN; do
  file=$(printenv "${name}_FILE" || true)
  [ -n "$file" ] || continue
  if [ -n "$(printenv "$name" || true)" ]; then
    echo "qpumesh-entrypoint: both $name and ${name}_FILE are set; set only one" >&2
    exit 64
  fi
  if [ ! -r "$file" ] || [ ! -f "$file" ]; then
    echo "qpumesh-entrypoint: ${name}_FILE=$file is not a readable file (is the secret attached to this service?)" >&2
    exit 64
  fi
  value=$(cat "$file")
  if [ -z "$value" ]; then
    echo "qpumesh-entrypoint: ${name}_FILE=$file is empty" >&2
    exit 64
  fi
  export "$name=$value"
  unset "${name}_FILE"
done

exec "$@"
