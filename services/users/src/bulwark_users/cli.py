"""`bulwark-users [serve|migrate|create-admin]`."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from bulwark_common.grpcio import serve_service
from bulwark_common.identity import current_caller
from bulwark_common.logging import audit, setup_logging
from bulwark_common.runtime import Runtime
from bulwark_common.settings import load_settings
from bulwark_common.telemetry import setup_tracing
from bulwark_users.accounts import Conflict, FieldError, create_user
from bulwark_users.enduser import EndUserInterceptor, EndUserTokens, PublicKeys
from bulwark_users.models import MIGRATIONS
from bulwark_users.passwords import Passwords
from bulwark_users.service import UsersServicer
from bulwark_users.settings import UsersSettings

PROGRAM = "bulwark-users"
ADMIN_ROLES = ("admin", "user")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Bulwark users service (gRPC)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve gRPC (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    admin = sub.add_parser(
        "create-admin",
        help="create an administrator; the password is read from stdin",
        description="Prompts twice for the password on a terminal; otherwise reads one line "
        "from stdin, so it never appears in argv or the environment.",
    )
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", required=True)
    args = parser.parse_args(argv)

    settings = load_settings(UsersSettings, PROGRAM)
    setup_logging("users", settings.log_level)
    runtime = Runtime.start(
        settings,
        service="users",
        program=PROGRAM,
        database_url=settings.database_url,
        identity=args.command in (None, "serve"),
    )
    try:
        if args.command == "migrate":
            _migrate(settings, runtime)
        elif args.command == "create-admin":
            sys.exit(_create_admin(settings, runtime, args.username, args.email))
        else:
            _serve(settings, runtime)
    finally:
        runtime.close()


def _passwords(settings: UsersSettings) -> Passwords:
    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_cost_kib=settings.argon2_memory_cost_kib,
        parallelism=settings.argon2_parallelism,
        max_concurrent=settings.argon2_max_concurrent,
    )


def _migrate(settings: UsersSettings, runtime: Runtime) -> None:
    runtime.migrate(MIGRATIONS, settings.database_url, settings.data_dir)


def _read_password() -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            return None
        return first
    # Piped: exactly one line, without its line ending; spaces are part of the password.
    return sys.stdin.readline().rstrip("\r\n")


def _create_admin(settings: UsersSettings, runtime: Runtime, username: str, email: str) -> int:
    password = _read_password()
    if password is None:
        print(f"{PROGRAM}: passwords do not match", file=sys.stderr)
        return 1
    logging.getLogger("alembic").setLevel(logging.WARNING)  # keep the output to the point
    if runtime.vault is None:  # with Vault the schema is the migrate job's business
        _migrate(settings, runtime)
    db = runtime.database(settings.database_url, settings.data_dir)
    try:
        user = create_user(
            db,
            _passwords(settings),
            username=username,
            email=email,
            password=password,
            roles=ADMIN_ROLES,
        )
    except (FieldError, Conflict) as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    audit("user.created", user_id=user.id, username=user.username, roles=user.roles, actor_id="cli")
    print(f"created admin {user.username} ({user.id})")
    return 0


def _serve(settings: UsersSettings, runtime: Runtime) -> None:
    setup_tracing("users")
    if settings.run_migrations_on_startup:
        _migrate(settings, runtime)
    db = runtime.database(settings.database_url, settings.data_dir)
    redis_client = runtime.redis(settings.redis_url)
    servicer = UsersServicer(db, _passwords(settings), redis_client, settings.redis_prefix)
    interceptors = []
    if runtime.vault is not None:
        # users checks the end user behind api's calls itself, with auth's public keys.
        tokens = EndUserTokens(
            PublicKeys(runtime.vault),
            issuer=settings.issuer,
            audience=settings.audience,
            api_keys=servicer.api_keys.claims,
        )
        interceptors.append(EndUserInterceptor(tokens, lambda _context: current_caller()))

    def redis_ping() -> None:
        redis_client.ping()

    def stop() -> None:
        servicer.close()
        db.dispose()
        redis_client.close()

    serve_service(
        settings,
        name="users",
        register=servicer.register,
        checks={"database": db.ping, "redis": redis_ping, "vault": runtime.vault_check},
        on_stop=stop,
        tls=runtime.tls,
        interceptors=interceptors,
    )


if __name__ == "__main__":
    main()
