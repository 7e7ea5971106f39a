"""JSON-lines logs carrying the current trace and span ids, with secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

# Field names whose values never reach a log line, whatever the caller passes.
SECRET_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "secret",
        "client_secret",
        "private_key",
    }
)
# Bearer tokens and JWTs that slip into free text.
_SECRET_TEXT = re.compile(r"(Bearer\s+)[\w\-.~+/]+=*|eyJ[\w-]+\.[\w-]+\.[\w-]*", re.IGNORECASE)
REDACTED = "[REDACTED]"


def redact_text(text: str) -> str:
    return _SECRET_TEXT.sub(lambda m: (m.group(1) or "") + REDACTED, text)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.service = self.service
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI duplicate of the message
        for key in SECRET_KEYS & record.__dict__.keys():
            setattr(record, key, REDACTED)
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, grpc's) to one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True


_audit = logging.getLogger("bulwark.audit")


def audit(event: str, **fields: Any) -> None:
    """One audit event: who did what from where; the trace id is added by the filter."""
    clean = {k: (REDACTED if k in SECRET_KEYS else v) for k, v in fields.items()}
    _audit.info(event, extra={"audit": True, "event": event, **clean})
