"""The TELEMETRY ingest loop: fetch a large batch, decode, validate and store it in one
transaction (readings, quarantine, seq state), then ack.

The kit's ``BatchConsumer`` (ADR 0083) with a ``Fetcher`` and fetch-ahead: this is the hot
path (docs/performance.md), and it needs large batch fetches and per-message ack/nak/term
after one commit. Here: the decoder (``_decoded``) and the handler (``_ingest``).

The same loop runs on ``readings-mqtt``, nats-server's own store of MQTT QoS 1/2 publishes
(``$MQTT_msgs``, decision 82): that copy exists before the device gets its PUBACK, while the
copy TELEMETRY captured is a core publish, lost if TELEMETRY has no leader at that moment.
So the TELEMETRY loop skips (acknowledges unread) the MQTT QoS 1/2 messages that arrived after
``readings-mqtt`` was created, and each reading is stored from one copy only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from prometheus_client import Counter

from outpost_contracts import subjects
from outpost_contracts.readings import SOURCE_HEADER, SOURCE_HTTP, SOURCE_MQTT, TelemetryMessage
from outpost_contracts.streams import ConsumerSpec
from outpost_contracts.subjects import telemetry_device
from outpost_kit import ids
from outpost_kit.consumer import (
    ACK,
    HOLD_BACKOFF_MAX_SECONDS,
    RETRY,
    SKIP,
    BatchConsumer,
    Delivery,
    Options,
    PermanentFailure,
    Skip,
    Verdict,
    batch_span,
)
from outpost_kit.db.errors import database_unavailable
from outpost_kit.pull import Fetcher
from outpost_readings.app.handlers import Deps, Incoming, ingest

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


def _decoded(msg: Msg, max_deliver: int, mqtt_after: datetime | None = None) -> Incoming | Skip:
    """``mqtt_after``: when readings-mqtt was created. An MQTT QoS 1/2 message that reached
    TELEMETRY after that is in $MQTT_msgs too (nats-server stores it there before its PUBACK,
    and the consumer's interest keeps it), and is stored from there: acknowledged unread."""
    if (
        mqtt_after is not None
        and subjects.mqtt_stored(msg.headers)
        and msg.metadata is not None
        and msg.metadata.timestamp > mqtt_after
    ):
        SKIPPED_COPIES.inc()
        return SKIP
    return _incoming(msg, max_deliver)


def _incoming(msg: Msg, max_deliver: int) -> Incoming:
    """A TELEMETRY message, or its copy in ``$MQTT_msgs`` (readings-mqtt), decoded."""
    try:
        org_id, device_id = telemetry_device(subjects.unstored(msg.subject))
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
    after = await copies_after(js, mqtt)

    async def handle(batch: Sequence[Delivery[Incoming]]) -> list[Verdict]:
        return await _ingest(deps, batch)

    consumer = BatchConsumer(
        spec,
        Fetcher(js, spec.stream, spec.name, batch),
        lambda msg: _decoded(msg, spec.max_deliver, after),
        handle,
        Options(fetch_ahead=True, hold_backoff_max=hold_backoff_max),
        uow=deps.uow,
        scope=batch_span(__name__, f"ingest {spec.name}"),
        holds=HELD,
    )
    await consumer.run(stop)


async def copies_after(js: JetStreamContext, mqtt: ConsumerSpec | None) -> datetime | None:
    """When the consumer ``mqtt`` (readings-mqtt) was created; None without one."""
    if mqtt is None:
        return None
    return (await js.consumer_info(mqtt.stream, mqtt.name)).created


async def _ingest(deps: Deps, batch: Sequence[Delivery[Incoming]]) -> list[Verdict]:
    """Store a decoded batch in one transaction; ack every message it settled. Nothing is
    acked before the commit; a crash in between redelivers, and storing is idempotent."""
    items = [delivery.item for delivery in batch]
    try:
        outcomes = await ingest(deps, items, ids.now())
    except Exception as exc:
        if database_unavailable(exc):
            # The failed commit may have happened after all (the connection broke during
            # it): from now on the batch is stored as a redelivery, which counts no seq twice.
            for item in items:
                item.first_delivery = False
        raise
    stored = rejected = dropped = 0
    verdicts: list[Verdict] = []
    for outcome in outcomes:
        if outcome.retry:  # the registry may not have caught up with the registration yet
            verdicts.append(RETRY)
            continue
        stored += outcome.stored
        rejected += outcome.rejected
        dropped += outcome.dropped
        verdicts.append(ACK)
    STORED.inc(stored)
    REJECTED.inc(rejected)
    DROPPED.inc(dropped)
    return verdicts
