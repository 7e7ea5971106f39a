"""Registration, self-service and admin user management, forwarded to users over gRPC."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from bulwark.users.v1 import users_pb2
from bulwark_api.deps import (
    AdminClaims,
    BackendsDep,
    ClientBucket,
    ClientIP,
    enforce_rate,
    require_scope,
)
from bulwark_api.jsonout import json_response
from bulwark_api.problems import Problem, call_backend, from_rpc, problem_responses
from bulwark_api.schemas import AdminUserUpdate, MeUpdate, UserCreate, UserList, UserOut
from bulwark_api.tokens import Claims
from bulwark_common.scopes import PROFILE_READ, PROFILE_WRITE

router = APIRouter(tags=["users"])
ProfileReader = Annotated[Claims, require_scope(PROFILE_READ)]
ProfileWriter = Annotated[Claims, require_scope(PROFILE_WRITE)]


def user_out(u: users_pb2.User) -> UserOut:
    return UserOut(
        id=u.id,
        username=u.username,
        email=u.email,
        roles=list(u.roles),
        disabled=u.disabled,
        created_at=u.created_at.ToDatetime(tzinfo=UTC),
    )


async def _rate_limit_register(
    response: Response, backends: BackendsDep, bucket: ClientBucket
) -> None:
    await enforce_rate(
        response, backends, backends.settings.register_rate, f"register:{bucket}", "register"
    )


@router.post(
    "/v1/users",
    status_code=201,
    response_model=UserOut,
    responses=problem_responses(400, 409, 413, 422, 429, 503),
    summary="Register an account",
    dependencies=[Depends(_rate_limit_register)],
)
async def register(body: UserCreate, backends: BackendsDep, ip: ClientIP) -> JSONResponse:
    user = await call_backend(
        backends.users.CreateUser(
            users_pb2.CreateUserRequest(
                username=body.username.lower(),
                email=str(body.email),
                password=body.password,
                client_ip=ip,
            )
        )
    )
    return JSONResponse(
        user_out(user).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/users/{user.id}"},
    )


def user_json(u: users_pb2.User) -> dict[str, Any]:
    """UserOut's JSON fields straight from the message, for json_response: the read behind
    GET /v1/users/me skips building and re-validating a model (profiled)."""
    return {
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "roles": list(u.roles),
        "disabled": u.disabled,
        "created_at": u.created_at.ToDatetime(tzinfo=UTC),
    }


@router.get("/v1/users/me", response_model=UserOut, responses=problem_responses(401, 403, 429, 503))
async def get_me(claims: ProfileReader, backends: BackendsDep, response: Response) -> Response:
    return json_response(user_json(await _get(backends, claims.sub, missing=401)), response)


@router.patch(
    "/v1/users/me",
    response_model=UserOut,
    responses=problem_responses(400, 401, 403, 409, 413, 422, 429, 503),
)
async def update_me(
    body: MeUpdate, claims: ProfileWriter, backends: BackendsDep, ip: ClientIP
) -> UserOut:
    if body.email is None and body.password is None:
        raise Problem(422, "nothing to change: give email or password")
    # The email is the recovery channel: taking it over is taking the account over.
    if body.current_password is None:
        raise Problem(422, "current_password is required to change the email or password")
    req = users_pb2.UpdateUserRequest(id=claims.sub, actor_id=claims.sub, client_ip=ip)
    if body.email is not None:
        req.email = str(body.email)
    if body.password is not None:
        req.password = body.password
    req.current_password = body.current_password
    return await _update(backends, req)


@router.get(
    "/v1/users", response_model=UserList, responses=problem_responses(401, 403, 422, 429, 503)
)
async def list_users(
    _: AdminClaims,
    backends: BackendsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UserList:
    reply = await backends.users.ListUsers(users_pb2.ListUsersRequest(limit=limit, offset=offset))
    return UserList(items=[user_out(u) for u in reply.items], total=reply.total)


@router.get(
    "/v1/users/{user_id}",
    response_model=UserOut,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_user(user_id: uuid.UUID, _: AdminClaims, backends: BackendsDep) -> UserOut:
    return user_out(await _get(backends, str(user_id), missing=404))


@router.patch(
    "/v1/users/{user_id}",
    response_model=UserOut,
    # 409: the change would leave no active admin.
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def update_user(
    user_id: uuid.UUID,
    body: AdminUserUpdate,
    claims: AdminClaims,
    backends: BackendsDep,
    ip: ClientIP,
) -> UserOut:
    req = users_pb2.UpdateUserRequest(id=str(user_id), actor_id=claims.sub, client_ip=ip)
    if body.roles is not None:
        req.roles.CopyFrom(users_pb2.RoleList(roles=sorted(set(body.roles))))
    if body.disabled is not None:
        req.disabled = body.disabled
    return await _update(backends, req)


@router.delete(
    "/v1/users/{user_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),  # 409: the last admin
)
async def delete_user(
    user_id: uuid.UUID, claims: AdminClaims, backends: BackendsDep, ip: ClientIP
) -> Response:
    await call_backend(
        backends.users.DeleteUser(
            users_pb2.DeleteUserRequest(id=str(user_id), actor_id=claims.sub, client_ip=ip)
        )
    )
    return Response(status_code=204)


async def _get(backends: BackendsDep, user_id: str, *, missing: int) -> users_pb2.User:
    try:
        user: users_pb2.User = await backends.users.GetUser(users_pb2.GetUserRequest(id=user_id))
        return user
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            # For /me the account vanished under a valid token: the token is worthless.
            raise Problem(missing, "user not found" if missing == 404 else None) from None
        raise from_rpc(exc) from None


async def _update(backends: BackendsDep, req: users_pb2.UpdateUserRequest) -> UserOut:
    return user_out(await call_backend(backends.users.UpdateUser(req)))
