#!/bin/sh
# Configure Vault/OpenBao for one Bulwark deployment. Idempotent: a second run rewrites the
# same configuration and changes nothing. POSIX sh (runs in the OpenBao image, no bash).
# The contract is docs/identity-and-secrets.md.
#
# Inputs (environment):
#   VAULT_ADDR, VAULT_TOKEN          required; an admin token (never handed to services)
#   BAO_BIN                          CLI to use (default: bao, else vault, from PATH)
#   BULWARK_VAULT_PREFIX             names every object of this deployment (default bulwark)
#   BULWARK_NAMESPACE                namespace in the SPIFFE ids and k8s bindings (default default)
#   BULWARK_VAULT_KV_MOUNT / _PKI_MOUNT / _DB_MOUNT   mounts (default secret / pki / database)
#   BULWARK_SETUP_<SVC>_DB_URL       per service (USERS, AUTH, API): the connection URL Vault's
#                                    plugin uses, e.g.
#                                    postgresql://{{username}}:{{password}}@pg:5432/bulwark_users
#                                    (database name = <db>; postgres-bootstrap.sql must have
#                                    created <db>_owner and <db>_rw). Unset: no DB roles for it.
#   BULWARK_SETUP_DB_ADMIN_USER / _PASSWORD   the admin login Vault creates roles with
#   BULWARK_SETUP_DB_MAX_OPEN_CONNECTIONS (4) / _MAX_IDLE_CONNECTIONS (0 = as many as open,
#                                    -1 = none): Vault's own pool per service database
#   BULWARK_SETUP_REDIS_HOST         Redis for dynamic ACL users (unset: no Redis roles)
#   BULWARK_SETUP_REDIS_PORT (6379), _REDIS_USERNAME (default), _REDIS_PASSWORD (required
#                                    with a host; any value for a password-less `default`),
#   BULWARK_SETUP_REDIS_TLS (false)
#   BULWARK_REDIS_PREFIX             the deployment's Redis key prefix (default bulwark:)
#   BULWARK_SETUP_PKI_CA_BUNDLE_FILE an existing CA (PEM key + certificate) instead of a
#                                    generated root; used only when the mount has no CA yet
#   BULWARK_SETUP_K8S_HOST           Kubernetes API for k8s auth (config written only if set)
#   BULWARK_SETUP_K8S_CA_FILE        its CA certificate (optional)
#   BULWARK_SETUP_TOKEN_TTL / _TOKEN_MAX_TTL   service tokens (default 1h / 24h)
#   BULWARK_SETUP_DB_TTL / _DB_MAX_TTL         DB and Redis credentials (default 1h / 24h)
#   BULWARK_SETUP_CERT_MAX_TTL                 service certificates (default 24h)
#   BULWARK_SETUP_SECRET_ID_TTL                AppRole secret ids (default 720h; 0 = never
#                                              expire, which a leaked id would then share)
set -eu

: "${VAULT_ADDR:?VAULT_ADDR is required}"
: "${VAULT_TOKEN:?VAULT_TOKEN (admin) is required}"
export VAULT_ADDR VAULT_TOKEN
if [ -z "${BAO_BIN:-}" ]; then
  BAO_BIN=$(command -v bao || command -v vault || true)
  [ -n "$BAO_BIN" ] || { echo "setup: neither bao nor vault on PATH (set BAO_BIN)" >&2; exit 2; }
fi
P=${BULWARK_VAULT_PREFIX:-bulwark}
NS=${BULWARK_NAMESPACE:-default}
KV=${BULWARK_VAULT_KV_MOUNT:-secret}
PKI=${BULWARK_VAULT_PKI_MOUNT:-pki}
DB=${BULWARK_VAULT_DB_MOUNT:-database}
TOKEN_TTL=${BULWARK_SETUP_TOKEN_TTL:-1h}
TOKEN_MAX_TTL=${BULWARK_SETUP_TOKEN_MAX_TTL:-24h}
DB_TTL=${BULWARK_SETUP_DB_TTL:-1h}
DB_MAX_TTL=${BULWARK_SETUP_DB_MAX_TTL:-24h}
CERT_MAX_TTL=${BULWARK_SETUP_CERT_MAX_TTL:-24h}
SECRET_ID_TTL=${BULWARK_SETUP_SECRET_ID_TTL:-720h}
REDIS_PREFIX=${BULWARK_REDIS_PREFIX:-bulwark:}
HERE=$(cd "$(dirname "$0")" && pwd)
SERVICES="users auth api"
# Vault-created PostgreSQL users are named v-<role>-<random>-<time>, so a prefix's leftovers
# are findable (the Redis plugin has its own fixed V_<auth>_<ROLE>_<random>_<time>).
USER_TEMPLATE='{{ printf "v-%s-%s-%s" (.RoleName | truncate 40) (random 8) (unix_time) | truncate 63 | lowercase }}'

