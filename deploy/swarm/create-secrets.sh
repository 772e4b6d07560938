#!/bin/sh
# Store the mesh's secrets in the swarm, once, before `docker stack deploy`.
#
#   deploy/swarm/create-secrets.sh CERTS_DIR TOKENS_FILE
#
# CERTS_DIR holds the files of `qpumesh certs init CERTS_DIR --hosts ...` (ca.crt,
# server.crt, server.key); TOKENS_FILE is the coordinator's token file (docs/security.md:
# `TOKEN PRINCIPAL [ROLE]` lines, preferably `sha256:` digests). Creates, with the prefix
# QPUMESH_SECRET_PREFIX (default `qpumesh`, as the stack file expects):
#
#   PREFIX_ca                 CERTS_DIR/ca.crt       every service (--tls-ca)
#   PREFIX_node_cert, _key    CERTS_DIR/server.*     the nodes
#   PREFIX_coordinator_cert, _key  CERTS_DIR/server.* the coordinator (also its client
#                                                    certificate towards the nodes)
#   PREFIX_auth_tokens        TOKENS_FILE            the coordinator
#   PREFIX_admin_token        $QPUMESH_ADMIN_TOKEN, or 32 random hex digits: the nodes'
#                             NodeAdmin token (read it back inside a node task from
#                             /run/secrets/qpumesh_admin_token)
#
# ca.key is never stored. Swarm secrets cannot be changed: to renew, create a new set
# under another prefix and redeploy with that QPUMESH_SECRET_PREFIX. Nothing is created
# when any file is missing or any of the names exists already (exit status 1 or 2).
set -eu

usage() { echo "usage: $0 CERTS_DIR TOKENS_FILE" >&2; exit 2; }
[ $# -eq 2 ] || usage
certs=$1
tokens=$2
prefix=${QPUMESH_SECRET_PREFIX:-qpumesh}

for file in "$certs/ca.crt" "$certs/server.crt" "$certs/server.key" "$tokens"; do
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then
    echo "$0: $file is not a readable file (make the certificates with: qpumesh certs init $certs --hosts ...)" >&2
    exit 1
  fi
done
existing=$(docker secret ls --format '{{.Name}}')
for name in ca node_cert node_key coordinator_cert coordinator_key auth_tokens admin_token; do
  if printf '%s\n' "$existing" | grep -qx "${prefix}_$name"; then
    echo "$0: secret ${prefix}_$name exists already; remove the set (docker secret rm) or choose another QPUMESH_SECRET_PREFIX" >&2
    exit 1
  fi
done

create() {  # NAME FILE
  docker secret create --label qpumesh.secret-set="$prefix" "${prefix}_$1" "$2" >/dev/null
  echo "created ${prefix}_$1"
}
create ca "$certs/ca.crt"
create node_cert "$certs/server.crt"
create node_key "$certs/server.key"
create coordinator_cert "$certs/server.crt"
create coordinator_key "$certs/server.key"
create auth_tokens "$tokens"
admin=${QPUMESH_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
printf '%s' "$admin" | docker secret create --label qpumesh.secret-set="$prefix" "${prefix}_admin_token" - >/dev/null
echo "created ${prefix}_admin_token"
