"""The OpenAPI document's security, added to what FastAPI generates (no per-request cost:
nothing here is a dependency):
- each protected operation's OAuth2 scope, from its `require_scope` check (deps.py: the
  check reads the bearer header itself, so FastAPI sees no security dependency);
- the OAuth2 scheme gains the clientCredentials flow (scopes an OAuth2 client may get);
- `ApiKey`: `Authorization: Bearer bwk_...`, accepted wherever an access token is, with the
  same scopes (and where /docs' "Authorize" takes any bearer credential, an access token too);
- the 415 answer of every operation taking a JSON body."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute, iter_route_contexts

from bulwark_api.deps import BEARER, SCOPE_CHECKS
from bulwark_api.problems import PROBLEM_JSON
from bulwark_common.scopes import CLIENT_SCOPES, SCOPES

API_KEY_SCHEME = "ApiKey"
PROBLEM_REF = "#/components/schemas/ProblemOut"


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
        with_scopes(app, doc, schemes)
        for scheme in schemes.values():
            if scheme.get("type") == "oauth2":
                flows = scheme.setdefault("flows", {})
                token_url = flows.get("password", {}).get("tokenUrl", "/v1/auth/token")
                flows["clientCredentials"] = {
                    "tokenUrl": token_url,
                    "scopes": {s: SCOPES[s] for s in sorted(CLIENT_SCOPES)},
                }
        schemes[API_KEY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "bwk_ API key",
            "description": "An API key from POST /v1/users/me/api-keys, sent as a bearer "
            "token; it carries the scopes it was created with (an access token pasted here "
            "works too)",
        }
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                security = operation.get("security") if isinstance(operation, dict) else None
                if security:
                    scopes = sorted({s for req in security for v in req.values() for s in v})
                    security.append({API_KEY_SCHEME: scopes})
        with_media_type_errors(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def with_scopes(app: FastAPI, doc: dict[str, Any], schemes: dict[str, Any]) -> None:
    """The bearer scheme, and on each operation whose dependencies check a scope, that scope
    (what FastAPI writes for a `Security(scheme, scopes=[...])` dependency)."""
    schemes[BEARER.scheme_name] = jsonable_encoder(BEARER.model, by_alias=True, exclude_none=True)
    # As FastAPI's own generator walks them: included routers yield their routes' contexts.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        scopes = sorted(_scopes(route.dependant))
        operations = doc["paths"].get(context.path_format, {})
        for method in (route.methods or ()) if scopes else ():
            if (operation := operations.get(method.lower())) is not None:
                operation["security"] = [{BEARER.scheme_name: scopes}]


def _scopes(dependant: Dependant) -> set[str]:
    found = {SCOPE_CHECKS[dependant.call]} if dependant.call in SCOPE_CHECKS else set()
    for sub in dependant.dependencies:
        found |= _scopes(sub)
    return found


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
