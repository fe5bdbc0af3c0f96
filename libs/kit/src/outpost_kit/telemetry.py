"""OpenTelemetry setup and trace context carried in NATS headers.

Tracing is configured by the standard ``OTEL_*`` variables. With ``OTEL_TRACES_EXPORTER``
unset or ``none`` a provider still exists (so context propagates and spans can be read by
tests through ``add_span_processor``) but nothing is exported, and spans are not recorded
until a span processor is added: a span nobody receives costs half as much (decision 57).
Trace ids still exist and still propagate (``traceparent`` with the sampled flag off).

Once something listens, which spans are recorded follows the standard
``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default ``always_on``; e.g.
``parentbased_traceidratio`` with ``0.1`` keeps a tenth of the traces, whole: services
follow the gateway's decision, carried in ``traceparent``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link

_log = logging.getLogger(__name__)


class WhenListened(Sampler):
    """Once something receives spans (an exporter, a test's processor) sample as
    ``delegate`` says (every span by default); until then record none."""

    def __init__(self, delegate: Sampler = ALWAYS_ON) -> None:
        self.listening = False
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if self.listening:
            return self.delegate.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return f"WhenListened({self.delegate.get_description()})"


def sampler_from(environ: Mapping[str, str]) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` (and ``…_ARG``, a ratio) names; ``always_on``
    when unset or unknown (with a warning)."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "always_on"
    try:
        ratio = min(max(float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1")), 0.0), 1.0)
    except ValueError:
        _log.warning("OTEL_TRACES_SAMPLER_ARG is not a number; sampling every trace")
        ratio = 1.0
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBasedTraceIdRatio(ratio),
    }
    if name not in samplers:
        _log.warning("unsupported OTEL_TRACES_SAMPLER=%s; sampling every trace", name)
        return ALWAYS_ON
    return samplers[name]


class OutpostTracerProvider(TracerProvider):
    def __init__(self, resource: Resource, sampler: Sampler = ALWAYS_ON) -> None:
        self.sampling = WhenListened(sampler)
        super().__init__(resource=resource, sampler=self.sampling)

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.sampling.listening = True


def setup_tracing(service: str, environ: Mapping[str, str]) -> TracerProvider:
    """Install a tracer provider for ``service``; export over OTLP/HTTP when asked."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = OutpostTracerProvider(
        Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", service)}),
        sampler_from(environ),
    )
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "none").lower()
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter_name not in ("none", ""):
        _log.warning("unsupported OTEL_TRACES_EXPORTER=%s; traces are not exported", exporter_name)
    trace.set_tracer_provider(provider)
    return provider


@functools.cache
def tracer(name: str) -> trace.Tracer:
    """One tracer per name (looked up once: this runs on every request)."""
    return trace.get_tracer(name)


def inject(headers: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Headers carrying the current trace context (W3C traceparent)."""
    out: dict[str, str] = dict(headers or {})
    propagate.inject(out)
    return out


def inject_from(span: trace.Span) -> dict[str, str]:
    """Headers carrying ``span``'s context (for a span that is not the current one)."""
    out: dict[str, str] = {}
    propagate.inject(out, context=trace.set_span_in_context(span))
    return out


def extract(headers: Mapping[str, Any] | None) -> Context:
    return propagate.extract(dict(headers or {}))


TRACEPARENT = "traceparent"
# At most this many links on one batch's span (a batch may hold a thousand messages).
MAX_BATCH_LINKS = 32


def listening() -> bool:
    """Whether spans are recorded in this process (an exporter or a test's processor is
    installed): work done only for a recorded span can be skipped when not."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, OutpostTracerProvider) and provider.sampling.listening


def link_to(headers: Mapping[str, Any] | None) -> Link | None:
    """A span link to the context a message was published in (its ``traceparent``), or
    None when it carries none."""
    if not headers or TRACEPARENT not in headers:
        return None
    context = trace.get_current_span(extract(headers)).get_span_context()
    return Link(context) if context.is_valid else None


def links_to(headers: Iterable[Mapping[str, Any] | None]) -> list[Link]:
    """Links to the publishing contexts of a batch's messages (those that carry one, at
    most ``MAX_BATCH_LINKS``, each trace once)."""
    links: list[Link] = []
    seen: set[int] = set()
    for h in headers:
        link = link_to(h)
        if link is None or link.context.trace_id in seen:
            continue
        seen.add(link.context.trace_id)
        links.append(link)
        if len(links) >= MAX_BATCH_LINKS:
            break
    return links
