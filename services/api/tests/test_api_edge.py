"""The edge without backends: docs switch, CORS, security headers, body limit, and the
generic 500 with a correlation id. The app is built but its lifespan is not started."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings


def app_with(**settings: object) -> FastAPI:
    return create_app(ApiSettings(**settings))  # type: ignore[arg-type]


def test_docs_are_on_in_dev_and_off_in_production() -> None:
    dev = TestClient(app_with(environment="dev"))
    assert dev.get("/openapi.json").status_code == 200
    docs = dev.get("/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "https:" not in csp and "unsafe" not in csp
    assert 'src="docs/assets/swagger-ui-bundle.js"' in docs.text
    bundle = dev.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert bundle.headers["content-security-policy"] == csp
    assert dev.get("/docs/assets/..%2Fdocs.py").status_code == 404
    assert dev.get("/docs/assets/redoc.standalone.js").status_code == 404
    prod = TestClient(app_with(environment="production"))
    assert prod.get("/openapi.json").status_code == 404
    assert prod.get("/docs").status_code == 404
    assert prod.get("/docs").headers["content-type"].startswith("application/problem+json")
    assert (
        TestClient(app_with(environment="production", docs_enabled=True))
        .get("/openapi.json")
        .status_code
        == 200
    )


@pytest.mark.parametrize(
    ("origin", "allowed"), [("https://app.example", True), ("https://evil.example", False)]
)
def test_cors_preflight_follows_the_allow_list(origin: str, allowed: bool) -> None:
    client = TestClient(app_with(cors_origins=["https://app.example"]))
    r = client.options(
        "/v1/items",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert (r.headers.get("access-control-allow-origin") == origin) is allowed
    assert r.headers["x-frame-options"] == "DENY"


def test_nothing_is_allowed_cross_origin_by_default() -> None:
    r = TestClient(app_with()).options(
        "/v1/items",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_unhandled_errors_are_a_generic_500_with_a_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = app_with()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["strict-transport-security"].startswith("max-age=")
    body = r.json()
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert set(body) >= {"type", "title", "status", "detail", "correlation_id"}
    assert "secret internals" in caplog.text  # the details go to the log only...
    assert "hunter2" not in caplog.text  # ...without the secrets in them


def test_declared_oversized_body_is_refused_before_reading() -> None:
    client = TestClient(app_with(max_body_bytes=1024))
    r = client.post("/v1/items", content=b"x" * 2048, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["status"] == 413


def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bulwark_common.settings import load_settings

    monkeypatch.setenv("API_TOKEN_RATE", "lots")
    with pytest.raises(SystemExit) as exited:
        load_settings(ApiSettings, "bulwark-api")
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bulwark-api: invalid setting API_TOKEN_RATE")
    assert len(err.splitlines()) == 1
