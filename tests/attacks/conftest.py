"""The attack suite runs against one stack of real processes (PostgreSQL, Redis), shared by
the tests that do not need settings of their own. Each test speaks from its own client
address through the trusted-proxy header, so per-address limits stay per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bulwark_devstack.stack import Stack
from bulwark_devstack.target import Attackable, start_attackable


@pytest.fixture(scope="session")
def target(stack_factory: Callable[..., Stack]) -> Attackable:
    return start_attackable(stack_factory, {})
