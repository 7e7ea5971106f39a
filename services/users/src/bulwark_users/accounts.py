"""Account rules and writes shared by the gRPC service and the CLI. Errors carry the field
they are about; callers turn them into gRPC statuses or exit messages."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bulwark_common.db import Database
from bulwark_common.scopes import DEFAULT_ROLES, ROLES
from bulwark_users.models import User, utcnow
from bulwark_users.passwords import Passwords, PolicyError, check_policy

KNOWN_ROLES = frozenset(ROLES)
_USERNAME = re.compile(r"[a-z0-9._-]{3,32}")


class FieldError(ValueError):
    """A request field is invalid: str() is "<field>: <reason>" and never quotes a secret."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Conflict(Exception):
    """The username or email belongs to another account."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already taken")
        self.field = field


def normalize_username(raw: str) -> str:
    name = raw.lower()
    # ASCII check on the raw value: some non-ASCII letters lower-case to ASCII (KELVIN SIGN
    # becomes "k"); fullmatch, so no character is silently dropped.
    if not raw.isascii() or not _USERNAME.fullmatch(name):
        raise FieldError("username", "must be 3-32 characters of a-z, 0-9, '.', '_' or '-'")
    return name


def normalize_email(raw: str) -> str:
    if not raw:
        raise FieldError("email", "is required")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError("email", str(exc)) from None
    return result.normalized.lower()


def normalize_roles(raw: Iterable[str], *, default: tuple[str, ...] | None = None) -> list[str]:
    roles = sorted(set(raw))
    if not roles:
        if default is None:
            raise FieldError("roles", "must name at least one role")
        return list(default)
    unknown = [r for r in roles if r not in KNOWN_ROLES]
    if unknown:
        known = ", ".join(sorted(ROLES))
        raise FieldError("roles", f"unknown role {unknown[0]!r} (known: {known})")
    return roles


def check_password(password: str, *, username: str, email: str) -> None:
    try:
        check_policy(password, context=(username, email))
    except PolicyError as exc:
        raise FieldError("password", str(exc)) from None


def parse_id(raw: str) -> str | None:
    """The canonical form of a user id, or None when it cannot be one."""
    if len(raw) != 36:
        return None
    try:
        parsed = uuid.UUID(raw)
    except ValueError:
        return None
    canonical = str(parsed)
    return canonical if canonical == raw.lower() else None


def conflict_field(exc: IntegrityError) -> str | None:
    """Which unique column a failed insert/update hit: the constraint name on PostgreSQL,
    the "UNIQUE constraint failed: users.<col>" text on SQLite."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    text = name if isinstance(name, str) else str(exc.orig).split("\n", 1)[0]
    for field in ("username", "email"):
        if text in (f"uq_users_{field}", f"UNIQUE constraint failed: users.{field}"):
            return field
    return None


def create_user(
    db: Database,
    passwords: Passwords,
    *,
    username: str,
    email: str,
    password: str,
    roles: Iterable[str] = (),
) -> User:
    """Validate, hash and insert one account. Raises FieldError or Conflict."""
    username = normalize_username(username)
    email = normalize_email(email)
    role_list = normalize_roles(roles, default=DEFAULT_ROLES)
    check_password(password, username=username, email=email)
    # Hash before the transaction: no connection is held for the ~50 ms argon2 takes.
    password_hash = passwords.hash(password)
    now = utcnow()
    user = User(
        id=str(uuid.uuid4()),
        username=username,
        email=email,
        password_hash=password_hash,
        roles=role_list,
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    try:
        with db.transaction() as session:
            # The friendly check; the unique constraints settle races (IntegrityError).
            for field, value in (("username", username), ("email", email)):
                column = User.username if field == "username" else User.email
                if session.scalar(select(User.id).where(column == value)) is not None:
                    raise Conflict(field)
            session.add(user)
    except IntegrityError as exc:
        raise Conflict(conflict_field(exc) or "username") from None
    return user
