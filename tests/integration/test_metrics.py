"""Prometheus metrics on a real stack: each service's exposition passes `promtool check
metrics`, is served on the management/metrics port only, counts what happened (failed logins,
accounts in backoff, 429s, refresh reuse, refused tokens, RED per route template and gRPC
method) and carries no user identifier, address or token in any label."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bulwark_devstack import infra
from bulwark_devstack.scrape import names, samples, scrape, value
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import Session, bearer, random_ip, strong_password, unique_name

# The first test also waits for the module's stack (OpenBao prefix, three services), which
# takes minutes when this machine is shared: more than the default 120 s per test.
pytestmark = pytest.mark.timeout(360)
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "auth", "users")
# One address for the 429 test; every other request comes from a fresh one.
LIMITED_IP = "198.51.100.7"


@pytest.fixture(scope="module")
def stack(stack_factory: Callable[..., Stack]) -> Iterator[Stack]:
    yield stack_factory(
        env={
            "api": {"API_TRUSTED_PROXIES": '["127.0.0.1/32"]', "API_TOKEN_RATE": "5/minute"},
            # One argon2id computation at a time: concurrent sign-ups must queue.
            "users": {"USERS_ARGON2_MAX_CONCURRENT": "1"},
            # Backoffs long enough that a scrape right after one cannot race its end.
            "auth": {"AUTH_BACKOFF_BASE_SECONDS": "20", "AUTH_BACKOFF_MAX_SECONDS": "20"},
        }
    )


def _client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.config.api_url, timeout=20)


def _ip() -> dict[str, str]:
    return {"X-Forwarded-For": random_ip()}


def _session(stack: Stack) -> Session:
    """Register and log in, each from its own address (this stack's token limit is low)."""
    name, password = unique_name(), strong_password()
    with _client(stack) as http:
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        r = http.post("/v1/users", json=body, headers=_ip())
        assert r.status_code == 201, r.text
        form = {"grant_type": "password", "username": name, "password": password}
        t = http.post("/v1/auth/token", data=form, headers=_ip())
        assert t.status_code == 200, t.text
    tokens = t.json()
    return Session(r.json()["id"], name, password, tokens["access_token"], tokens["refresh_token"])


def _login(http: httpx.Client, username: str, password: str, ip: str | None = None) -> int:
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers={"X-Forwarded-For": ip or random_ip()},
    )
    return r.status_code


