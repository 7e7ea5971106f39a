"""The public JSON shapes. Unknown fields are rejected everywhere (extra="forbid")."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from bulwark_common.scopes import Role

Username = Annotated[
    str, StringConstraints(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
]
Password = Annotated[str, StringConstraints(min_length=12, max_length=128)]


# NUL is refused by PostgreSQL text columns (a 500 deep inside); lone surrogates cannot be
# encoded. Neither belongs in any text field: refused at the edge.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def _all_storable(value: Any) -> bool:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return all(_all_storable(k) and _all_storable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_all_storable(v) for v in value)
    return True


class Strict(BaseModel):
    """Request bodies: unknown fields refused, strict JSON types ("yes" is no boolean, 1 is
    no string), and no text the database cannot store."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if not _all_storable(data):
            raise ValueError("text must not contain NUL or unpaired surrogate characters")
        return data


class UserCreate(Strict):
    username: Username
    email: EmailStr
    password: Password


class UserOut(BaseModel):
    id: str
    username: str
    email: str
    roles: list[str]
    disabled: bool
    created_at: datetime


class UserList(BaseModel):
    items: list[UserOut]
    total: int


class MeUpdate(Strict):
    email: EmailStr | None = None
    password: Password | None = None
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class AdminUserUpdate(Strict):
    roles: Annotated[list[Role], Field(max_length=8)] | None = None
    disabled: bool | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    # Absent in a browser session (it is in the cookie) and for client_credentials
    # (RFC 6749 4.4.3: no refresh token).
    refresh_token: str | None = None
    scope: str


class OAuthErrorOut(BaseModel):
    error: Literal[
        "invalid_request",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_client",
        "unauthorized_client",
    ]
    error_description: str | None = None


class Jwk(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str


class Jwks(BaseModel):
    keys: list[Jwk]


class ProblemOut(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


ItemName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ItemDescription = Annotated[str, StringConstraints(max_length=2000)]


class ItemCreate(Strict):
    name: ItemName
    description: ItemDescription | None = None


class ItemUpdate(Strict):
    """Partial update: only the fields sent change; name cannot be null."""

    name: ItemName = None  # type: ignore[assignment]
    description: ItemDescription | None = None

    @model_validator(mode="after")
    def _name_not_null(self) -> ItemUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class ItemOut(BaseModel):
    id: str
    name: str
    description: str | None
    owner_id: str
    created_at: datetime
    updated_at: datetime


class ItemList(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None
