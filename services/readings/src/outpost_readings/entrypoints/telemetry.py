"""The TELEMETRY ingest loop: fetch a large batch, decode, validate and store it in one
transaction (readings, quarantine, seq state), then ack.

The same loop runs on ``readings-mqtt``, nats-server's own store of MQTT QoS 1/2 publishes
(``$MQTT_msgs``, decision 82): that copy exists before the device gets its PUBACK, while the
copy TELEMETRY captured is a core publish, lost if TELEMETRY has no leader at that moment.
So the TELEMETRY loop skips (acknowledges unread) the MQTT QoS 1/2 messages that arrived after
``readings-mqtt`` was created, and each reading is stored from one copy only.

Raw nats-py rather than a FastStream subscriber: this is the hot path (docs/performance.md), and
it needs batch fetches and per-message ack/nak/term after one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from outpost_contracts import subjects
from outpost_contracts.readings import SOURCE_HEADER, SOURCE_HTTP, SOURCE_MQTT, TelemetryMessage
from outpost_contracts.streams import ConsumerSpec
from outpost_kit import ids, telemetry
from outpost_kit.consumer import PermanentFailure, backoff_seconds, dead_letter
from outpost_kit.db.errors import database_unavailable
from outpost_readings.app.handlers import Deps, Incoming, Outcome, ingest

_log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(TelemetryMessage)

STORED = Counter("outpost_readings_stored_total", "Readings stored")
REJECTED = Counter(
    "outpost_readings_rejected_total", "Readings (or whole messages) quarantined by validation"
)
SKIPPED_COPIES = Counter(
    "outpost_readings_mqtt_copies_skipped_total",
    "MQTT QoS 1/2 messages TELEMETRY captured and ingest skipped: readings stores the copy"
    " nats-server kept in $MQTT_msgs before its PUBACK (readings-mqtt)",
)
DROPPED = Counter(
    "outpost_readings_suspended_dropped_total",
    "Telemetry messages acknowledged unread because their organization is suspended",
)
HELD = Counter(
    "outpost_readings_ingest_unavailable_total",
    "Attempts to store a batch that found the database unavailable (the batch is kept and"
    " retried, not nak'ed)",
)

# A batch kept in hand while the database is unavailable is tried again after 0.2 s,
# doubling up to this (decision 62); each wait also renews the messages' ack wait.
HOLD_BACKOFF_MAX_SECONDS = 5.0


@functools.lru_cache(maxsize=65_536)
def _device_of(subject: str) -> tuple[UUID, UUID]:
    """(org, device) of a telemetry subject (or of its copy in ``$MQTT_msgs``), parsed once
    per device rather than per message; ValueError if it is not one."""
    org, device = subjects.parse_telemetry(subjects.unstored(subject))
    return UUID(org), UUID(device)


class _StoredByBroker:
    """A TELEMETRY message that is an MQTT QoS 1/2 publish: readings-mqtt stores its copy."""


STORED_BY_BROKER = _StoredByBroker()
Decoded = Incoming | PermanentFailure | _StoredByBroker


def _incoming(msg: Msg, max_deliver: int) -> Incoming:
    try:
        org_id, device_id = _device_of(msg.subject)
    except ValueError as exc:  # no tenant to quarantine it under
        raise PermanentFailure(f"not a device telemetry subject: {msg.subject}") from exc
    meta = msg.metadata
    # The stream's own timestamp: the same on every redelivery, so a defaulted ``ts`` is too.
    arrival = meta.timestamp if meta else datetime.now(UTC)
    attempt = meta.num_delivered if meta else 1
    incoming = Incoming(
        org_id=org_id,
        device_id=device_id,
        message=None,
        arrival=arrival,
        raw=msg.data,
        subject=subjects.unstored(msg.subject),
        stream_seq=meta.sequence.stream if meta else None,
        first_delivery=attempt <= 1,
        last_attempt=attempt >= max_deliver,
    )
    if msg.headers and msg.headers.get(SOURCE_HEADER) == SOURCE_HTTP:
        incoming.source = SOURCE_HTTP  # an HTTP batch (decision 59): its seq is not counted
    elif msg.subject.startswith(subjects.MQTT_STORED_PREFIX):
        incoming.source = SOURCE_MQTT  # stream_seq is $MQTT_msgs' (decision 82)
    try:
        incoming.message = _decoder.decode(msg.data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        incoming.error = f"invalid telemetry payload: {exc}"[:500]
    return incoming


async def _fetch(
    sub: JetStreamContext.PullSubscription,
    batch: int,
    max_deliver: int,
    mqtt_after: datetime | None = None,
) -> list[tuple[Msg, Decoded]]:
    """The next batch, decoded; empty when there was nothing to fetch (or fetching
    failed, after a pause)."""
    try:
        msgs = await sub.fetch(batch, timeout=1.0)
    except TimeoutError:  # nats-py and asyncio time-outs alike: nothing to fetch
        return []
    except Exception as exc:
        _log.warning("telemetry fetch failed: %r", exc)
        await asyncio.sleep(0.5)
        return []
    return [(msg, _decoded(msg, max_deliver, mqtt_after)) for msg in msgs]


def _decoded(msg: Msg, max_deliver: int, mqtt_after: datetime | None = None) -> Decoded:
    """``mqtt_after``: when readings-mqtt was created. An MQTT QoS 1/2 message that reached
    TELEMETRY after that is in $MQTT_msgs too (nats-server stores it there before its PUBACK,
    and the consumer's interest keeps it), and is stored from there."""
    if (
        mqtt_after is not None
        and subjects.mqtt_stored(msg.headers)
        and msg.metadata is not None
        and msg.metadata.timestamp > mqtt_after
    ):
        return STORED_BY_BROKER
    try:
        return _incoming(msg, max_deliver)
    except PermanentFailure as exc:
        return exc


async def copies_after(js: JetStreamContext, mqtt: ConsumerSpec | None) -> datetime | None:
    """When the consumer ``mqtt`` (readings-mqtt) was created; None without one."""
    if mqtt is None:
        return None
    return (await js.consumer_info(mqtt.stream, mqtt.name)).created


async def run(
    deps: Deps,
    js: JetStreamContext,
    spec: ConsumerSpec,
    batch: int,
    stop: asyncio.Event,
    *,
    hold_backoff_max: float = HOLD_BACKOFF_MAX_SECONDS,
    mqtt: ConsumerSpec | None = None,
) -> None:
    """Fetch and decode the next batch while the previous one is stored: one fetch in
    flight at a time, batches stored one after the other in fetch order, each acked only
    after its commit. While the database is unavailable the batch is kept and retried
    (``hold_backoff_max`` caps the wait between attempts); nothing is nak'ed for it.
    ``mqtt``: the consumer that stores MQTT QoS 1/2 telemetry from $MQTT_msgs (given to
    the TELEMETRY loop: their copies here are skipped)."""
    sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
    after = await copies_after(js, mqtt)
    ahead: asyncio.Task[list[tuple[Msg, Decoded]]] | None = None
    try:
        while not stop.is_set():
            fetched = await (ahead or _fetch(sub, batch, spec.max_deliver, after))
            ahead = None
            if not fetched:
                continue
            if not stop.is_set():
                ahead = asyncio.create_task(_fetch(sub, batch, spec.max_deliver, after))
            try:
                await handle_decoded(deps, spec, fetched, stop, hold_backoff_max=hold_backoff_max)
            except Exception as exc:  # e.g. a dead letter not written: redelivered later
                _log.error("telemetry batch of %d not settled: %r", len(fetched), exc)
    finally:
        if ahead is not None:  # fetched but never stored: deliver them again now
            with contextlib.suppress(Exception):
                for msg, _ in await ahead:
                    await msg.nak()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def handle(
    deps: Deps, spec: ConsumerSpec, msgs: list[Msg], mqtt_after: datetime | None = None
) -> None:
    """Store a fetched batch in one transaction, then ack every message it settled."""
    await handle_decoded(
        deps, spec, [(msg, _decoded(msg, spec.max_deliver, mqtt_after)) for msg in msgs]
    )


async def handle_decoded(
    deps: Deps,
    spec: ConsumerSpec,
    fetched: list[tuple[Msg, Decoded]],
    stop: asyncio.Event | None = None,
    *,
    hold_backoff_max: float = HOLD_BACKOFF_MAX_SECONDS,
) -> None:
    """Store a decoded batch in one transaction, then ack every message it settled. Nothing
    is acked before the commit; a crash in between redelivers, and storing is idempotent.

    A trace starts here for device telemetry: one span per batch, linked to the contexts
    its messages were published in (an HTTP batch carries its request's ``traceparent``;
    a device's message usually carries none)."""
    listening = telemetry.listening()
    links = telemetry.links_to(msg.headers for msg, _ in fetched) if listening else None
    with telemetry.tracer(__name__).start_as_current_span(
        f"ingest {spec.name}", kind=SpanKind.CONSUMER, links=links
    ) as span:
        if listening:
            span.set_attribute("messaging.batch.message_count", len(fetched))
        await _handle_decoded(deps, spec, fetched, stop, hold_backoff_max)


async def _handle_decoded(
    deps: Deps,
    spec: ConsumerSpec,
    fetched: list[tuple[Msg, Decoded]],
    stop: asyncio.Event | None,
    hold_backoff_max: float,
) -> None:
    good: list[tuple[Msg, Incoming]] = []
    for msg, item in fetched:
        if isinstance(item, PermanentFailure):
            await dead_letter(deps.uow, spec.name, msg, item)
        elif isinstance(item, _StoredByBroker):
            SKIPPED_COPIES.inc()
            await msg.ack()
        else:
            good.append((msg, item))
    if not good:
        return
    try:
        outcomes = await _store(deps, good, stop, hold_backoff_max)
    except Exception as exc:
        _log.warning("telemetry batch of %d failed: %s; redelivering", len(good), exc)
        for msg, _ in good:
            await msg.nak(delay=backoff_seconds(msg.metadata.num_delivered))
        return
    if outcomes is None:  # stopping while the database is unavailable
        for msg, _ in good:
            with contextlib.suppress(Exception):
                await msg.nak()
        return
    stored = rejected = dropped = 0
    for (msg, _), outcome in zip(good, outcomes, strict=True):
        if outcome.retry:  # the registry may not have caught up with the registration yet
            await msg.nak(delay=backoff_seconds(msg.metadata.num_delivered))
            continue
        stored += outcome.stored
        rejected += outcome.rejected
        dropped += outcome.dropped
        await msg.ack()
    STORED.inc(stored)
    REJECTED.inc(rejected)
    DROPPED.inc(dropped)


async def _store(
    deps: Deps,
    good: list[tuple[Msg, Incoming]],
    stop: asyncio.Event | None,
    hold_backoff_max: float,
) -> list[Outcome] | None:
    """``ingest`` the batch; while the database is unavailable, keep the batch and try
    again with backoff, renewing the messages' ack wait (``+WPI``) so JetStream neither
    redelivers them nor counts deliveries against ``max_deliver``: an outage of any length
    loses nothing. Any other error is raised (the caller naks: the retry budget applies).
    None when ``stop`` is set during an outage."""
    items = [item for _, item in good]
    attempt = 0
    while True:
        try:
            return await ingest(deps, items, ids.now())
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            attempt += 1
            HELD.inc()
            delay = min(0.2 * 2 ** (attempt - 1), hold_backoff_max)
            log = _log.warning if attempt == 1 or attempt % 20 == 0 else _log.debug
            log(
                "database unavailable (%s: %s); keeping a telemetry batch of %d, attempt %d,"
                " next in %.1fs",
                type(exc).__name__,
                exc,
                len(items),
                attempt,
                delay,
            )
        # The failed commit may have happened after all (the connection broke during it):
        # from now on the batch is stored as a redelivery, which counts no seq twice.
        for item in items:
            item.first_delivery = False
        for msg, _ in good:
            with contextlib.suppress(Exception):  # NATS may be down too: redelivered then
                await msg.in_progress()
        if stop is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return None
