"""Multi-process mode (api with several workers): every process writes its values to
PROMETHEUS_MULTIPROC_DIR and one scrape adds them up; stale files of earlier processes are
dropped at start. Real processes, real files, promtool on the output. And the reasons a
refused token is counted under, from real signed tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bulwark_common.accesstokens import InvalidToken, verify
from bulwark_devstack import infra
from bulwark_devstack.scrape import value

WORKER = """
from bulwark_common import metrics
metrics.LOGINS.labels("ok").inc(3)
metrics.HTTP_REQUESTS.labels("/v1/items/{item_id}", "GET", "200").inc()
"""
SCRAPER = """
import sys
from bulwark_common import metrics
body, content_type = metrics.exposition()
sys.stdout.write(body.decode())
"""
PREPARE = """
from bulwark_common import metrics
metrics.prepare_multiprocess_dir()
"""


def _python(code: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_workers_add_up_in_one_scrape_and_pass_promtool(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"  # created on import: only /tmp is writable in pods
    for _ in range(2):
        _python(WORKER, directory)
    text = _python(SCRAPER, directory)
    assert value(text, "bulwark_auth_logins_total", result="ok") == 6
    assert value(text, "bulwark_http_requests_total", route="/v1/items/{item_id}") == 2
    assert value(text, "process_resident_memory_bytes") > 0
    try:
        tool = infra.promtool()
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)
    done = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_start_drops_the_files_of_earlier_processes(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    _python(WORKER, directory)
    assert list(directory.glob("*.db"))
    _python(PREPARE, directory)
    text = _python(SCRAPER, directory)
    assert value(text, "bulwark_auth_logins_total", result="ok") == 0


def _token(key: ec.EllipticCurvePrivateKey, kid: str, **claims: object) -> str:
    now = int(time.time())
    payload = {"iss": "i", "aud": "a", "sub": "s", "jti": "j", "iat": now, "exp": now + 60}
    return jwt.encode(
        {**payload, **claims}, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}
    )


def test_refused_tokens_carry_the_reason_the_metric_counts() -> None:
    """The `reason` label of bulwark_api_tokens_refused_total, from real signed tokens."""
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    keys = {"k1": key.public_key()}
    cases = {
        "expired": _token(key, "k1", exp=int(time.time()) - 3600),
        "bad_signature": _token(other, "k1"),
        "unknown_kid": _token(key, "k2"),
        "invalid": _token(key, "k1", aud="someone-else"),
    }
    for reason, token in cases.items():
        with pytest.raises(InvalidToken) as refused:
            verify(token, keys.get, issuer="i", audience="a")
        assert refused.value.reason == reason
    assert verify(_token(key, "k1"), keys.get, issuer="i", audience="a").sub == "s"
