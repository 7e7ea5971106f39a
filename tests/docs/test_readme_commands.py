"""The README's commands work on a fresh machine, as a newcomer types them (issue 14):
no `uv run` (uv may live in .tools/, off PATH), every `make` target exists, and the curl
flow logs in again after the password change instead of using voided tokens."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BANNER = (ROOT / "tools/devstack/src/bulwark_devstack/cli.py").read_text()


def test_no_command_needs_uv_on_path() -> None:
    for name, text in (("README.md", README), ("make dev banner", BANNER)):
        assert "uv run" not in text, name


def test_every_make_target_mentioned_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    mentioned = set(re.findall(r"`make ([a-z][a-z-]+)", README + BANNER))
    assert mentioned - targets == set()
    assert "admin" in targets


def test_curl_flow_logs_in_again_after_the_password_change() -> None:
    flow = README[README.index("## Using it") :]
    change = flow.index('"current_password"')
    relogin = flow.index("grant_type=password", change)
    next_use = flow.index("$TOKEN", change)
    assert relogin < next_use
    assert "jq -r .access_token" in flow
