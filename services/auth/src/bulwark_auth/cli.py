"""bulwark-auth [serve | migrate | rotate-keys]."""

from __future__ import annotations

import argparse
import functools
import logging

from bulwark_auth import keysource
from bulwark_auth.keys import Keyring, SigningKeyError, load_keyring, rotate_keys
from bulwark_auth.models import MIGRATIONS
from bulwark_auth.service import AuthServicer, add_to_server
from bulwark_auth.settings import AuthSettings
from bulwark_common import grpcio, metrics
from bulwark_common.logging import setup_logging
from bulwark_common.runtime import Runtime
from bulwark_common.settings import load_settings
from bulwark_common.telemetry import setup_tracing
from bulwark_common.vault import Vault

PROGRAM = "bulwark-auth"
# Longer than auth's key poll plus api's JWKS refresh (10 s each by default), with margin.
DEFAULT_PUBLISH_SECONDS = 30.0
log = logging.getLogger("bulwark.auth")


def _settings() -> AuthSettings:
    settings = load_settings(AuthSettings, PROGRAM)
    setup_logging("auth", settings.log_level)
    return settings


def _runtime(settings: AuthSettings, *, identity: bool = True) -> Runtime:
    return Runtime.start(
        settings,
        service="auth",
        program=PROGRAM,
        database_url=settings.database_url,
        identity=identity,
    )


def _keys(settings: AuthSettings, runtime: Runtime) -> tuple[Keyring, keysource.KeyWatcher | None]:
    """From Vault (and watched for rotations), or from files in dev without Vault."""
    try:
        if runtime.vault is None:
            return load_keyring(settings.key_dir, settings.environment), None
        keyring, version = keysource.load(runtime.vault)
    except SigningKeyError as exc:
        raise SystemExit(f"{PROGRAM}: {exc}") from None
    watcher = keysource.KeyWatcher(
        runtime.vault, keyring, version, settings.signing_keys_poll_seconds
    )
    watcher.start()
    return keyring, watcher


def serve() -> None:
    settings = _settings()
    runtime = _runtime(settings)
    setup_tracing("auth")
    if settings.run_migrations_on_startup:
        runtime.migrate(MIGRATIONS, settings.database_url, settings.data_dir)
    db = runtime.database(settings.database_url, settings.data_dir)
    keyring, watcher = _keys(settings, runtime)
    redis_client = runtime.redis(settings.redis_url)
    users_channel = grpcio.channel(
        settings.users_target,
        settings.grpc_deadline_seconds,
        tls=runtime.tls,
        server_name="users" if runtime.tls is not None else None,
    )
    servicer = AuthServicer(settings, db, keyring, redis_client, users_channel)
    metrics.track_accounts_in_backoff(servicer.throttle.accounts_in_backoff)

    def redis_check() -> None:
        redis_client.ping()

    def on_stop() -> None:
        if watcher is not None:
            watcher.stop()
        users_channel.close()
        redis_client.close()
        db.dispose()
        runtime.close()

    grpcio.serve_service(
        settings,
        name="auth",
        register=functools.partial(add_to_server, servicer),
        # Only auth's own dependencies. users is deliberately absent: if its outage made
        # auth NOT_SERVING, orchestrators would pull auth too (cascading failure), although
        # JWKS and revocation keep working; calls that need users answer UNAVAILABLE.
        checks={
            "database": db.ping,
            "redis": redis_check,
            "signing-keys": keyring.self_test,
            "vault": runtime.vault_check,
        },
        on_stop=on_stop,
        tls=runtime.tls,
    )


def migrate_command() -> None:
    settings = _settings()
    runtime = _runtime(settings, identity=False)
    try:
        runtime.migrate(MIGRATIONS, settings.database_url, settings.data_dir)
    finally:
        runtime.close()
    log.info("migrations applied")


def rotate_keys_command(publish_seconds: float | None, if_missing: bool) -> None:
    """With Vault (the auth-keys operator role): two-phase rotation that running servers
    pick up. Without Vault (dev): the key files; restart auth afterwards."""
    settings = _settings()
    if not settings.vault_addr:
        if settings.environment != "dev":
            raise SystemExit(f"{PROGRAM}: VAULT_ADDR is not set (keys live in Vault)")
        try:
            keyring = rotate_keys(settings.key_dir)
        except SigningKeyError as exc:
            raise SystemExit(f"{PROGRAM}: {exc}") from None
        log.info(
            "signing keys rotated; restart auth to use the new key",
            extra={"kid": keyring.current.kid},
        )
        return
    vault = Vault.connect(settings, "auth")
    try:
        wait = (
            publish_seconds
            if publish_seconds is not None
            else (2 * settings.signing_keys_poll_seconds + 1)
        )
        keysource.rotate(vault, wait, only_if_missing=if_missing)
    except SigningKeyError as exc:
        raise SystemExit(f"{PROGRAM}: {exc}") from None
    finally:
        vault.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Bulwark auth service.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve gRPC (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    rotate = sub.add_parser(
        "rotate-keys",
        help="provision or rotate the signing keys (Vault: needs the auth-keys role)",
    )
    rotate.add_argument(
        "--publish-seconds",
        type=float,
        default=None,
        help="how long the next key is published before it signs; must exceed "
        "AUTH_SIGNING_KEYS_POLL_SECONDS + API_JWKS_REFRESH_SECONDS "
        f"(default {DEFAULT_PUBLISH_SECONDS:g})",
    )
    rotate.add_argument(
        "--if-missing", action="store_true", help="only provision a first key when none exists"
    )
    args = parser.parse_args(argv)
    if args.command == "migrate":
        migrate_command()
    elif args.command == "rotate-keys":
        rotate_keys_command(args.publish_seconds, args.if_missing)
    else:
        serve()
