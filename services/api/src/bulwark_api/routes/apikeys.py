"""A user's API keys (`bwk_...`, for scripts): create, list, delete. users owns them; the
key is shown once, in the answer to its creation. Created only with a person's access token
(not with another key, not by an OAuth2 client), with scopes no wider than that token's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StringConstraints

from bulwark.users.v1 import users_pb2
from bulwark_api.deps import BackendsDep, ClientIP, require_scope
from bulwark_api.jsonout import created_secret
from bulwark_api.problems import Problem, call_backend, problem_responses
from bulwark_api.schemas import Strict
from bulwark_api.tokens import Claims
from bulwark_common.apikeys import MAX_API_KEY_DAYS
from bulwark_common.scopes import PROFILE_READ, PROFILE_WRITE, SCOPES

router = APIRouter(tags=["api-keys"])
ProfileReader = Annotated[Claims, require_scope(PROFILE_READ)]
ProfileWriter = Annotated[Claims, require_scope(PROFILE_WRITE)]
Scope = Literal[
    "items:read", "items:write", "items:admin", "profile:read", "profile:write", "users:admin"
]
assert set(get_args(Scope)) == set(SCOPES)  # one list of scopes


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=8)]
    # Required and capped; fractions allowed (0.5 = 12 hours).
    expires_in_days: Annotated[float, Field(gt=0, le=MAX_API_KEY_DAYS)]


class ApiKeyCreated(BaseModel):
    id: str
    name: str
    key: str
    scopes: list[str]
    expires_at: datetime


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


def _person(claims: Claims) -> None:
    if claims.client_id is not None:
        raise Problem(403, "OAuth2 clients have no API keys")


def _out(key: users_pb2.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=key.created_at.ToDatetime(tzinfo=UTC),
        expires_at=key.expires_at.ToDatetime(tzinfo=UTC),
        last_used_at=key.last_used_at.ToDatetime(tzinfo=UTC)
        if key.HasField("last_used_at")
        else None,
    )


@router.post(
    "/v1/users/me/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problem_responses(400, 401, 403, 409, 413, 422, 429, 503),
    summary="Create an API key (the key is in this answer only)",
)
async def create_key(
    body: ApiKeyCreate,
    claims: ProfileWriter,
    backends: BackendsDep,
    ip: ClientIP,
    response: Response,
) -> Response:
    _person(claims)
    if claims.key_id is not None:
        raise Problem(403, "API keys cannot create API keys: use an access token")
    wider = set(body.scopes) - claims.scopes
    if wider:
        raise Problem(403, f"scopes beyond your token's: {' '.join(sorted(wider))}")
    seconds = max(1, round(body.expires_in_days * 86400))
    reply = await call_backend(  # 409: too many live keys
        backends.users.CreateApiKey(
            users_pb2.CreateApiKeyRequest(
                user_id=claims.sub,
                name=body.name,
                scopes=sorted(set(body.scopes)),
                expires_in_seconds=seconds,
                client_ip=ip,
            )
        )
    )
    out = _out(reply.key)
    created = ApiKeyCreated(
        id=out.id, name=out.name, key=reply.secret, scopes=out.scopes, expires_at=out.expires_at
    )
    return created_secret(created, response, f"/v1/users/me/api-keys/{out.id}")


@router.get(
    "/v1/users/me/api-keys",
    response_model=ApiKeyList,
    responses=problem_responses(401, 403, 429, 503),
    summary="List your API keys (never the keys themselves)",
)
async def list_keys(claims: ProfileReader, backends: BackendsDep) -> ApiKeyList:
    _person(claims)
    reply = await call_backend(
        backends.users.ListApiKeys(users_pb2.ListApiKeysRequest(user_id=claims.sub))
    )
    return ApiKeyList(items=[_out(k) for k in reply.items])


@router.delete(
    "/v1/users/me/api-keys/{key_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="Delete (revoke) an API key: refused from the next request on",
)
async def delete_key(
    key_id: uuid.UUID, claims: ProfileWriter, backends: BackendsDep, ip: ClientIP
) -> Response:
    _person(claims)
    await call_backend(
        backends.users.DeleteApiKey(
            users_pb2.DeleteApiKeyRequest(user_id=claims.sub, id=str(key_id), client_ip=ip)
        ),
        not_found=Problem(404, "API key not found"),
    )
    return Response(status_code=204)
