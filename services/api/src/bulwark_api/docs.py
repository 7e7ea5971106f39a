"""/docs: Swagger UI served from api itself, assets from the pinned `fastapi-offline` wheel
(FastAPI's default page loads them from a CDN, which the CSP and offline networks block).
Only mounted when API_DOCS_ENABLED (default: on in dev, off in production)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from bulwark_api.problems import Problem

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
    """Mount /docs (the OpenAPI document it shows is completed in openapi.py)."""
    app.include_router(router)