bao() { "$BAO_BIN" "$@" >/dev/null; }

# Mounts and auth methods: enable only what is missing (enabling twice is an error).
MOUNTS=$("$BAO_BIN" secrets list -format=json)
AUTHS=$("$BAO_BIN" auth list -format=json)
has() { printf '%s' "$1" | grep -q "\"$2/\""; }
has "$MOUNTS" "$KV" || bao secrets enable -path="$KV" -version=2 kv
has "$MOUNTS" "$PKI" || bao secrets enable -path="$PKI" -max-lease-ttl=87600h pki
has "$MOUNTS" "$DB" || bao secrets enable -path="$DB" database
has "$AUTHS" approle || bao auth enable approle
has "$AUTHS" kubernetes || bao auth enable kubernetes
if [ -n "${BULWARK_SETUP_K8S_HOST:-}" ]; then
  if [ -n "${BULWARK_SETUP_K8S_CA_FILE:-}" ]; then
    bao write auth/kubernetes/config kubernetes_host="$BULWARK_SETUP_K8S_HOST" \
      kubernetes_ca_cert=@"$BULWARK_SETUP_K8S_CA_FILE"
  else
    bao write auth/kubernetes/config kubernetes_host="$BULWARK_SETUP_K8S_HOST"
  fi
fi

# One CA per mount, shared by every prefix on it: keep the one that is there.
if ! "$BAO_BIN" read -field=certificate "$PKI/cert/ca" 2>/dev/null | grep -q CERTIFICATE; then
  if [ -n "${BULWARK_SETUP_PKI_CA_BUNDLE_FILE:-}" ]; then
    bao write "$PKI/config/ca" pem_bundle=@"$BULWARK_SETUP_PKI_CA_BUNDLE_FILE"
  else
    bao write "$PKI/root/generate/internal" common_name="bulwark dev root CA" \
      key_type=ec key_bits=256 ttl=87600h
  fi
fi

policy() { # name file
  sed -e "s|__PREFIX__|$P|g" -e "s|__KV__|$KV|g" -e "s|__PKI__|$PKI|g" -e "s|__DB__|$DB|g" \
    "$HERE/policies/$2.hcl" | "$BAO_BIN" policy write "$1" - >/dev/null
}

login_roles() { # name: the AppRole and the Kubernetes role of one identity, policy = name
  bao write "auth/approle/role/$1" token_policies="$1" token_ttl="$TOKEN_TTL" \
    token_max_ttl="$TOKEN_MAX_TTL" secret_id_ttl="$SECRET_ID_TTL" secret_id_num_uses=0
  bao write "auth/kubernetes/role/$1" bound_service_account_names="$1" \
    bound_service_account_namespaces="$NS" audience=vault token_policies="$1" \
    token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL"
}

pki_role() { # svc
  bao write "$PKI/roles/$P-$1" \
    allowed_uri_sans="spiffe://bulwark/ns/$NS/sa/$1" \
    allowed_domains="$1,$1.$NS.svc,$1.$NS.svc.cluster.local,localhost" \
    allow_bare_domains=true allow_subdomains=false allow_glob_domains=false \
    allow_localhost=true allow_ip_sans=true enforce_hostnames=true \
    key_type=ec key_bits=256 max_ttl="$CERT_MAX_TTL" ttl="$CERT_MAX_TTL" \
    server_flag=true client_flag=true no_store=true
}

