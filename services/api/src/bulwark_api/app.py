"""The FastAPI application, built by a factory from settings (nothing happens at import)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Scope

from bulwark_api import docs, events, openapi, problems
from bulwark_api.backends import Backends
from bulwark_api.edge import EdgeMiddleware
from bulwark_api.instrument import MetricsMiddleware
from bulwark_api.routes import apikeys, clients, health, items, oauth, sessions, users
from bulwark_api.settings import ApiSettings
from bulwark_api.tracectx import TraceContextMiddleware
from bulwark_common import telemetry
from bulwark_common.logging import install_redaction
from bulwark_common.process import freeze_startup_heap
from bulwark_common.runtime import Runtime


def _untraced(scope: Scope) -> bool:
    # Liveness probes would flood the traces; readiness stays traced (it crosses services).
    return bool(scope.get("path") == "/healthz")


def create_app(settings: ApiSettings, runtime: Runtime | None = None) -> FastAPI:
    # Whoever set logging up (the CLI, a test, an embedding server), no secret reaches it.
    install_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends.open(settings, runtime)
        consumer = asyncio.create_task(events.consume_user_events(app.state.backends))
        keys = asyncio.create_task(
            app.state.backends.verifier.keep_fresh(settings.jwks_refresh_seconds)
        )
        freeze_startup_heap()
        try:
            yield
        finally:
            consumer.cancel()
            keys.cancel()
            await app.state.backends.close()

    exporting = telemetry.exporting()
    app = FastAPI(
        title="Bulwark API",
        version="1.0.0",
        description="The public HTTP edge of Bulwark: identity and the items resource.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry when spans are exported: one server span per
        # request, named by route, trace context extracted from the caller (otherwise
        # tracectx.py sets the same context, far cheaper). Not its log records: they would
        # carry exception messages (which may quote secrets) out of our redacting JSON logs.
        telemetry={
            "tracing": exporting,
            "operation_spans": False,  # the server span already names the route
            "metrics": False,
            "logs": False,
            "exclude": _untraced,
        },
        docs_url=None,  # our own /docs (docs.py): assets served locally, strict CSP
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.settings = settings
    problems.install(app)
    openapi.install(app)
    # Routes match in order: the hot resource routes first.
    app.include_router(items.router)
    app.include_router(users.router)
    app.include_router(apikeys.router)
    app.include_router(clients.router)
    app.include_router(oauth.router)
    app.include_router(sessions.router)
    app.include_router(health.router)
    if settings.docs:
        docs.install(app)
    if settings.cors_origins:
        # Only the listed origins; without any, no CORS middleware at all (nothing allowed,
        # and nothing to pay per request).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            # Credentials: the browser-session cookie (read only by the token and logout
            # endpoints, which also check Origin and the X-Bulwark-Session header).
            allow_credentials=True,
            allow_headers=["Authorization", "Content-Type", "X-Bulwark-Session"],
            expose_headers=[
                "Location",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
            ],
            max_age=600,
        )
    # Added last = outermost: its headers and limits apply to every response, errors too.
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hsts_max_age=settings.hsts_max_age_seconds,
    )
    # Outermost but for the trace context: times and counts every answer, the edge's too.
    app.add_middleware(MetricsMiddleware)
    if not exporting:
        app.add_middleware(TraceContextMiddleware)
    return app
