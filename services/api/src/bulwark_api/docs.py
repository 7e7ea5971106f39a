"""/docs: Swagger UI served from api itself, assets from the pinned `fastapi-offline` wheel
(FastAPI's default page loads them from a CDN, which the CSP and offline networks block).
Only mounted when API_DOCS_ENABLED (default: on in dev, off in production)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse

from bulwark_api.problems import PROBLEM_JSON, Problem

# The docs page and its assets: scripts, styles and images from api only, no inline script,
# XHR to api only (the spec, the token endpoint, "Try it out").
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

_OFFLINE = Path(str(importlib.resources.files("fastapi_offline") / "static"))
_OURS = Path(str(importlib.resources.files("bulwark_api") / "static"))
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_OFFLINE / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_OFFLINE / "swagger-ui.css", "text/css"),
    "favicon.png": (_OFFLINE / "favicon.png", "image/png"),
    "init.js": (_OURS / "docs-init.js", "text/javascript"),
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Bulwark API - docs</title>
<link rel="icon" href="docs/assets/favicon.png">
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/init.js"></script>
</body>
</html>
"""

PROBLEM_REF = "#/components/schemas/ProblemOut"
# Any bearer token: an access token, or an API key (`bwk_…`) pasted in "Authorize".
BEARER_SCHEME = "bearerAuth"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> FileResponse:
    found = ASSETS.get(name)
    if found is None:
        raise Problem(404)
    path, media_type = found
    # The assets change only with the pinned wheel: browsers may keep them for an hour.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


def install(app: FastAPI) -> None:
    """Mount /docs, and complete the OpenAPI document: a plain bearer scheme beside OAuth2 on
    every protected route, and the 415 of every JSON body."""
    app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            with_bearer(schema)
            with_media_type_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_bearer(schema: dict[str, Any]) -> None:
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "Any bearer credential: an access token, or an API key (bwk_…)",
    }
    for item in schema.get("paths", {}).values():
        for op in item.values():
            security = op.get("security") if isinstance(op, dict) else None
            if security and not any(BEARER_SCHEME in s for s in security):
                op["security"] = [*security, {BEARER_SCHEME: []}]


def with_media_type_errors(schema: dict[str, Any]) -> None:
    """Every operation taking a JSON body may answer 415 (problems.invalid_request)."""
    for item in schema.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            body = op.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                op.setdefault("responses", {}).setdefault(
                    "415",
                    {
                        "description": "The body is not application/json",
                        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
                    },
                )
