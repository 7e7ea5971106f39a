"""One request to api yields one trace with spans from api, auth and users, exported over
real OTLP/HTTP to a receiver in this test."""

from __future__ import annotations

import gzip
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bulwark_devstack.infra import free_port
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import strong_password, unique_name


class Receiver:
    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []  # (service, trace id, span name)
        self.lock = threading.Lock()

    def services_in(self, trace_id: str) -> set[str]:
        with self.lock:
            return {svc for svc, tid, _ in self.spans if tid == trace_id}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    sink = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            req = ExportTraceServiceRequest.FromString(body)
            with sink.lock:
                for rs in req.resource_spans:
                    attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            sink.spans.append(
                                (attrs.get("service.name", ""), span.trace_id.hex(), span.name)
                            )
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink, port
    server.shutdown()


def test_login_trace_spans_api_auth_and_users(
    stack_factory: Callable[..., Stack], receiver: tuple[Receiver, int]
) -> None:
    sink, port = receiver
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    stack = stack_factory(env={"*": otel})
    api = stack.config.api_url
    name, password = unique_name(), strong_password()
    r = httpx.post(
        f"{api}/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text

    trace_id = secrets.token_hex(16)
    r = httpx.post(
        f"{api}/v1/auth/token",
        data={"grant_type": "password", "username": name, "password": password},
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert r.status_code == 200, r.text

    wanted = {"bulwark-api", "bulwark-auth", "bulwark-users"}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not wanted <= sink.services_in(trace_id):
        time.sleep(0.1)
    assert sink.services_in(trace_id) >= wanted
