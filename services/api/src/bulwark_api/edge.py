"""The outermost layer of every response: body-size limit, security headers, and a generic
500 (with the trace id as correlation id) for anything unhandled. Pure ASGI, so it also
covers error responses and costs no extra task per request."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bulwark_api.docs import DOCS_CSP
from bulwark_api.problems import PROBLEM_JSON, status_title, trace_id

log = logging.getLogger("bulwark.api")

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI passes it through while reading a body (any other error
    there becomes a 400) and the problem handler answers 413."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, hsts_max_age: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        base = [
            (b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-resource-policy", b"same-origin"),
            # Nothing api answers may be cached by intermediaries or browsers.
            (b"cache-control", b"no-store"),
        ]
        # Built once: the headers every response gets (unless the app set them itself).
        self.strict = (*base, (b"content-security-policy", STRICT_CSP.encode()))
        self.docs = (*base, (b"content-security-policy", DOCS_CSP.encode()))
        self.names = frozenset(name for name, _ in self.strict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = self.docs if path == "/docs" or path.startswith("/docs/") else self.strict
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                # ASGI header names are lowercase: only ours are looked for, no copies made.
                present = {k for k, _ in headers if k in self.names}
                headers += [h for h in extra if h[0] not in present] if present else extra
                message = {**message, "headers": headers}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await self._problem(send_with_headers, 413, "request body too large")
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not started:
                await self._problem(send_with_headers, 413, "request body too large")
        except Exception:
            log.exception("unhandled error", extra={"path": path})
            if not started:
                await self._problem(
                    send_with_headers,
                    500,
                    "internal error; quote the correlation id when reporting it",
                    correlation_id=trace_id(),
                )

    @staticmethod
    async def _problem(send: Send, status: int, detail: str, **extra: Any) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": status_title(status),
                "status": status,
                "detail": detail,
                **extra,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
