#!/bin/sh
# Create the Secrets the manifests mount, once per namespace, before `kubectl apply -k`.
#
#   deploy/k8s/create-secrets.sh NAMESPACE CERTS_DIR TOKENS_FILE [KUBECTL ARGS...]
#
# CERTS_DIR holds the files of
#   qpumesh certs init CERTS_DIR --hosts qpu,coordinator,coordinator.NAMESPACE,\
#     coordinator.NAMESPACE.svc,coordinator.NAMESPACE.svc.cluster.local[,EXTERNAL NAMES]
# (`qpu`: the coordinator dials each node pod by IP and checks its certificate for the
# name of its dns: target, the headless Service `qpu`; the coordinator's names: how
# clients reach it). TOKENS_FILE is the coordinator's token file (docs/security.md).
# Creates in NAMESPACE:
#
#   qpumesh-node-tls         ca.crt, tls.crt, tls.key  <- CERTS_DIR/ca.crt, server.crt, server.key
#   qpumesh-coordinator-tls  the same keys and files (also its client certificate to the nodes)
#   qpumesh-auth-tokens      tokens                    <- TOKENS_FILE
#   qpumesh-admin-token      token                     <- $QPUMESH_ADMIN_TOKEN or 32 random hex digits
#
# ca.key is never stored. Further arguments go to every `kubectl create`, e.g.
# `--dry-run=client -o yaml` to see the Secrets without creating them (the unit tests
# check the keys against the mounts this way). KUBECTL names the binary (default kubectl).
set -eu

[ $# -ge 3 ] || { echo "usage: $0 NAMESPACE CERTS_DIR TOKENS_FILE [KUBECTL ARGS...]" >&2; exit 2; }
namespace=$1
certs=$2
tokens=$3
shift 3
kubectl=${KUBECTL:-kubectl}

for file in "$certs/ca.crt" "$certs/server.crt" "$certs/server.key" "$tokens"; do
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then
    echo "$0: $file is not a readable file (make the certificates with: qpumesh certs init $certs --hosts ...)" >&2
    exit 1
  fi
done

for role in node coordinator; do
  "$kubectl" create secret generic "qpumesh-$role-tls" --namespace "$namespace" \
    --from-file=ca.crt="$certs/ca.crt" --from-file=tls.crt="$certs/server.crt" \
    --from-file=tls.key="$certs/server.key" "$@"
done
"$kubectl" create secret generic qpumesh-auth-tokens --namespace "$namespace" \
  --from-file=tokens="$tokens" "$@"
admin=${QPUMESH_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
"$kubectl" create secret generic qpumesh-admin-token --namespace "$namespace" \
  --from-literal=token="$admin" "$@"
