# Policy __PREFIX__-users: the users service's own secrets and nothing else.
# setup.sh substitutes __PREFIX__, __KV__, __PKI__ and __DB__. Token self-renewal and lease
# renewal come from Vault's built-in "default" policy.

# Reads its own KV secrets only.
path "__KV__/data/__PREFIX__/users/*" {
  capabilities = ["read"]
}
path "__KV__/metadata/__PREFIX__/users/*" {
  capabilities = ["read"]
}

# auth's public keys (never the private ones): users verifies the end-user tokens api
# forwards on admin calls itself.
path "__KV__/data/__PREFIX__/auth/jwks" {
  capabilities = ["read"]
}

# Dynamic credentials: runtime (DML), migrations (schema owner) and its Redis ACL user.
path "__DB__/creds/__PREFIX__-users" {
  capabilities = ["read"]
}
path "__DB__/creds/__PREFIX__-users-migrate" {
  capabilities = ["read"]
}
path "__DB__/creds/__PREFIX__-users-redis" {
  capabilities = ["read"]
}

# Its own mTLS identity: the PKI role only allows spiffe://bulwark/ns/<ns>/sa/users.
path "__PKI__/issue/__PREFIX__-users" {
  capabilities = ["update"]
}
