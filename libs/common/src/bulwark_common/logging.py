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
# Secrets that slip into free text (messages, arguments, exception text, tracebacks):
# bearer credentials, JWTs, our refresh tokens, API keys and client secrets (bwr_, bwk_,
# bwc_...), argon2 hashes, and the value of
# any `password=...` / `"token": "..."` pair (quotes possibly JSON-escaped).
_SECRET_TEXT = re.compile(
    r"(?P<bearer>Bearer\s+)[\w\-.~+/]+=*"
    r"|eyJ[\w-]+\.[\w-]+\.[\w-]*"
    r"|bw[rkc]_[\w-]+"
    r"|\$argon2(?:id|i|d)\$[^\s\"'\\]+"
    r"|(?P<key>\b(?:current_|new_)?(?:password|passwd|secret|client_secret|private_key"
    r"|access_token|refresh_token|token|authorization)(?:\\?[\"'])?\s*[=:]\s*(?:\\?[\"'])?)"
    r"[^\s\"',;&}\\]+",
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"


def redact_text(text: str) -> str:
    return _SECRET_TEXT.sub(lambda m: (m.group("bearer") or m.group("key") or "") + REDACTED, text)


_base_factory = logging.getLogRecordFactory()


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record, whichever handler formats it: the message is formatted with its
    arguments and redacted, the exception and stack are formatted and redacted once."""
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_text(_plain.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


_plain = logging.Formatter()


def install_redaction() -> None:
    """Redact every log record this process creates (idempotent)."""
    logging.setLogRecordFactory(_redacting_factory)


class _RedactingJsonFormatter(JsonFormatter):  # type: ignore[misc]
    """The last line of defence: extra fields and anything formatted late are redacted in
    the finished line."""

    def formatException(self, ei: Any) -> str:
        return redact_text(str(super().formatException(ei)))

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(str(super().format(record)))


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
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, grpc's) to one JSON handler on stderr."""
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingJsonFormatter(
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
