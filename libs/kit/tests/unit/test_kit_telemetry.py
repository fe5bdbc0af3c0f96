"""Spans are recorded only once something receives them; trace context propagates anyway."""

from __future__ import annotations

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from outpost_kit.telemetry import OutpostTracerProvider

pytestmark = pytest.mark.unit


def test_spans_are_not_recorded_until_a_processor_listens_and_context_still_propagates() -> None:
    provider = OutpostTracerProvider(Resource.create({"service.name": "t"}))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("unheard") as span:
        assert not span.is_recording()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert carrier["traceparent"].split("-")[1] == trace_id  # ids exist and travel
    assert int(carrier["traceparent"][-2:], 16) & 1 == 0  # the sampled flag is off

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer.start_as_current_span("heard", attributes={"a": "b"}) as span:
        assert span.is_recording()
    [finished] = exporter.get_finished_spans()
    assert finished.name == "heard" and finished.attributes == {"a": "b"}


def test_once_listened_to_the_standard_sampler_variables_decide_and_children_follow() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from outpost_kit.telemetry import sampler_from

    provider = OutpostTracerProvider(
        Resource.create({}),
        sampler_from(
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
        ),
    )
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        assert not root.is_recording()  # ratio 0: no new trace is kept
    sampled_parent = NonRecordingSpan(
        SpanContext(trace_id=7, span_id=9, is_remote=True, trace_flags=TraceFlags(1))
    )
    with tracer.start_as_current_span("child", context=set_span_in_context(sampled_parent)) as c:
        assert c.is_recording()  # a caller's sampled trace is continued
        assert c.get_span_context().trace_id == 7

    assert sampler_from({}).get_description() == "AlwaysOnSampler"
    assert (
        "TraceIdRatioBased{0.25}"
        in sampler_from(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
        ).get_description()
    )
    assert sampler_from({"OTEL_TRACES_SAMPLER": "bogus"}).get_description() == "AlwaysOnSampler"
    assert (
        "1.0"
        in sampler_from(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"}
        ).get_description()
    )
