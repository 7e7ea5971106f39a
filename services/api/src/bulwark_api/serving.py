"""Serve the public app and the management app (probes, metrics) from one process, on
two ports; SIGTERM/SIGINT stop both gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from bulwark_api.routes import health
from bulwark_api.server_options import SERVER_OPTIONS
from bulwark_api.settings import ApiSettings


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
        **SERVER_OPTIONS,
    )


class _Server(uvicorn.Server):
    # Signals are handled once, for both servers, in `run`.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(public: FastAPI, settings: ApiSettings, sock: socket.socket | None = None) -> None:
    """`sock`: the public listening socket a worker inherits (workers.py), else bound here."""
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
        public_sockets = None if sock is None else [sock]
        await asyncio.gather(
            servers[0].serve(sockets=public_sockets), *(s.serve() for s in servers[1:])
        )

    # uvicorn's own loop choice (uvloop when installed, as `uvicorn.run` would pick): a plain
    # asyncio.run here cost ~15 % of the request CPU in the selector loop and its transports.
    with asyncio.Runner(loop_factory=servers[0].config.get_loop_factory()) as runner:
        runner.run(serve_all())
