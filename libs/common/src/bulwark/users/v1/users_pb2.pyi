import datetime
from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class User(_message.Message):
    __slots__ = ("created_at", "disabled", "email", "id", "roles", "username")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    username: str
    email: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(
        self,
        id: str | None = ...,
        username: str | None = ...,
        email: str | None = ...,
        roles: _Iterable[str] | None = ...,
        disabled: bool | None = ...,
        created_at: datetime.datetime | _timestamp_pb2.Timestamp | _Mapping | None = ...,
    ) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("email", "password", "roles", "username")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    username: str
    email: str
    password: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(
        self,
        username: str | None = ...,
        email: str | None = ...,
        password: str | None = ...,
        roles: _Iterable[str] | None = ...,
    ) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: str | None = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: int | None = ..., offset: int | None = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[User]
    total: int
    def __init__(
        self, items: _Iterable[User | _Mapping] | None = ..., total: int | None = ...
    ) -> None: ...

class RoleList(_message.Message):
    __slots__ = ("roles",)
    ROLES_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, roles: _Iterable[str] | None = ...) -> None: ...

class UpdateUserRequest(_message.Message):
    __slots__ = (
        "actor_id",
        "client_ip",
        "current_password",
        "disabled",
        "email",
        "id",
        "password",
        "roles",
    )
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    password: str
    current_password: str
    roles: RoleList
    disabled: bool
    actor_id: str
    client_ip: str
    def __init__(
        self,
        id: str | None = ...,
        email: str | None = ...,
        password: str | None = ...,
        current_password: str | None = ...,
        roles: RoleList | _Mapping | None = ...,
        disabled: bool | None = ...,
        actor_id: str | None = ...,
        client_ip: str | None = ...,
    ) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("actor_id", "client_ip", "id")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    id: str
    actor_id: str
    client_ip: str
    def __init__(
        self,
        id: str | None = ...,
        actor_id: str | None = ...,
        client_ip: str | None = ...,
    ) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyCredentialsRequest(_message.Message):
    __slots__ = ("client_ip", "password", "username")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    client_ip: str
    def __init__(
        self,
        username: str | None = ...,
        password: str | None = ...,
        client_ip: str | None = ...,
    ) -> None: ...

class VerifyCredentialsResponse(_message.Message):
    __slots__ = ("ok", "user")
    OK_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    user: User
    def __init__(self, ok: bool | None = ..., user: User | _Mapping | None = ...) -> None: ...
