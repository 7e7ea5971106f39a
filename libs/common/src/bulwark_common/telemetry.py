"""OpenTelemetry tracing: exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter


def setup_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install the global tracer provider. Without an endpoint (or exporter) spans are
    still created, so trace ids reach the logs and propagate, but nothing is exported."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"bulwark-{service}"}))
    if exporter is None and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
