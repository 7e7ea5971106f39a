"""The attack suite runs against one stack of real processes (PostgreSQL, Redis), shared by
the tests that do not need settings of their own. Each test speaks from its own client
address through the trusted-proxy header, so per-address limits stay per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bulwark_devstack.stack import Stack
from bulwark_devstack.target import Attackable, start_attackable


@pytest.fixture(scope="session")
def target(stack_factory: Callable[..., Stack]) -> Attackable:
    return start_attackable(stack_factory, {}, session=True)


@pytest.fixture
def own_stack(stack_factory: Callable[..., Stack]) -> Iterator[Callable[..., Attackable]]:
    """Start a stack with settings of its own for one test; stopped when the test ends (the
    session keeps only its databases, so PostgreSQL connections do not pile up)."""
    started: list[Attackable] = []

    def start(env: dict[str, dict[str, str]]) -> Attackable:
        started.append(start_attackable(stack_factory, env))
        return started[-1]

    yield start
    for target in started:
        target.stack.stop_all()
