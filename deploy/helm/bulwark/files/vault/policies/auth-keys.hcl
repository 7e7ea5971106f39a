# Policy __PREFIX__-auth-keys: the operator role behind `bulwark-auth rotate-keys`. It may
# read and write auth's signing keys (check-and-set) and nothing else.

path "__KV__/data/__PREFIX__/auth/signing-keys" {
  capabilities = ["create", "read", "update"]
}
path "__KV__/metadata/__PREFIX__/auth/signing-keys" {
  capabilities = ["read"]
}

# The public half of the same keys, for users' own token checks.
path "__KV__/data/__PREFIX__/auth/jwks" {
  capabilities = ["create", "read", "update"]
}
