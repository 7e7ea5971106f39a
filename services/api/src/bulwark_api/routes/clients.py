"""OAuth2 clients (service accounts, RFC 6749 4.4), registered by admins; users owns them.
The secret is shown once, in the answer to the registration. Their tokens come from the
client_credentials grant on /v1/auth/token (clientcreds.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StringConstraints

from bulwark.users.v1 import users_pb2
from bulwark_api.deps import AdminClaims, BackendsDep, ClientIP
from bulwark_api.jsonout import created_secret
from bulwark_api.problems import Problem, call_backend, problem_responses
from bulwark_api.schemas import Strict
from bulwark_common.scopes import CLIENT_SCOPES

router = APIRouter(tags=["clients"])
ClientScope = Literal["items:read", "items:write"]
assert set(get_args(ClientScope)) == CLIENT_SCOPES


class ClientCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    scopes: Annotated[list[ClientScope], Field(min_length=1, max_length=8)]


class ClientCreated(BaseModel):
    client_id: str
    client_secret: str
    name: str
    scopes: list[str]


class ClientOut(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    created_at: datetime


class ClientList(BaseModel):
    items: list[ClientOut]


@router.post(
    "/v1/clients",
    status_code=201,
    response_model=ClientCreated,
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
    summary="Register an OAuth2 client (the secret is in this answer only)",
)
async def create_client(
    body: ClientCreate, claims: AdminClaims, backends: BackendsDep, ip: ClientIP, response: Response
) -> Response:
    reply = await call_backend(
        backends.users.CreateClient(
            users_pb2.CreateClientRequest(
                name=body.name, scopes=sorted(set(body.scopes)), actor_id=claims.sub, client_ip=ip
            )
        )
    )
    out = ClientCreated(
        client_id=reply.client.client_id,
        client_secret=reply.client_secret,
        name=reply.client.name,
        scopes=list(reply.client.scopes),
    )
    return created_secret(out, response, f"/v1/clients/{out.client_id}")


@router.get(
    "/v1/clients",
    response_model=ClientList,
    responses=problem_responses(401, 403, 429, 503),
    summary="List the OAuth2 clients (never their secrets)",
)
async def list_clients(_: AdminClaims, backends: BackendsDep) -> ClientList:
    reply = await call_backend(backends.users.ListClients(users_pb2.ListClientsRequest()))
    return ClientList(
        items=[
            ClientOut(
                client_id=c.client_id,
                name=c.name,
                scopes=list(c.scopes),
                created_at=c.created_at.ToDatetime(tzinfo=UTC),
            )
            for c in reply.items
        ]
    )


@router.delete(
    "/v1/clients/{client_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="Delete an OAuth2 client: its tokens are refused from the next request on",
)
async def delete_client(
    client_id: uuid.UUID, claims: AdminClaims, backends: BackendsDep, ip: ClientIP
) -> Response:
    await call_backend(
        backends.users.DeleteClient(
            users_pb2.DeleteClientRequest(
                client_id=str(client_id), actor_id=claims.sub, client_ip=ip
            )
        ),
        not_found=Problem(404, "client not found"),
    )
    return Response(status_code=204)
