"""Attack 3: secrets in logs. A password, an access token, a refresh token and an argon2
hash, passed every way a log call can take them (field, %-argument, f-string, exception
text, traceback, stack), never appear in any log line; refresh tokens are recognisable."""

from __future__ import annotations

import json
import subprocess
import sys

from argon2 import PasswordHasher

from bulwark_devstack.target import Attackable

# Runs in a process of its own with the services' logging set up, as in production.
SCRIPT = r"""
import json, logging, sys
from bulwark_common.logging import setup_logging

secrets = json.loads(sys.stdin.read())
setup_logging("attack")
log = logging.getLogger("bulwark.attack")
for name, value in secrets.items():
    log.info("field", extra={name: value, "detail": value, "nested": {"v": value}})
    log.info("argument %s and %r", value, value)
    log.info(f"f-string {name}={value} Bearer {value}")
    log.info("as mapping %(v)s", {"v": value})
    try:
        raise RuntimeError(f"failed with password={value} token={value} {value}")
    except RuntimeError:
        log.exception("exception")
    try:
        try:
            raise ValueError(value)
        except ValueError as inner:
            raise KeyError({"password": value}) from inner
    except KeyError:
        log.error("traceback with cause", exc_info=True)
    log.warning("stack", stack_info=True, extra={"where": value})
"""


def test_secrets_in_logs_never_appear_however_logged(target: Attackable) -> None:
    user = target.register()
    tokens = target.login(user)
    assert tokens["refresh_token"].startswith("bwr_"), "refresh tokens need a scannable prefix"
    secrets = {
        "password": user.password,
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "argon2_hash": PasswordHasher().hash(user.password),
    }
    # The bare password cannot be recognised in free text; everywhere it is named, it must go.
    bare = {k: v for k, v in secrets.items() if k != "password"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=json.dumps(secrets),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stderr
    lines = out.splitlines()
    assert len(lines) >= 7 * len(secrets)
    for line in lines:
        json.loads(line)  # still one JSON object per line
    leaked = {k for k, v in bare.items() if v in out}
    # The password as a value of a named field, a key=value pair or a quoted mapping:
    for form in (f"password={user.password}", f'"password": "{user.password}"'):
        if form in out or json.dumps(form)[1:-1] in out:
            leaked.add("password")
    assert not leaked, f"leaked into logs: {sorted(leaked)}"
    assert "$argon2" not in out
