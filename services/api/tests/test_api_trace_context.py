"""Trace ids when no exporter is configured (tracectx.py): every request runs in a trace
context, the caller's W3C trace is continued, and nothing is recorded."""

from __future__ import annotations

import secrets

from fastapi.testclient import TestClient
from opentelemetry import trace

from bulwark_api.app import create_app
from bulwark_api.problems import trace_id
from bulwark_api.settings import ApiSettings
from bulwark_common import telemetry


def client() -> TestClient:
    assert not telemetry.exporting()  # no exporter in unit tests: the cheap path
    app = create_app(ApiSettings())

    @app.get("/trace")
    async def current() -> dict[str, object]:
        span = trace.get_current_span()
        ctx = span.get_span_context()
        return {
            "trace_id": trace_id(),
            "span_id": format(ctx.span_id, "016x"),
            "recording": span.is_recording(),
            "sampled": ctx.trace_flags.sampled,
        }

    return TestClient(app)


def test_each_request_gets_its_own_trace_id_and_records_nothing() -> None:
    c = client()
    first, second = c.get("/trace").json(), c.get("/trace").json()
    assert first["trace_id"] and second["trace_id"] and first["trace_id"] != second["trace_id"]
    assert len(first["trace_id"]) == 32 and int(first["trace_id"], 16) != 0
    assert first["recording"] is False and first["sampled"] is False


def test_the_callers_trace_is_continued() -> None:
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    body = (
        client()
        .get("/trace", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
        .json()
    )
    assert body["trace_id"] == caller_trace
    assert body["span_id"] != caller_span  # our own span within the caller's trace


def test_a_malformed_traceparent_starts_a_new_trace() -> None:
    r = client().get("/trace", headers={"traceparent": "00-not-a-trace-01"})
    assert r.status_code == 200
    assert r.json()["trace_id"] and "not" not in r.json()["trace_id"]
