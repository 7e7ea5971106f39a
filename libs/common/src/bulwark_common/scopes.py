"""Roles and OAuth2 scopes: the one definition auth (what a token may carry), users (which
roles exist) and api (what each route needs) all use.

Admin powers need both the `admin` role and an admin scope in the token, so an admin token
narrowed to `items:read` reads only its owner's items (README: Security choices)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Role = Literal["user", "admin"]
USER: Role = "user"
ADMIN: Role = "admin"
ROLES: tuple[Role, ...] = (USER, ADMIN)
DEFAULT_ROLES: tuple[Role, ...] = (USER,)

ITEMS_READ = "items:read"  # list and read one's own items
ITEMS_WRITE = "items:write"  # create, change and delete one's own items
ITEMS_ADMIN = "items:admin"  # with the admin role: every owner's items
PROFILE_READ = "profile:read"  # GET /v1/users/me
PROFILE_WRITE = "profile:write"  # PATCH /v1/users/me
USERS_ADMIN = "users:admin"  # with the admin role: manage every account

# What a route needs, by scope; also the discovery document's scopes_supported.
SCOPES: dict[str, str] = {
    ITEMS_READ: "Read your items",
    ITEMS_WRITE: "Create, change and delete your items",
    ITEMS_ADMIN: "Administrators: every owner's items",
    PROFILE_READ: "Read your account",
    PROFILE_WRITE: "Change your email or password",
    USERS_ADMIN: "Administrators: manage accounts",
}

_USER_SCOPES = frozenset({ITEMS_READ, ITEMS_WRITE, PROFILE_READ, PROFILE_WRITE})
ROLE_SCOPES: dict[str, frozenset[str]] = {
    USER: _USER_SCOPES,
    ADMIN: _USER_SCOPES | {ITEMS_ADMIN, USERS_ADMIN},
}


def allowed_scopes(roles: Iterable[str]) -> frozenset[str]:
    """Union of what the roles grant; unknown roles grant nothing."""
    allowed: set[str] = set()
    for role in roles:
        allowed |= ROLE_SCOPES.get(role, frozenset())
    return frozenset(allowed)


def admin_power(roles: Iterable[str], scopes: Iterable[str], scope: str) -> bool:
    """An admin power is used only by an admin whose token carries its scope."""
    return ADMIN in set(roles) and scope in set(scopes)


# What an OAuth2 client (a service account, not a person) may be given: the resource scopes.
# Profile scopes are about a person's account, admin powers need the admin role (people only).
CLIENT_SCOPES = frozenset({ITEMS_READ, ITEMS_WRITE})
