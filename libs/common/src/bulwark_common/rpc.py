"""Turning exceptions into gRPC statuses, in one place for every sync servicer.

A servicer method raises; ``rpc_errors`` decides the status. Infrastructure failures (Redis,
PostgreSQL unreachable) become UNAVAILABLE, anything unexpected INTERNAL with a generic
message: a caller never sees UNKNOWN or a stack trace. Unexpected errors are logged by type
and traceback frames only, never by message: driver and SQLAlchemy messages can quote bound
parameters, password hashes included."""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
import redis
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

Status = tuple[grpc.StatusCode, str]
# A fixed status, or a function of the exception (which may also log what it needs).
Rule = Status | Callable[[Exception], Status]

S = TypeVar("S")
R = TypeVar("R")

DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError)


class Abort(Exception):
    """Ends an RPC with this status; raised inside a transaction it also rolls it back."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def rpc_errors(
    log: logging.Logger,
    *,
    mapping: Mapping[type[Exception], Rule] | None = None,
    redis_details: str,
    database_details: str,
    internal_details: str,
) -> Callable[
    [Callable[[S, Any, grpc.ServicerContext], R]], Callable[[S, Any, grpc.ServicerContext], R]
]:
    """A decorator for servicer methods that ends every failure with ``context.abort``.

    Checked in order: ``Abort`` (its own code and details); ``mapping`` (first matching
    class, in insertion order); Redis errors; database connectivity errors; anything else.
    """
    rules = dict(mapping or {})

    def decorate(
        method: Callable[[S, Any, grpc.ServicerContext], R],
    ) -> Callable[[S, Any, grpc.ServicerContext], R]:
        name = method.__name__

        @functools.wraps(method)
        def wrapper(self: S, request: Any, context: grpc.ServicerContext) -> R:
            try:
                return method(self, request, context)
            except Exception as exc:
                code, details = _status(exc)
            context.abort(code, details)
            raise AssertionError("context.abort returned")  # it raises; keeps types honest

        def _status(exc: Exception) -> Status:
            if isinstance(exc, Abort):
                return exc.code, exc.details
            for cls, rule in rules.items():
                if isinstance(exc, cls):
                    return rule(exc) if callable(rule) else rule
            if isinstance(exc, redis.RedisError):
                log.warning(
                    "redis unavailable in %s: %s",
                    name,
                    type(exc).__name__,
                    extra={"rpc": name, "error": type(exc).__name__},
                )
                return grpc.StatusCode.UNAVAILABLE, redis_details
            if isinstance(exc, DATABASE_ERRORS):
                cause = getattr(exc, "orig", None) or exc
                log.warning(
                    "database unavailable in %s: %s",
                    name,
                    type(cause).__name__,
                    extra={"rpc": name, "error": type(cause).__name__},
                )
                return grpc.StatusCode.UNAVAILABLE, database_details
            # Frames (file, line, source) help debugging and hold no runtime values.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "unexpected error in %s: %s",
                name,
                type(exc).__name__,
                extra={"rpc": name, "error": type(exc).__name__, "frames": frames},
            )
            return grpc.StatusCode.INTERNAL, internal_details

        return wrapper

    return decorate
