# Policy __PREFIX__-api: the api service's own secrets and nothing else.
# setup.sh substitutes __PREFIX__, __KV__, __PKI__ and __DB__. Token self-renewal and lease
# renewal come from Vault's built-in "default" policy.

# Reads its own KV secrets only.
path "__KV__/data/__PREFIX__/api/*" {
  capabilities = ["read"]
}
path "__KV__/metadata/__PREFIX__/api/*" {
  capabilities = ["read"]
}

# Dynamic credentials: runtime (DML), migrations (schema owner) and its Redis ACL user.
path "__DB__/creds/__PREFIX__-api" {
  capabilities = ["read"]
}
path "__DB__/creds/__PREFIX__-api-migrate" {
  capabilities = ["read"]
}
path "__DB__/creds/__PREFIX__-api-redis" {
  capabilities = ["read"]
}

# Its own mTLS identity: the PKI role only allows spiffe://bulwark/ns/<ns>/sa/api.
path "__PKI__/issue/__PREFIX__-api" {
  capabilities = ["update"]
}
