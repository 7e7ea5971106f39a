"""Deadline propagation: a call made while serving a call gets what is left of the incoming
deadline (never a fresh one), and fails at once, without a round trip, when nothing is left.

The server interceptor records the incoming deadline for the handler's thread (a context
variable); the client interceptors in grpcio clip every outgoing timeout with `clip`."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import grpc

# Absolute time.monotonic() by which the call being served must be answered.
_deadline: ContextVar[float | None] = ContextVar("bulwark_deadline", default=None)
# grpc reports "no deadline" as None or as an enormous number of seconds.
_NO_DEADLINE = 1e7


class DeadlineSpent(grpc.RpcError):  # type: ignore[misc]
    """Raised instead of calling: the caller's budget is gone. Looks like any RpcError with
    DEADLINE_EXCEEDED to the code that handles them."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "deadline exceeded before the call was made"


def remaining() -> float | None:
    """Seconds left of the call being served, or None outside one (or without deadline)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def clip(timeout: float) -> float:
    """`timeout`, or less when the call being served has less left; DeadlineSpent at 0."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise DeadlineSpent()
    return min(timeout, left)


def _bounded(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def serve(request: Any, context: grpc.ServicerContext) -> Any:
        left = context.time_remaining()
        if left is not None and left <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        bounded = left is not None and left < _NO_DEADLINE
        token = _deadline.set(time.monotonic() + left if bounded else None)
        try:
            return handler(request, context)
        finally:
            _deadline.reset(token)

    return serve


class ServerDeadlines(grpc.ServerInterceptor):  # type: ignore[misc]
    """Makes each unary handler's incoming deadline the budget of the calls it makes."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _bounded(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
