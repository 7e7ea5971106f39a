from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class IssueTokenRequest(_message.Message):
    __slots__ = ("client_ip", "password", "scope", "username")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    scope: str
    client_ip: str
    def __init__(
        self,
        username: str | None = ...,
        password: str | None = ...,
        scope: str | None = ...,
        client_ip: str | None = ...,
    ) -> None: ...

class RefreshTokenRequest(_message.Message):
    __slots__ = ("client_ip", "refresh_token", "scope")
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    refresh_token: str
    scope: str
    client_ip: str
    def __init__(
        self,
        refresh_token: str | None = ...,
        scope: str | None = ...,
        client_ip: str | None = ...,
    ) -> None: ...

class TokenResponse(_message.Message):
    __slots__ = ("access_token", "expires_in", "refresh_token", "scope", "token_type")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    scope: str
    def __init__(
        self,
        access_token: str | None = ...,
        token_type: str | None = ...,
        expires_in: int | None = ...,
        refresh_token: str | None = ...,
        scope: str | None = ...,
    ) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("client_ip", "token", "token_type_hint")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_HINT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_type_hint: str
    client_ip: str
    def __init__(
        self,
        token: str | None = ...,
        token_type_hint: str | None = ...,
        client_ip: str | None = ...,
    ) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetJwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Jwk(_message.Message):
    __slots__ = ("alg", "crv", "kid", "kty", "use", "x", "y")
    KTY_FIELD_NUMBER: _ClassVar[int]
    CRV_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    USE_FIELD_NUMBER: _ClassVar[int]
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str
    def __init__(
        self,
        kty: str | None = ...,
        crv: str | None = ...,
        x: str | None = ...,
        y: str | None = ...,
        kid: str | None = ...,
        alg: str | None = ...,
        use: str | None = ...,
    ) -> None: ...

class GetJwksResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[Jwk]
    def __init__(self, keys: _Iterable[Jwk | _Mapping] | None = ...) -> None: ...
