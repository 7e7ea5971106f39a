"""Fixtures for the identity tests: a test CA and a real gRPC server behind mTLS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulwark_devstack.testca import CertAuthority, Running, StaticCerts, start_echo_server


@pytest.fixture(scope="module")
def ca() -> CertAuthority:
    return CertAuthority()


@pytest.fixture
def users(ca: CertAuthority) -> Iterator[Running]:
    """The echo server, identified as the users service."""
    running = start_echo_server(StaticCerts(ca, "users"))
    yield running
    running.server.stop(0)
