"""`bulwark-api [serve|migrate]`."""

from __future__ import annotations

import argparse
import logging

from bulwark_api import db, serving
from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings
from bulwark_common.logging import setup_logging
from bulwark_common.settings import load_settings
from bulwark_common.telemetry import setup_tracing

PROGRAM = "bulwark-api"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Bulwark public HTTP edge")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve HTTP (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)

    settings = load_settings(ApiSettings, PROGRAM)
    setup_logging("api", settings.log_level)
    if args.command == "migrate":
        db.migrate(settings.database_url, settings.data_dir)
        return
    setup_tracing("api")
    if settings.run_migrations_on_startup:
        db.migrate(settings.database_url, settings.data_dir)
    logging.getLogger("bulwark.api").info(
        "listening", extra={"address": f"http://{settings.host}:{settings.port}"}
    )
    serving.run(create_app(settings), settings)


if __name__ == "__main__":
    main()
