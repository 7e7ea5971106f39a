"""bulwark-auth [serve | migrate | rotate-keys]."""

from __future__ import annotations

import argparse
import functools
import logging

from bulwark_auth.keys import SigningKeyError, load_keyring, rotate_keys
from bulwark_auth.models import migrate
from bulwark_auth.service import AuthServicer, add_to_server
from bulwark_auth.settings import AuthSettings
from bulwark_common import grpcio, kv
from bulwark_common.db import Database, database_url
from bulwark_common.logging import setup_logging
from bulwark_common.settings import load_settings
from bulwark_common.telemetry import setup_tracing

PROGRAM = "bulwark-auth"
log = logging.getLogger("bulwark.auth")


def _settings() -> AuthSettings:
    settings = load_settings(AuthSettings, PROGRAM)
    setup_logging("auth", settings.log_level)
    return settings


def serve() -> None:
    settings = _settings()
    setup_tracing("auth")
    db = Database(database_url(settings.database_url, settings.data_dir, "auth"))
    if settings.run_migrations_on_startup:
        migrate(db.url)
    try:
        keyring = load_keyring(settings.key_dir, settings.environment)
    except SigningKeyError as exc:
        raise SystemExit(f"{PROGRAM}: {exc}") from None
    redis_client = kv.client(settings.redis_url)
    users_channel = grpcio.channel(settings.users_target, settings.grpc_deadline_seconds)
    servicer = AuthServicer(settings, db, keyring, redis_client, users_channel)

    def redis_check() -> None:
        redis_client.ping()

    def on_stop() -> None:
        users_channel.close()
        redis_client.close()
        db.dispose()

    grpcio.serve(
        name="auth",
        host=settings.host,
        port=settings.port,
        register=functools.partial(add_to_server, servicer),
        # Only auth's own dependencies. users is deliberately absent: if its outage made
        # auth NOT_SERVING, orchestrators would pull auth too (cascading failure), although
        # JWKS and revocation keep working; calls that need users answer UNAVAILABLE.
        checks={
            "database": db.ping,
            "redis": redis_check,
            "signing-keys": keyring.self_test,
        },
        max_workers=settings.max_workers,
        on_stop=on_stop,
    )


def migrate_command() -> None:
    settings = _settings()
    migrate(database_url(settings.database_url, settings.data_dir, "auth"))
    log.info("migrations applied")


def rotate_keys_command() -> None:
    settings = _settings()
    try:
        keyring = rotate_keys(settings.key_dir)
    except SigningKeyError as exc:
        raise SystemExit(f"{PROGRAM}: {exc}") from None
    previous = keyring.previous.kid if keyring.previous is not None else None
    # Running servers load keys at startup: restart them to sign with the new key.
    log.info(
        "signing keys rotated; restart auth to use the new key",
        extra={"kid": keyring.current.kid, "previous_kid": previous},
    )


COMMANDS = {"serve": serve, "migrate": migrate_command, "rotate-keys": rotate_keys_command}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Bulwark auth service.")
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    COMMANDS[args.command]()
