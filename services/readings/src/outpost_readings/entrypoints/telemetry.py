"""The TELEMETRY ingest loop: fetch a large batch, decode, validate and store it in one
transaction (readings, quarantine, seq state), then ack.

The kit's ``BatchConsumer`` (ADR 0083) with a ``Fetcher`` and fetch-ahead: this is the hot
path (docs/performance.md), and it needs large batch fetches and per-message ack/nak/term
after one commit. Here: the decoder (``_incoming``) and the handler (``_ingest``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from prometheus_client import Counter

from outpost_contracts.readings import SOURCE_HEADER, SOURCE_HTTP, TelemetryMessage
from outpost_contracts.streams import ConsumerSpec
from outpost_contracts.subjects import telemetry_device
from outpost_kit import ids
from outpost_kit.consumer import (
    ACK,
    HOLD_BACKOFF_MAX_SECONDS,
    RETRY,
    BatchConsumer,
    Delivery,
    Options,
    PermanentFailure,
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
DROPPED = Counter(
    "outpost_readings_suspended_dropped_total",
    "Telemetry messages acknowledged unread because their organization is suspended",
)
HELD = Counter(
    "outpost_readings_ingest_unavailable_total",
    "Attempts to store a batch that found the database unavailable (the batch is kept and"
    " retried, not nak'ed)",
)


def _incoming(msg: Msg, max_deliver: int) -> Incoming:
    try:
        org_id, device_id = telemetry_device(msg.subject)
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
        subject=msg.subject,
        stream_seq=meta.sequence.stream if meta else None,
        first_delivery=attempt <= 1,
        last_attempt=attempt >= max_deliver,
    )
    if msg.headers and msg.headers.get(SOURCE_HEADER) == SOURCE_HTTP:
        incoming.source = SOURCE_HTTP  # an HTTP batch (decision 59): its seq is not counted
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
) -> None:
    """Fetch and decode the next batch while the previous one is stored: one fetch in
    flight at a time, batches stored one after the other in fetch order, each acked only
    after its commit. While the database is unavailable the batch is kept and retried
    (``hold_backoff_max`` caps the wait between attempts); nothing is nak'ed for it."""

    async def handle(batch: Sequence[Delivery[Incoming]]) -> list[Verdict]:
        return await _ingest(deps, batch)

    consumer = BatchConsumer(
        spec,
        Fetcher(js, spec.stream, spec.name, batch),
        lambda msg: _incoming(msg, spec.max_deliver),
        handle,
        Options(fetch_ahead=True, hold_backoff_max=hold_backoff_max),
        uow=deps.uow,
        scope=batch_span(__name__, f"ingest {spec.name}"),
        holds=HELD,
    )
    await consumer.run(stop)


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
