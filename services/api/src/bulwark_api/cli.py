"""`bulwark-api [serve|migrate]`."""

from __future__ import annotations

import argparse
import logging

from bulwark_api import db, serving, workers
from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings
from bulwark_common import metrics
from bulwark_common.logging import setup_logging
from bulwark_common.runtime import Runtime
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
    if args.command != "migrate" and not workers.inherited():
        # Before any worker writes its metric files (multi-process mode): drop earlier ones.
        metrics.prepare_multiprocess_dir()
        if settings.workers > 1:
            raise SystemExit(workers.supervise(settings))
    runtime = Runtime.start(
        settings,
        service="api",
        program=PROGRAM,
        database_url=settings.database_url,
        identity=args.command != "migrate",
    )
    try:
        if args.command == "migrate":
            runtime.migrate(db.MIGRATIONS, settings.database_url, settings.data_dir)
            return
        _serve(settings, runtime)
    finally:
        runtime.close()


def _serve(settings: ApiSettings, runtime: Runtime) -> None:
    setup_tracing("api")
    if settings.run_migrations_on_startup and workers.is_first():
        runtime.migrate(db.MIGRATIONS, settings.database_url, settings.data_dir)
    logging.getLogger("bulwark.api").info(
        "listening", extra={"address": f"http://{settings.host}:{settings.port}"}
    )
    serving.run(create_app(settings, runtime), settings, workers.inherited_socket())


if __name__ == "__main__":
    main()
