"""The TELEMETRY evaluation loop: fetch a batch, evaluate it in one transaction, then ack.

Raw nats-py, as readings' ingest: batch fetches and acks after one commit. The consumer
(``alerting-telemetry``) delivers only what arrives after it was created: alerting judges
the present, it does not replay a week of history into alerts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from outpost_alerting.app.evaluation import Incoming, evaluate
from outpost_contracts import subjects
from outpost_contracts.readings import TelemetryMessage
from outpost_contracts.streams import ConsumerSpec
from outpost_kit import ids, telemetry
from outpost_kit.consumer import backoff_seconds
from outpost_kit.db.errors import database_unavailable
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.pull import Puller

_log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(TelemetryMessage)

EVALUATED = Counter("outpost_alerting_readings_evaluated_total", "Readings evaluated")
FIRED = Counter("outpost_alerting_alerts_fired_total", "Alerts opened by evaluation")
CLEARED = Counter("outpost_alerting_alerts_cleared_total", "Alerts resolved by evaluation")
UNAVAILABLE = Counter(
    "outpost_alerting_evaluation_unavailable_total",
    "Evaluation attempts that found the database unavailable (the batch is held)",
)
BATCH_SECONDS = Histogram(
    "outpost_alerting_evaluation_seconds", "Time to evaluate and commit one batch"
)


@functools.lru_cache(maxsize=65_536)
def _device_of(subject: str) -> tuple[UUID, UUID]:
    org, device = subjects.parse_telemetry(subject)
    return UUID(org), UUID(device)


def _device_key(msg: Msg) -> tuple[UUID, UUID] | None:
    try:
        return _device_of(msg.subject)
    except ValueError:
        return None


def incoming(msg: Msg) -> Incoming | None:
    """The message as evaluation sees it; None for one it cannot read (readings quarantines
    those; evaluation has nothing to say about them)."""
    try:
        org_id, device_id = _device_of(msg.subject)
        message = _decoder.decode(msg.data)
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError):
        return None
    meta = msg.metadata
    arrival = meta.timestamp if meta else datetime.now(UTC)
    return Incoming(org_id=org_id, device_id=device_id, arrival=arrival, points=message.readings)


async def run(
    uow: UnitOfWorkFactory,
    nc: Client,
    spec: ConsumerSpec,
    batch: int,
    stop: asyncio.Event,
) -> None:
    """Evaluate batches as they arrive: a reading that fires a rule is judged the moment it
    is delivered (``Puller``), not when a fetch of ``batch`` fills or times out."""
    puller = Puller(nc, spec.stream, spec.name, batch)
    await puller.start()
    try:
        while not stop.is_set():
            try:
                msgs = await puller.next_batch(1.0)
            except Exception as exc:  # the connection is reconnecting: try again shortly
                _log.warning("pulling telemetry failed: %r", exc)
                await asyncio.sleep(0.5)
                continue
            if not msgs:
                continue
            # One span per batch (a trace starts here for device telemetry), linked to the
            # contexts its messages were published in, when they carry one.
            listening = telemetry.listening()
            links = telemetry.links_to(m.headers for m in msgs) if listening else None
            with telemetry.tracer(__name__).start_as_current_span(
                f"evaluate {spec.name}", kind=SpanKind.CONSUMER, links=links
            ) as span:
                if listening:
                    span.set_attribute("messaging.batch.message_count", len(msgs))
                await handle(uow, msgs, spec.max_deliver, puller.keep_alive, spec.ack_wait_seconds)
    finally:
        with contextlib.suppress(Exception):
            await puller.stop()


async def handle(
    uow: UnitOfWorkFactory,
    msgs: list[Msg],
    max_deliver: int = 20,
    keep_alive: Callable[[], Awaitable[None]] | None = None,
    ack_wait: float = 30.0,
) -> None:
    """Evaluate a batch, then ack it; a message of a device alerting does not know yet is
    delivered again later (until its last delivery: then it is let go)."""
    items = [item for item in (incoming(m) for m in msgs) if item is not None]
    wait = 0.2
    while True:
        try:
            with BATCH_SECONDS.time():
                outcome = await evaluate(uow, items, ids.now()) if items else None
            break
        except Exception as exc:
            if not database_unavailable(exc):
                _log.warning("evaluating %d messages failed: %r; redelivering", len(msgs), exc)
                for msg in msgs:
                    await msg.nak(delay=backoff_seconds(msg.metadata.num_delivered))
                return
            # Postgres is down (decision 62): keep the batch, and its lease, until it is
            # back, rather than spend the messages' deliveries on the outage.
            _log.warning("database unavailable; holding %d messages: %r", len(msgs), exc)
            UNAVAILABLE.inc()
            until = time.monotonic() + wait
            while True:  # in-progress acks well within the ack wait, however long the pause
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()
                if keep_alive is not None:  # and what was delivered behind the batch
                    await keep_alive()
                left = until - time.monotonic()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, ack_wait / 3))
            wait = min(wait * 2, 5.0)
    unknown = outcome.unknown if outcome is not None else set()
    for msg in msgs:
        attempt = msg.metadata.num_delivered if msg.metadata else 1
        if unknown and attempt < max_deliver and _device_key(msg) in unknown:
            await msg.nak(delay=backoff_seconds(attempt))
        else:
            await msg.ack()
    EVALUATED.inc(sum(len(i.points) for i in items))
    if outcome is not None:
        FIRED.inc(outcome.fired)
        CLEARED.inc(outcome.cleared)
