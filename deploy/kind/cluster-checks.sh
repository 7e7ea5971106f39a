#!/usr/bin/env bash
# Checks only a cluster can make, after the e2e suite (deploy/kind/kind.sh e2e):
# NetworkPolicies refuse every edge they do not allow (from inside and outside the
# namespace), allowed edges work, no pod holds a Kubernetes API token it does not need, and a
# rollout restart of each service under steady traffic loses no request.
set -euo pipefail
: "${KUBECTL:?}" "${NS:?}" "${RELEASE:?}"
read -r -a KC <<<"$KUBECTL"
k() { "${KC[@]}" "$@"; }
PROBE_IMAGE=${PROBE_IMAGE:-docker.io/library/busybox:1.36.1}
OUTSIDE=${NS}-outside
fail=0
check() {  # $1: description, $2: expected (open|closed), $3: actual
  if [ "$2" = "$3" ]; then echo "ok   $1: $3"; else echo "FAIL $1: $3 (want $2)"; fail=1; fi
}

# A throwaway pod that passes PSS restricted; $1 namespace, $2 name, $3 extra labels (k=v,..).
probe_pod() {
  local labels=${3:-}
  k -n "$1" run "$2" --image="$PROBE_IMAGE" --restart=Never ${labels:+--labels="$labels"} \
    --overrides='{"spec":{"automountServiceAccountToken":false,"securityContext":{"runAsNonRoot":true,"runAsUser":10001,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"'"$2"'","image":"'"$PROBE_IMAGE"'","command":["sleep","600"],"securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"capabilities":{"drop":["ALL"]}},"resources":{"limits":{"cpu":"100m","memory":"32Mi"}},"volumeMounts":[{"name":"tmp","mountPath":"/tmp"}]}],"volumes":[{"name":"tmp","emptyDir":{}}]}}' >/dev/null
  k -n "$1" wait --for=condition=Ready "pod/$2" --timeout=120s >/dev/null
}
reach() {  # namespace pod host port -> open|closed
  if k -n "$1" exec "$2" -- nc -z -w 3 "$3" "$4" >/dev/null 2>&1; then echo open; else echo closed; fi
}

echo "== NetworkPolicies"
k create namespace "$OUTSIDE" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$OUTSIDE" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
trap 'k -n "$NS" delete pod np-inside --now --ignore-not-found >/dev/null; k delete namespace "$OUTSIDE" --ignore-not-found --wait=false >/dev/null' EXIT
probe_pod "$NS" np-inside
probe_pod "$OUTSIDE" np-outside
svc() { echo "$RELEASE-$1.$NS.svc.cluster.local"; }
for where in "$NS np-inside" "$OUTSIDE np-outside"; do
  read -r ns pod <<<"$where"
  for edge in users:50052 users:51052 auth:50051 auth:51051 api:8080 redis:6379 postgresql:5432 openbao:8200; do
    check "$pod -> ${edge%%:*}:${edge##*:}" closed "$(reach "$ns" "$pod" "$(svc "${edge%%:*}")" "${edge##*:}")"
  done
done
# Allowed edges, from the services themselves (their images have Python, not nc).
connect() {  # from-deployment host port -> open|closed
  if k -n "$NS" exec "deploy/$RELEASE-$1" -- /opt/venv/bin/python -c \
    "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)" "$2" "$3" >/dev/null 2>&1
  then echo open; else echo closed; fi
}
for edge in "api users 50052" "api auth 50051" "auth users 50052" "users postgresql 5432" \
  "users redis 6379" "users openbao 8200"; do
  read -r from to port <<<"$edge"
  check "$from -> $to:$port" open "$(connect "$from" "$(svc "$to")" "$port")"
done
check "users -> auth:50051 (not in the matrix)" closed "$(connect users "$(svc auth)" 50051)"
for from in api auth users; do
  check "$from -> internet 1.1.1.1:443" closed "$(connect "$from" 1.1.1.1 443)"
done

echo "== Kubernetes API tokens"
tokens=$(k -n "$NS" get pods -o json | .venv/bin/python -c '
import json, sys
for pod in json.load(sys.stdin)["items"]:
    component = pod["metadata"]["labels"].get("app.kubernetes.io/component", "?")
    mounts = [m["mountPath"] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])]
    if any("kubernetes.io/serviceaccount" in m for m in mounts) and component != "openbao":
        print(pod["metadata"]["name"])')
check "pods holding a Kubernetes API token (only the dev OpenBao may)" none "${tokens:-none}"

echo "== rollout restart under traffic"
# Traffic from inside the namespace to api's Service, from a pod labelled as the e2e client
# (values-e2e.yaml lets it in), so restarts of api itself are covered too. Each round asks
# /readyz (api checks auth, users, PostgreSQL and Redis) and /v1/users/me as a real user
# (api -> users over mTLS gRPC), paced under the per-user limit (600/minute).
: "${BULWARK_URL:?}"
user=rollout$(openssl rand -hex 4)
password=$(openssl rand -hex 16)
curl -fsS -o /dev/null -X POST "$BULWARK_URL/v1/users" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"$password\"}"
# 15 minutes of access token: the three restarts take a few minutes.
token=$(curl -fsS -X POST "$BULWARK_URL/v1/auth/token" -d grant_type=password \
  -d "username=$user" -d "password=$password" |
  .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
probe_pod "$NS" traffic "bulwark-e2e-client=true"
trap 'k -n "$NS" delete pod np-inside traffic --now --ignore-not-found >/dev/null; k delete namespace "$OUTSIDE" --ignore-not-found --wait=false >/dev/null' EXIT
for component in users auth api; do
  k -n "$NS" exec traffic -- sh -c "rm -f /tmp/failed /tmp/rounds; while [ ! -e /tmp/stop ]; do \
    wget -q -T 5 -O /dev/null http://$(svc api):8080/readyz || echo readyz >>/tmp/failed; \
    wget -q -T 5 -O /dev/null --header 'Authorization: Bearer $token' \
      http://$(svc api):8080/v1/users/me || echo me >>/tmp/failed; \
    echo . >>/tmp/rounds; sleep 0.2; done" &
  loop=$!
  k -n "$NS" rollout restart "deployment/$RELEASE-$component" >/dev/null
  k -n "$NS" rollout status "deployment/$RELEASE-$component" --timeout=300s >/dev/null
  k -n "$NS" exec traffic -- touch /tmp/stop
  wait "$loop" || true
  # shellcheck disable=SC2016  # expanded by the pod's shell
  read -r failed rounds < <(k -n "$NS" exec traffic -- sh -c \
    'echo "$(cat /tmp/failed 2>/dev/null | wc -l) $(wc -l </tmp/rounds)"; rm -f /tmp/stop')
  echo "     restarting $component: $rounds rounds of /readyz and /v1/users/me"
  check "failed requests while restarting $component" 0 "$failed"
  [ "$rounds" -gt 0 ] || { echo "FAIL no traffic while restarting $component"; fail=1; }
done
k -n "$NS" delete pod traffic --now >/dev/null

exit "$fail"
