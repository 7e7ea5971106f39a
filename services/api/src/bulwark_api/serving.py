"""Serve the public app and the management app (probes, metrics) from one process, on
two ports; SIGTERM/SIGINT stop both gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from bulwark_api.routes import health
from bulwark_api.settings import ApiSettings
from bulwark_common import metrics


def management_app(public: FastAPI) -> FastAPI:
    """/healthz, /readyz with details and /metrics; the backends are the public app's."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.public = public
    app.include_router(health.management)
    return app


def _config(app: FastAPI, host: str, port: int, lifespan: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,  # type: ignore[arg-type]
        log_config=None,  # keep our JSON handler
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is honoured only from API_TRUSTED_PROXIES
        server_header=False,
        timeout_graceful_shutdown=10,
    )


class _Server(uvicorn.Server):
    # Signals are handled once, for both servers, in `run`.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(public: FastAPI, settings: ApiSettings) -> None:
    metrics.prepare_multiprocess_dir()  # before any worker starts writing
    servers = [_Server(_config(public, settings.host, settings.port, "auto"))]
    if settings.management_port:
        mgmt = management_app(public)
        servers.append(
            _Server(_config(mgmt, settings.management_host, settings.management_port, "off"))
        )

    def stop(*_: object) -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)

    async def serve_all() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    asyncio.run(serve_all())
