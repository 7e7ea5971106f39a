"""The health monitor logs a failing check as a warning and its recovery (or the first
pass at start-up) at INFO: an operator's WARNING stream only holds what needs a look."""

from __future__ import annotations

import logging

import pytest
from grpc_health.v1 import health, health_pb2

from bulwark_common.grpcio import HealthMonitor


def test_passing_is_info_and_failing_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    broken = {"db": False}

    def db() -> None:
        if broken["db"]:
            raise ConnectionError("down")

    servicer = health.HealthServicer()
    monitor = HealthMonitor(servicer, ["svc"], {"db": db})
    caplog.set_level(logging.DEBUG, logger="bulwark")

    assert monitor.check_once() == []
    broken["db"] = True
    assert monitor.check_once() == ["db"]
    broken["db"] = False
    assert monitor.check_once() == []

    health_lines = [
        (r.levelno, r.getMessage()) for r in caplog.records if "health:" in r.getMessage()
    ]
    assert health_lines == [
        (logging.INFO, "health: all checks pass"),
        (logging.WARNING, "health: failing ['db']"),
        (logging.INFO, "health: all checks pass"),
    ]
    status = servicer.Check(health_pb2.HealthCheckRequest(service="svc"), None).status
    assert status == health_pb2.HealthCheckResponse.SERVING
