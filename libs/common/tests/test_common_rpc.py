"""rpc_errors: every failure ends in context.abort with the right status, and unexpected
errors are logged by type and frames, never by message."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
import redis
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bulwark_common.rpc import Abort, rpc_errors

Code = grpc.StatusCode
log = logging.getLogger("bulwark.test.rpc")


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Aborted


class Mine(Exception):
    pass


class MineToo(Mine):
    pass


_rpc = rpc_errors(
    log,
    mapping={
        MineToo: (Code.ALREADY_EXISTS, "fixed"),
        Mine: lambda exc: (Code.INVALID_ARGUMENT, f"mine: {exc}"),
    },
    redis_details="redis down",
    database_details="db down",
    internal_details="oops",
)


class Servicer:
    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc

    @_rpc
    def Call(self, request: Any, context: grpc.ServicerContext) -> str:
        if self.exc is not None:
            raise self.exc
        return f"ok {request}"


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    context = FakeContext()
    with pytest.raises(Aborted):
        Servicer(exc).Call("req", context)
    return context.status


def test_success_passes_through() -> None:
    context = FakeContext()
    assert Servicer(None).Call("req", context) == "ok req"
    assert context.status is None
    assert Servicer.Call.__name__ == "Call"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (Abort(Code.NOT_FOUND, "user not found"), (Code.NOT_FOUND, "user not found")),
        (MineToo("x"), (Code.ALREADY_EXISTS, "fixed")),  # first match, in order
        (Mine("bad"), (Code.INVALID_ARGUMENT, "mine: bad")),
        (redis.ConnectionError("refused"), (Code.UNAVAILABLE, "redis down")),
        (OperationalError("SELECT", {}, Exception("gone")), (Code.UNAVAILABLE, "db down")),
        (InterfaceError("SELECT", {}, Exception("closed")), (Code.UNAVAILABLE, "db down")),
        (PoolTimeoutError("pool exhausted"), (Code.UNAVAILABLE, "db down")),
        (ValueError("boom"), (Code.INTERNAL, "oops")),
    ],
)
def test_status_mapping(exc: Exception, status: tuple[grpc.StatusCode, str]) -> None:
    assert status_for(exc) == status


def test_unexpected_error_logs_type_and_frames_not_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    secret = "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0"
    assert status_for(RuntimeError(f"INSERT ... password_hash={secret}")) == (Code.INTERNAL, "oops")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "unexpected error in Call: RuntimeError"
    assert "test_common_rpc.py" in record.frames  # type: ignore[attr-defined]
    assert record.exc_info is None
    assert secret not in " ".join(repr(r.__dict__) for r in caplog.records)


def test_database_error_logs_driver_error_type(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)

    class DriverError(Exception):
        pass

    status_for(OperationalError("SELECT :pw", {"pw": "hash"}, DriverError("secret detail")))
    [record] = caplog.records
    assert record.getMessage() == "database unavailable in Call: DriverError"
    assert "secret detail" not in repr(record.__dict__)