def test_promtool_accepts_every_service_exposition(stack: Stack) -> None:
    tool = infra_promtool()
    for service in SERVICES:
        text = scrape(stack.config.metrics_url(service))
        done = subprocess.run(
            [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{service}: {done.stdout}{done.stderr}"


def infra_promtool() -> str:
    try:
        return infra.promtool()
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)


def test_metrics_are_not_served_on_the_public_port(stack: Stack) -> None:
    with _client(stack) as http:
        assert http.get("/metrics").status_code == 404
    # auth's and users' main ports speak mTLS gRPC only: no exposition there.
    for service in ("auth", "users"):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{stack.config.port(service)}/metrics", timeout=5)
    # The management port serves them, with Prometheus's content type.
    r = httpx.get(stack.config.metrics_url("api"), timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")


def test_failed_login_counts_as_failed_and_a_good_one_as_ok(stack: Stack) -> None:
    user = _session(stack)
    url = stack.config.metrics_url("auth")
    before = scrape(url)
    with _client(stack) as http:
        assert _login(http, user.username, "wrong-" + user.password) == 400
        assert _login(http, user.username, user.password) == 200
    after = scrape(url)
    for result, delta in (("failed", 1), ("ok", 1), ("backoff", 0)):
        grew = value(after, "bulwark_auth_logins_total", result=result) - value(
            before, "bulwark_auth_logins_total", result=result
        )
        assert grew == delta, result


def test_an_account_in_backoff_shows_in_the_gauge(stack: Stack) -> None:
    user = _session(stack)
    url = stack.config.metrics_url("auth")
    assert "bulwark_auth_accounts_in_backoff" in names(scrape(url))
    ip = random_ip()
    with _client(stack) as http:
        for _ in range(3):  # AUTH_BACKOFF_FREE_FAILURES: the third starts a 20 s backoff
            assert _login(http, user.username, "wrong-" + user.password, ip=ip) == 400
        assert _login(http, user.username, user.password, ip=ip) == 400  # refused: in backoff
    # At least this account (other tests' backoffs may end meanwhile: no exact delta).
    assert value(scrape(url), "bulwark_auth_accounts_in_backoff") >= 1


def test_rate_limit_rejection_counts_by_limit(stack: Stack) -> None:
    url = stack.config.metrics_url("api")
    before = value(scrape(url), "bulwark_api_rate_limited_total", limit="token")
    codes = []
    with _client(stack) as http:
        for _ in range(7):  # API_TOKEN_RATE is 5/minute for this stack
            codes.append(_login(http, "nobody-at-all", "x" * 12, ip=LIMITED_IP))
    assert codes.count(429) == 2, codes
    after = value(scrape(url), "bulwark_api_rate_limited_total", limit="token")
    assert after - before == 2


def test_refresh_reuse_counts_and_revokes_the_family(stack: Stack) -> None:
    user = _session(stack)
    url = stack.config.metrics_url("auth")
    before = scrape(url)
    form = {"grant_type": "refresh_token", "refresh_token": user.refresh_token}
    with _client(stack) as http:
        assert http.post("/v1/auth/token", data=form, headers=_ip()).status_code == 200
        assert http.post("/v1/auth/token", data=form, headers=_ip()).status_code == 400
    after = scrape(url)
    reuse = "bulwark_auth_refresh_reuse_detected_total"
    assert value(after, reuse) - value(before, reuse) == 1
    revoked = "bulwark_revocations_total"
    assert value(after, revoked, kind="family") - value(before, revoked, kind="family") == 1


def test_refused_tokens_count_by_reason(stack: Stack) -> None:
    user = _session(stack)
    url = stack.config.metrics_url("api")
    head, claims, signature = user.access_token.split(".")
    tampered = f"{head}.{claims}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    # Well formed and signed, by a key auth never published.
    forged = jwt.encode(
        {"iss": "x", "aud": "y", "sub": "s", "jti": "j", "iat": 1, "exp": 2**31},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "not-a-key-of-auth", "typ": "at+jwt"},
    )
    before = scrape(url)
    with _client(stack) as http:
        assert http.get("/v1/items", headers=_ip()).status_code == 401
        assert http.get("/v1/items", headers={**bearer(forged), **_ip()}).status_code == 401
        assert http.get("/v1/items", headers={**bearer(tampered), **_ip()}).status_code == 401
        assert http.get("/v1/items", headers={**bearer("x.y.z"), **_ip()}).status_code == 401
        r = http.post("/v1/auth/revoke", data={"token": user.access_token}, headers=_ip())
        assert r.status_code == 200
        assert http.get("/v1/items", headers=bearer(user.access_token)).status_code == 401
    after = scrape(url)
    for reason in ("missing", "bad_signature", "unknown_kid", "invalid", "revoked"):
        name = "bulwark_api_tokens_refused_total"
        grew = value(after, name, reason=reason) - value(before, name, reason=reason)
        assert grew == 1, reason
    auth = scrape(stack.config.metrics_url("auth"))
    assert value(auth, "bulwark_revocations_total", kind="access_token") >= 1


def test_red_by_route_template_and_grpc_method(stack: Stack) -> None:
    user = _session(stack)
    with _client(stack) as http:
        created = http.post(
            "/v1/items", json={"name": "n", "description": "d"}, headers=bearer(user.access_token)
        )
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        assert http.get(f"/v1/items/{item_id}", headers=bearer(user.access_token)).is_success
        assert http.get("/no/such/path").status_code == 404
        assert http.request("PROPFIND", "/v1/items", headers=_ip()).status_code == 405
    api = scrape(stack.config.metrics_url("api"))
    route = "/v1/items/{item_id}"
    assert value(api, "bulwark_http_requests_total", route=route, method="GET", status="200") >= 1
    assert value(api, "bulwark_http_request_duration_seconds_count", route=route) >= 1
    assert value(api, "bulwark_http_requests_total", route="unmatched", status="404") >= 1
    assert value(api, "bulwark_http_requests_total", route="/v1/items", method="other") >= 1
    assert item_id not in api and "/no/such/path" not in api and "PROPFIND" not in api
    auth = scrape(stack.config.metrics_url("auth"))
    token_calls = value(
        auth,
        "bulwark_grpc_server_handled_total",
        grpc_service="bulwark.auth.v1.AuthService",
        grpc_method="IssueToken",
        grpc_code="OK",
    )
    assert token_calls >= 1
    assert value(auth, "bulwark_grpc_server_handling_seconds_count") >= token_calls


def test_saturation_signals_are_exposed(stack: Stack) -> None:
    _session(stack)  # one registration and one login: argon2 hash and verify
    users = scrape(stack.config.metrics_url("users"))
    assert value(users, "bulwark_argon2_duration_seconds_count", operation="hash") >= 1
    assert value(users, "bulwark_argon2_duration_seconds_count", operation="verify") >= 1
    assert value(users, "bulwark_argon2_wait_seconds_count") >= 2
    assert "bulwark_argon2_queue_depth" in names(users)
    for service in SERVICES:
        text = scrape(stack.config.metrics_url(service))
        cert = value(text, "bulwark_tls_certificate_remaining_seconds", certificate=service)
        assert 0 < cert <= 86400, service
        leases = {
            dict(labels)["lease"]: v
            for (name, labels), v in samples(text).items()
            if name == "bulwark_vault_lease_remaining_seconds"
        }
        assert leases and all(v > 0 for v in leases.values()), (service, leases)
        assert value(text, "bulwark_db_pool_max_connections") > 0, service
        assert "bulwark_db_pool_in_use_connections" in names(text), service
        assert "bulwark_db_pool_waiting_requests" in names(text), service
    api = scrape(stack.config.metrics_url("api"))
    rtt = value(api, "bulwark_redis_roundtrip_seconds_count", operation="revocation_and_rate_limit")
    assert rtt >= 1
    assert "bulwark_grpc_server_in_flight" in names(scrape(stack.config.metrics_url("auth")))


def test_argon2_queue_shows_in_the_wait_histogram(stack: Stack) -> None:
    """Six sign-ups at once against one argon2id slot: all but one wait for it, each for at
    least the ~tens of ms another computation takes."""
    url = stack.config.metrics_url("users")
    wait = "bulwark_argon2_wait_seconds"
    before = scrape(url)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: _session(stack), range(6)))
    after = scrape(url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    waits = grew(f"{wait}_count")
    assert waits >= 12  # six hashes and six verifications
    quick = grew(f"{wait}_bucket", le="0.001")  # got the slot (almost) at once
    assert waits - quick >= 1, (waits, quick)
    assert grew(f"{wait}_sum") > 0
    assert value(after, "bulwark_argon2_queue_depth") == 0  # nobody waiting once done


def test_no_identifier_or_token_in_any_label(stack: Stack) -> None:
    user = _session(stack)
    with _client(stack) as http:
        _login(http, user.username, "wrong-" + user.password)
        http.get("/v1/items", headers=bearer(user.access_token))
        http.get(f"/v1/users/{user.user_id}", headers=bearer(user.access_token))
    secrets = {user.user_id, user.username, user.access_token, user.refresh_token, user.password}
    for service in SERVICES:
        text = scrape(stack.config.metrics_url(service))
        for secret in secrets:
            assert secret not in text, service
        for (_name, labels), _v in samples(text).items():
            for key, label in labels:
                # Label values are fixed words, templates, method names or deployment names.
                assert len(label) < 80, (service, key, label)
                assert "@" not in label and "Bearer" not in label, (service, key, label)


def test_dashboard_and_alerts_name_only_exposed_metrics(stack: Stack) -> None:
    """Every metric the Grafana dashboard and the chart's alerts query is one the running
    services expose (after the traffic of the tests above)."""
    exposed = set()
    for service in SERVICES:
        exposed |= {name for name, _labels in samples(scrape(stack.config.metrics_url(service)))}
    board = json.loads((ROOT / "deploy" / "grafana" / "bulwark.json").read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    rules = (ROOT / "deploy" / "helm" / "bulwark" / "templates" / "monitoring.yaml").read_text()
    for source, text in (("dashboard", "\n".join(queries)), ("alerts", rules)):
        named = set(re.findall(r"\b((?:bulwark|process)_[a-z0-9_]+)\b", text))
        assert len(named) > 5, source
        assert named <= exposed, (source, sorted(named - exposed))
