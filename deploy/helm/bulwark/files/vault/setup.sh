#!/bin/sh
# PLACEHOLDER for deploy/vault/setup.sh (written on branch `vault`): at merge this file is
# replaced by a copy of it (tests/deploy checks they are identical once deploy/vault exists).
# Inputs the chart's vault-setup Job passes (env): VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT
# (optional), BULWARK_VAULT_PREFIX, BULWARK_NAMESPACE, BULWARK_VAULT_K8S_MOUNT,
# BULWARK_VAULT_K8S_AUDIENCE, BULWARK_K8S_HOST, BULWARK_POSTGRES_HOST, BULWARK_POSTGRES_PORT,
# BULWARK_POSTGRES_ADMIN_USER, BULWARK_POSTGRES_ADMIN_PASSWORD, BULWARK_REDIS_URL,
# BULWARK_REDIS_ADMIN_USER, BULWARK_REDIS_ADMIN_PASSWORD, BULWARK_<SVC>_DATABASE.
echo "vault-setup: placeholder script; replace files/vault/setup.sh with deploy/vault/setup.sh" >&2
exit 1
