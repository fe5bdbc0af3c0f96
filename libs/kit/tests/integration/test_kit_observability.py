"""One trace across every hop the kit provides, with an in-memory exporter and real
nats-server and Postgres: a caller's request (as the gateway sends it) → the responder →
the event appended with the request's trace context → the outbox relay's publish → a
consumer, whose span is a child of the publish and links to it. Log lines written inside
carry the trace, span and request ids. And the sampled metrics: a consumer's lag read from
the server, the outbox's backlog and the age of its oldest row."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
from kitsvc import CODEC, STREAM_TYPE, CounterCreated, KitDb, consumer_spec
from nats.js.client import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy import text

from outpost_contracts.base import Contract, Request
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.rpc import Operation
from outpost_kit import ids, messaging, metrics, telemetry
from outpost_kit.consumer import InboxConsumer
from outpost_kit.db.engine import plain_dsn
from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.logs import JsonFormatter
from outpost_kit.responder import Responder

pytestmark = pytest.mark.integration

_log = logging.getLogger("kit.observability.test")


class MakeCounter(Request, kw_only=True, frozen=True):
    name: str


class CounterMade(Contract, kw_only=True, frozen=True):
    id: str


MAKE = Operation("kitsvc", "MakeCounter", MakeCounter, CounterMade)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded for this test only: the process's provider listens while it runs
    (other tests check that unrecorded requests carry no headers)."""
    provider = telemetry.setup_tracing("kit-tests", {})
    assert isinstance(provider, telemetry.OutpostTracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        provider.sampling.listening = False
        exporter.clear()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("kitsvc"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _one(spans: list[ReadableSpan], name_start: str) -> ReadableSpan:
    found = [s for s in spans if s.name.startswith(name_start)]
    assert len(found) == 1, (name_start, [s.name for s in spans])
    return found[0]


async def test_one_trace_runs_from_the_request_through_the_outbox_into_a_consumer(
    kitsvc_db: KitDb,
    uow: UnitOfWorkFactory,
    js: JetStreamContext,
    nats_url: str,
    spans: InMemorySpanExporter,
    log_lines: io.StringIO,
) -> None:
    org = ids.new_id()
    principal = Principal(kind=PrincipalKind.SYSTEM, id=ids.new_id(), org_id=org)
    ctx = RequestContext(org_id=org, request_id=ids.new_id().hex, principal=principal)
    spec = consumer_spec(f"kit-trace-{secrets.token_hex(4)}", org)
    await messaging.apply_streams(js, [], [spec])

    async def make(ctx: RequestContext, body: MakeCounter) -> CounterMade:
        _log.info("making counter %s", body.name)
        stream_id = ids.new_id()
        async with uow(ctx.org_id) as u:
            await u.events.append(
                org_id=ctx.org_id,
                stream_id=stream_id,
                stream_type=STREAM_TYPE,
                expected_version=0,
                events=[CounterCreated(name=body.name)],
                request_id=ctx.request_id,
            )
            await u.commit()
        return CounterMade(id=str(stream_id))

    consumed: list[EventEnvelope] = []

    async def on_event(u: UnitOfWork, envelope: EventEnvelope) -> None:
        _log.info("consumed %s", envelope.type)
        consumed.append(envelope)

    client = await messaging.connect(nats_url, "kit-trace-client")
    service = await messaging.connect(nats_url, "kit-trace-service")
    responder = Responder(service, "kitsvc", {MAKE: make})
    await responder.start()
    relay_conn = await asyncpg.connect(
        plain_dsn(kitsvc_db.dsn), server_settings={"search_path": kitsvc_db.schema}
    )
    try:
        # The gateway's part: a server span per HTTP request, the call inside it.
        with telemetry.tracer("test.gateway").start_as_current_span(
            "POST /counters", kind=SpanKind.SERVER
        ):
            made = await messaging.call(client, MAKE, ctx, MakeCounter(name="traced"))
        assert await OutboxRelay(kitsvc_db.dsn, kitsvc_db.schema, js).drain_once(relay_conn) == 1
        consumer = InboxConsumer(uow, js, spec, on_event, CODEC)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        for _ in range(600):  # up to 30 s: a loaded machine
            if consumed:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
    finally:
        await responder.stop()
        await relay_conn.close()
        await client.close()
        await service.close()

    assert [str(e.stream_id) for e in consumed] == [made.id]
    finished = list(spans.get_finished_spans())
    root = _one(finished, "POST /counters")
    rpc = _one(finished, "rpc kitsvc.MakeCounter")
    handle = _one(finished, "handle kitsvc.MakeCounter")
    publish = _one(finished, f"publish {kitsvc_db.schema}")
    consume = _one(finished, f"consume {spec.name}")
    trace_id = root.context.trace_id
    for span in (rpc, handle, publish, consume):
        assert span.context.trace_id == trace_id, span.name
    assert rpc.parent is not None and rpc.parent.span_id == root.context.span_id
    assert handle.parent is not None and handle.parent.span_id == rpc.context.span_id
    assert handle.kind is SpanKind.SERVER and handle.attributes is not None
    assert handle.attributes["outpost.request_id"] == ctx.request_id
    # The relay continues the trace of the request that appended the event ...
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == handle.context.span_id
    # ... and the consumer is its child, and links to it.
    assert consume.kind is SpanKind.CONSUMER
    assert consume.parent is not None and consume.parent.span_id == publish.context.span_id
    assert [link.context.span_id for link in consume.links] == [publish.context.span_id]

    # The event keeps the trace that caused it (``meta``, beside the outbox row's headers).
    async with uow(org) as u:
        meta = (
            await u.conn.execute(
                text("SELECT meta FROM events WHERE stream_id = :s"), {"s": consumed[0].stream_id}
            )
        ).scalar_one()
    assert meta["trace"]["traceparent"].split("-")[1] == f"{trace_id:032x}"

    # Every line logged inside the request or the message carries its ids.
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    ours = [entry for entry in lines if entry["logger"] == _log.name]
    assert [entry["msg"] for entry in ours] == [
        "making counter traced",
        "consumed kitsvc.CounterCreated.v1",
    ]
    assert ours[0]["span_id"] == f"{handle.context.span_id:016x}"
    assert ours[1]["span_id"] == f"{consume.context.span_id:016x}"
    for entry in ours:
        assert entry["trace_id"] == f"{trace_id:032x}"
        assert entry["request_id"] == ctx.request_id


def _sample(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_lag_backlog_and_age_are_sampled(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory, js: JetStreamContext
) -> None:
    org = ids.new_id()
    spec = consumer_spec(f"kit-lag-{secrets.token_hex(4)}", org)
    await messaging.apply_streams(js, [], [spec])
    for n in range(3):
        async with uow(org) as u:
            await u.events.append(
                org_id=org,
                stream_id=ids.new_id(),
                stream_type=STREAM_TYPE,
                expected_version=0,
                events=[CounterCreated(name=f"c{n}")],
            )
            await u.commit()
    admin = await asyncpg.connect(
        plain_dsn(kitsvc_db.admin_dsn), server_settings={"search_path": kitsvc_db.schema}
    )
    relay_conn = await asyncpg.connect(
        plain_dsn(kitsvc_db.dsn), server_settings={"search_path": kitsvc_db.schema}
    )
    try:
        # Rows that have waited a while (as behind a stalled relay) ...
        await admin.execute("UPDATE outbox SET created_at = created_at - interval '42 seconds'")
        waiting = await admin.fetchval("SELECT count(*) FROM outbox")
        relay = OutboxRelay(kitsvc_db.dsn, kitsvc_db.schema, js, batch_size=2)
        assert await relay.drain_once(relay_conn) == 2
        labels = {"service": kitsvc_db.schema}
        # ... are counted in full even past one batch, and their age is seen.
        assert _sample("outpost_outbox_backlog", labels) == waiting
        age = _sample("outpost_outbox_oldest_age_seconds", labels)
        assert age is not None and 42 <= age < 60
        while await relay.drain_once(relay_conn):
            pass
        assert _sample("outpost_outbox_backlog", labels) == 0
        assert _sample("outpost_outbox_oldest_age_seconds", labels) == 0
    finally:
        await admin.close()
        await relay_conn.close()

    # Nothing consumed yet: the consumer's lag is what its tenant published.
    assert await metrics.sample_consumers_once(js, [spec]) == 1
    assert _sample("outpost_consumer_pending", {"consumer": spec.name}) == 3
    assert _sample("outpost_consumer_ack_pending", {"consumer": spec.name}) == 0
    sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
    try:
        msgs = await sub.fetch(3, timeout=30)
        await metrics.sample_consumers_once(js, [spec])
        # All delivered, none acknowledged yet.
        assert _sample("outpost_consumer_pending", {"consumer": spec.name}) == 0
        assert _sample("outpost_consumer_ack_pending", {"consumer": spec.name}) == 3
        await msgs[0].ack()
        await msgs[2].ack()
        await msgs[1].nak()
        redelivered = await sub.fetch(1, timeout=30)
        assert redelivered[0].metadata.num_delivered == 2
        await metrics.sample_consumers_once(js, [spec])
        assert _sample("outpost_consumer_ack_pending", {"consumer": spec.name}) == 1
        assert _sample("outpost_consumer_redelivered", {"consumer": spec.name}) == 1
        await redelivered[0].ack()
    finally:
        await sub.unsubscribe()
