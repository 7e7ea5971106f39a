"""The users calls auth needs, over a deadline-bound channel."""

from __future__ import annotations

from typing import Any, cast

import grpc

from bulwark.users.v1 import users_pb2, users_pb2_grpc


class UsersUnavailable(Exception):
    """users did not answer usefully (down, deadline, internal error)."""


class UsersClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = users_pb2_grpc.UsersServiceStub(channel)

    def verify_credentials(self, username: str, password: str, client_ip: str) -> Any | None:
        """The user when the credentials are valid for an enabled account, else None."""
        try:
            resp = self._stub.VerifyCredentials(
                users_pb2.VerifyCredentialsRequest(
                    username=username, password=password, client_ip=client_ip
                )
            )
        except grpc.RpcError as exc:
            raise UsersUnavailable(_code_name(exc)) from None
        if not resp.ok or not resp.HasField("user") or resp.user.disabled:
            return None
        return resp.user

    def verify_client(self, client_id: str, secret: str, client_ip: str) -> Any | None:
        """The OAuth2 client when the id and secret match, else None."""
        try:
            resp = self._stub.VerifyClientCredentials(
                users_pb2.VerifyClientCredentialsRequest(
                    client_id=client_id, client_secret=secret, client_ip=client_ip
                )
            )
        except grpc.RpcError as exc:
            raise UsersUnavailable(_code_name(exc)) from None
        return resp.client if resp.ok and resp.HasField("client") else None

    def get_user(self, user_id: str) -> Any | None:
        """The user, or None when it no longer exists."""
        try:
            return self._stub.GetUser(users_pb2.GetUserRequest(id=user_id))
        except grpc.RpcError as exc:
            if _code(exc) == grpc.StatusCode.NOT_FOUND:
                return None
            raise UsersUnavailable(_code_name(exc)) from None


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return cast(grpc.StatusCode, code()) if callable(code) else None


def _code_name(exc: grpc.RpcError) -> str:
    code = _code(exc)
    return code.name if code is not None else "unknown"
