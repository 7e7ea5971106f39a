# Policy __PREFIX__-auth: the auth service's own secrets and nothing else.
# setup.sh substitutes __PREFIX__, __KV__, __PKI__ and __DB__. Token self-renewal and lease
# renewal come from Vault's built-in "default" policy.

# Reads its own KV secrets (signing keys included) but can never write them: only
# __PREFIX__-auth-keys (the rotation command) can.
path "__KV__/data/__PREFIX__/auth/*" {
  capabilities = ["read"]
}
path "__KV__/metadata/__PREFIX__/auth/*" {
  capabilities = ["read"]
}

# Dynamic credentials: runtime (DML), migrations (schema owner) and its Redis ACL user.
path "__DB__/creds/__PREFIX__-auth" {
  capabilities = ["read"]
}
path "__DB__/creds/__PREFIX__-auth-migrate" {
  capabilities = ["read"]
}
path "__DB__/creds/__PREFIX__-auth-redis" {
  capabilities = ["read"]
}

# Its own mTLS identity: the PKI role only allows spiffe://bulwark/ns/<ns>/sa/auth.
path "__PKI__/issue/__PREFIX__-auth" {
  capabilities = ["update"]
}
