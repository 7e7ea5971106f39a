"""API keys and client secrets: their format, their hash, the cache record, and that logs
never show them (they are recognisable by prefix)."""

from __future__ import annotations

import base64

from bulwark_common import apikeys
from bulwark_common.logging import REDACTED, redact_text


def test_api_keys_and_client_secrets_carry_256_random_bits() -> None:
    for make, prefix in ((apikeys.new_api_key, "bwk_"), (apikeys.new_client_secret, "bwc_")):
        values = {make() for _ in range(100)}
        assert len(values) == 100
        for value in values:
            assert value.startswith(prefix)
            raw = base64.urlsafe_b64decode(value[4:] + "=")
            assert len(raw) == 32


def test_hash_is_sha256_hex_and_lookup_stable() -> None:
    key = apikeys.new_api_key()
    assert apikeys.secret_hash(key) == apikeys.secret_hash(key)
    assert len(apikeys.secret_hash(key)) == 64 and key not in apikeys.secret_hash(key)


def test_record_round_trip() -> None:
    record = apikeys.KeyRecord("k", "u", ("items:read",), ("user",), 1_900_000_000)
    assert apikeys.KeyRecord.loads(record.dumps()) == record
    assert apikeys.KeyRecord.loads(record.dumps().encode()) == record


def test_logs_redact_keys_and_secrets() -> None:
    key, secret = apikeys.new_api_key(), apikeys.new_client_secret()
    line = redact_text(f"used {key} and {secret} in one line")
    assert key not in line and secret not in line and line.count(REDACTED) == 2
