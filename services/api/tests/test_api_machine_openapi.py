"""The OpenAPI document names both machine credentials: the OAuth2 scheme's
clientCredentials flow and the `ApiKey` bearer scheme on every secured operation."""

from __future__ import annotations

from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings


def test_security_schemes_cover_machines() -> None:
    doc = create_app(ApiSettings(docs_enabled=True)).openapi()
    schemes = doc["components"]["securitySchemes"]
    [oauth] = [s for s in schemes.values() if s["type"] == "oauth2"]
    flows = oauth["flows"]
    assert flows["password"]["tokenUrl"] == flows["clientCredentials"]["tokenUrl"]
    assert set(flows["clientCredentials"]["scopes"]) == {"items:read", "items:write"}
    assert schemes["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "bwk_ API key",
        "description": schemes["ApiKey"]["description"],
    }
    secured = [
        op
        for path in doc["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and op.get("security")
    ]
    assert secured
    for op in secured:
        [api_key] = [req["ApiKey"] for req in op["security"] if "ApiKey" in req]
        [oauth_scopes] = [v for req in op["security"] for k, v in req.items() if k != "ApiKey"]
        assert api_key == sorted(oauth_scopes)
    assert "/v1/users/me/api-keys" in doc["paths"] and "/v1/clients/{client_id}" in doc["paths"]


def test_bearer_header_is_read_as_oauth2_password_bearer_reads_it() -> None:
    from fastapi import Request

    from bulwark_api.deps import bearer_token

    def token(value: str | None) -> str | None:
        headers = [] if value is None else [(b"authorization", value.encode())]
        return bearer_token(Request({"type": "http", "headers": headers}))

    assert token("Bearer abc") == "abc"
    assert token("bearer abc") == "abc"  # the scheme is case-insensitive
    assert token(None) is None
    assert token("Basic dTpw") is None
    assert token("Bearer") is None
    assert token("Bearerabc") is None