db_roles() { # svc url
  db=${2##*/}
  db=${db%%\?*}
  # Vault drops its user at the end of the lease; whatever it owned (nothing, normally)
  # goes to the owner role first, so revocation never fails on owned objects.
  revoke_terminate="SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';"
  revoke_drop="DO \$\$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{{name}}') THEN \
EXECUTE 'REASSIGN OWNED BY \"{{name}}\" TO \"${db}_owner\"'; \
EXECUTE 'DROP OWNED BY \"{{name}}\"'; EXECUTE 'DROP ROLE \"{{name}}\"'; END IF; END \$\$;"
  create="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"
  bao write "$DB/config/$P-$1" plugin_name=postgresql-database-plugin \
    connection_url="$2" username="${BULWARK_SETUP_DB_ADMIN_USER:-postgres}" \
    password="${BULWARK_SETUP_DB_ADMIN_PASSWORD:-unused}" \
    allowed_roles="$P-$1,$P-$1-migrate" username_template="$USER_TEMPLATE" \
    max_open_connections="${BULWARK_SETUP_DB_MAX_OPEN_CONNECTIONS:-4}" \
    max_idle_connections="${BULWARK_SETUP_DB_MAX_IDLE_CONNECTIONS:-0}"
  bao write "$DB/roles/$P-$1" db_name="$P-$1" default_ttl="$DB_TTL" max_ttl="$DB_MAX_TTL" \
    creation_statements="$create IN ROLE \"${db}_rw\";" \
    revocation_statements="$revoke_terminate" revocation_statements="$revoke_drop"
  bao write "$DB/roles/$P-$1-migrate" db_name="$P-$1" default_ttl="$DB_TTL" \
    max_ttl="$DB_MAX_TTL" creation_statements="$create IN ROLE \"${db}_owner\";" \
    revocation_statements="$revoke_terminate" revocation_statements="$revoke_drop"
}

redis_role() { # svc: an ACL user limited to the deployment's keys and channels
  bao write "$DB/roles/$P-$1-redis" db_name="$P-redis" default_ttl="$DB_TTL" \
    max_ttl="$DB_MAX_TTL" \
    creation_statements="[\"~${REDIS_PREFIX}*\", \"&${REDIS_PREFIX}*\", \"+@all\", \"-@dangerous\"]"
}

service() { # svc: everything of one service
  policy "$P-$1" "$1"
  login_roles "$P-$1"
  pki_role "$1"
  case $1 in
    users) url=${BULWARK_SETUP_USERS_DB_URL:-} ;;
    auth) url=${BULWARK_SETUP_AUTH_DB_URL:-} ;;
    *) url=${BULWARK_SETUP_API_DB_URL:-} ;;
  esac
  if [ -n "$url" ]; then db_roles "$1" "$url"; fi
  if [ -n "${BULWARK_SETUP_REDIS_HOST:-}" ]; then redis_role "$1"; fi
}

if [ -n "${BULWARK_SETUP_REDIS_HOST:-}" ]; then
  bao write "$DB/config/$P-redis" plugin_name=redis-database-plugin \
    host="$BULWARK_SETUP_REDIS_HOST" port="${BULWARK_SETUP_REDIS_PORT:-6379}" \
    username="${BULWARK_SETUP_REDIS_USERNAME:-default}" \
    password="${BULWARK_SETUP_REDIS_PASSWORD:?BULWARK_SETUP_REDIS_PASSWORD is required with a Redis host}" \
    tls="${BULWARK_SETUP_REDIS_TLS:-false}" allowed_roles="$P-users-redis,$P-auth-redis,$P-api-redis"
fi

# The services are independent: configure them in parallel (each CLI call costs ~0.1 s).
pids=""
for svc in $SERVICES; do
  service "$svc" &
  pids="$pids $!"
done
(policy "$P-auth-keys" auth-keys && login_roles "$P-auth-keys") &
pids="$pids $!"
failed=0
for pid in $pids; do wait "$pid" || failed=1; done
if [ "$failed" -ne 0 ]; then
  echo "setup: configuring prefix $P failed (see the errors above)" >&2
  exit 1
fi
echo "setup: Vault at $VAULT_ADDR configured for prefix $P (namespace $NS)"
