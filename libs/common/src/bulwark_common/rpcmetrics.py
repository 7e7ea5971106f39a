"""RED metrics for every gRPC method a server handles (bulwark_common.metrics defines them):
calls by status code, handling time, calls in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from bulwark_common.metrics import GRPC_DURATION, GRPC_HANDLED, GRPC_IN_FLIGHT

MAX_METHODS = 64  # far more than the suite's services have


class _Method:
    """Label children bound once per method, so a call pays no label lookups."""

    __slots__ = ("codes", "duration", "method", "service")

    def __init__(self, full: str) -> None:
        self.service, _, self.method = full.lstrip("/").rpartition("/")
        self.duration = GRPC_DURATION.labels(self.service, self.method)
        self.codes: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode) -> None:
        child = self.codes.get(code)
        if child is None:
            child = self.codes[code] = GRPC_HANDLED.labels(self.service, self.method, code.name)
        child.inc()


def _code(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    code = context.code()  # set by abort or set_code
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK


def _measured(
    owner: ServerMetrics, m: _Method, behaviour: Callable[[Any, grpc.ServicerContext], Any]
) -> Any:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        GRPC_IN_FLIGHT.inc()
        start = time.perf_counter()
        failed = True
        try:
            response = behaviour(request, context)
            failed = False
            return response
        finally:
            m.duration.observe(time.perf_counter() - start)
            m.handled(_code(context, failed))
            GRPC_IN_FLIGHT.dec()

    return handle


class ServerMetrics(grpc.ServerInterceptor):  # type: ignore[misc]
    """First in the chain, so refused callers and unknown methods are counted too (their
    method label is whatever was asked: the caller check and UNIMPLEMENTED bound them to the
    services' own methods, and past MAX_METHODS names they count as "other")."""

    def __init__(self) -> None:
        self._methods: dict[str, _Method] = {}
        self._other = _Method("/other/other")

    def _method(self, full: str) -> _Method:
        m = self._methods.get(full)
        if m is None:
            if len(self._methods) >= MAX_METHODS:
                return self._other  # bounded label values whatever a peer names
            m = self._methods[full] = _Method(full)
        return m

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        m = self._method(method)
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_measured(self, m, handler.unary_unary))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=_measured(self, m, handler.stream_unary))
        # Streaming responses (health Watch): in flight for their lifetime, not timed.
        return handler
