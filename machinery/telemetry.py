"""OpenTelemetry for runs whose agents are services: one trace per run, across processes.

Each agent step is a span (``invoke_agent worker``) and each model call inside a
service another (``chat gpt-4o-mini``), both with the GenAI semantic conventions'
attributes. The W3C trace context travels in the message headers
(``traceparent``), so a service's spans join the orchestrator's trace.

Off until ``enable()`` is called (a run over a broker, a service, or a test), so
the chapter, ``--help`` and the offline demo never import opentelemetry. Spans are
exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; otherwise
they go to whatever tracer provider is installed (none: they cost nothing).
What is put in a span is chosen here: never a prompt, a URL or a credential.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_on = False
_provider: Any = None  # the provider made here for OTLP export, flushed by shutdown()

Attributes = dict[str, Any]


def enable(service_name: str) -> bool:
    """Turn spans on (if opentelemetry is installed); export over OTLP when the environment asks for it."""
    global _on, _provider
    try:
        from opentelemetry import trace
    except ImportError:  # requirements-nats.txt is optional: without it there are no spans, and no error
        return False
    _on = True
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") and _provider is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
        _provider = TracerProvider(resource=resource)
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
    return True


def shutdown() -> None:
    """Send what is still buffered (a process that exits without this may lose its last spans)."""
    if _provider is not None:
        _provider.shutdown()


def agent_attributes(operation: str, role: str, model: str, tokens_in: int = 0, tokens_out: int = 0) -> Attributes:
    """The GenAI semantic conventions' attributes of one agent step or model call."""
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.agent.name": role,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens_in,
        "gen_ai.usage.output_tokens": tokens_out,
    }


@contextmanager
def span(
    name: str, attributes: Attributes, *, kind: str = "internal", carrier: dict[str, str] | None = None
) -> Iterator[Callable[[Attributes], None]]:
    """A span around the block; yields a function that adds attributes (usage is known only at the end).

    ``carrier``: message headers whose ``traceparent`` makes this span a child of the sender's.
    """
    if not _on:
        yield lambda more: None
        return
    from opentelemetry import propagate, trace

    context = propagate.extract(carrier) if carrier is not None else None
    tracer = trace.get_tracer("multi_agent_system.services")
    with tracer.start_as_current_span(name, context, getattr(trace.SpanKind, kind.upper()), attributes) as current:
        yield current.set_attributes


def inject(headers: dict[str, str]) -> dict[str, str]:
    """The current span's W3C context added to outgoing headers (nothing, while spans are off)."""
    if _on:
        from opentelemetry import propagate

        propagate.inject(headers)
    return headers
