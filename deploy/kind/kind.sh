#!/usr/bin/env bash
# The kind path (README.md ("Deploy")): `kind.sh up|load|deploy|e2e|down|all`, also as
# `make kind-up images kind-load deploy e2e-kind kind-down` (or `make kind`). Needs kind
# (>= v0.24.0: kindnet enforces NetworkPolicies), kubectl, and docker or podman.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${KIND_CLUSTER:-bulwark}
NS=${BULWARK_NAMESPACE:-bulwark}
RELEASE=bulwark
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
HELM=${HELM:-.tools/bin/helm}
KUBECTL=${KUBECTL:-kubectl}
KIND=${KIND:-kind}
LOCAL_PORT=${BULWARK_LOCAL_PORT:-18080}
ADMIN=e2e-admin
STATE=.data/kind
k() { "$KUBECTL" --context "kind-$CLUSTER" "$@"; }
# What to undo on exit, newest first (one trap: a second `trap ... EXIT` would replace it).
CLEANUP=()
on_exit() { for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do ${CLEANUP[i]} || true; done; }
trap on_exit EXIT

up() {
  local have
  have=$("$KIND" version | sed -n 's/^kind v\([0-9.]*\).*/\1/p')
  if [ "$(printf '%s\n0.24.0\n' "$have" | sort -V | head -1)" != "0.24.0" ]; then
    echo "kind: v$have is too old: NetworkPolicies need kind >= v0.24.0" >&2
    exit 1
  fi
  "$KIND" get clusters | grep -qx "$CLUSTER" ||
    "$KIND" create cluster --name "$CLUSTER" --config deploy/k8s/kind-config.yaml --wait 120s
}

load() {
  for svc in api auth users; do
    local image=localhost/bulwark-$svc:$VERSION
    if docker info >/dev/null 2>&1; then
      "$KIND" load docker-image --name "$CLUSTER" "$image"
    else  # KIND_EXPERIMENTAL_PROVIDER=podman
      local archive
      archive=$(mktemp --suffix=.tar)
      podman save -o "$archive" "$image" && "$KIND" load image-archive --name "$CLUSTER" "$archive"
      rm -f "$archive"
    fi
  done
}

deploy() {
  k apply -f deploy/k8s/namespace.yaml
  # Random dev credentials, created once, never rendered by the chart.
  k -n "$NS" get secret bulwark-dev-credentials >/dev/null 2>&1 ||
    k -n "$NS" create secret generic bulwark-dev-credentials \
      --from-literal=POSTGRES_ADMIN_PASSWORD="$(openssl rand -hex 24)" \
      --from-literal=REDIS_ADMIN_PASSWORD="$(openssl rand -hex 24)" \
      --from-literal=VAULT_TOKEN="$(openssl rand -hex 24)"
  "$HELM" upgrade --install "$RELEASE" deploy/helm/bulwark --kube-context "kind-$CLUSTER" \
    -n "$NS" -f deploy/helm/bulwark/values-kind.yaml -f deploy/kind/values-e2e.yaml \
    --wait --wait-for-jobs --timeout 10m
  k -n "$NS" rollout status deployment --timeout 300s
  # An admin for the suite's admin tests, created inside users (its Vault identity).
  mkdir -p "$STATE"
  [ -s "$STATE/admin-password" ] || (umask 077 && openssl rand -hex 18 >"$STATE/admin-password")
  k -n "$NS" exec -i "deploy/$RELEASE-users" -- bulwark-service create-admin \
    --username "$ADMIN" --email "$ADMIN@example.com" <"$STATE/admin-password" ||
    echo "kind: admin $ADMIN exists already"
}

port_forward() {  # $1: local port, $2: service
  k -n "$NS" port-forward "service/$RELEASE-$2" "$1:8080" >"$STATE/port-forward.log" 2>&1 &
  CLEANUP+=("kill $!")
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "kind: port-forward never answered" >&2; exit 1; }
    sleep 0.5
  done
}

e2e() {
  mkdir -p "$STATE"
  port_forward "$LOCAL_PORT" api
  BULWARK_E2E_URL="http://127.0.0.1:$LOCAL_PORT" BULWARK_E2E_ADMIN_USERNAME=$ADMIN \
    BULWARK_E2E_ADMIN_PASSWORD="$(cat "$STATE/admin-password")" \
    .venv/bin/pytest tests/e2e -q
  KUBECTL="$KUBECTL --context kind-$CLUSTER" NS=$NS RELEASE=$RELEASE \
    BULWARK_URL="http://127.0.0.1:$LOCAL_PORT" bash deploy/kind/cluster-checks.sh
}

down() { "$KIND" delete cluster --name "$CLUSTER"; }

case "${1:-}" in
  up) up ;;
  load) load ;;
  deploy) deploy ;;
  e2e) e2e ;;
  down) down ;;
  all)
    up
    CLEANUP+=(down)
    bash deploy/images/images.sh build
    load
    deploy
    e2e
    ;;
  *) echo "usage: $0 up|load|deploy|e2e|down|all" >&2; exit 2 ;;
esac
