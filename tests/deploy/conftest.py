"""Chart and image checks: helm and the checkers come from `make check-tools` (.tools/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: make deploykit importable

from deploykit import VALUE_SETS, Docs, helm_template, load


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """helm template output per value set, rendered once per session."""
    return {name: helm_template(values) for name, values in VALUE_SETS.items()}


@pytest.fixture(scope="session")
def objects(rendered: dict[str, str]) -> dict[str, Docs]:
    return {name: load(text) for name, text in rendered.items()}
