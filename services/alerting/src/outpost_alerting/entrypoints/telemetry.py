"""The TELEMETRY evaluation loop: take a batch, evaluate it in one transaction, then ack.

The kit's ``BatchConsumer`` (ADR 0083) with a ``Puller``: a reading that fires a rule is
judged the moment it is delivered, not when a fetch of ``batch`` fills or times out. Here:
the decoder (``incoming``) and the handler (``_evaluate``). The consumer
(``alerting-telemetry``) delivers only what arrives after it was created: alerting judges
the present, it does not replay a week of history into alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import Counter, Histogram

from outpost_alerting.app.evaluation import Incoming, evaluate
from outpost_contracts.readings import TelemetryMessage
from outpost_contracts.streams import ConsumerSpec
from outpost_contracts.subjects import telemetry_device
from outpost_kit import ids
from outpost_kit.consumer import (
    ACK,
    RETRY,
    SKIP,
    BatchConsumer,
    Delivery,
    Options,
    Skip,
    Verdict,
    batch_span,
)
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.pull import Puller

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


def incoming(msg: Msg) -> Incoming | Skip:
    """The message as evaluation sees it; ``SKIP`` (acked unread) for one it cannot read
    (readings quarantines those; evaluation has nothing to say about them)."""
    try:
        org_id, device_id = telemetry_device(msg.subject)
        message = _decoder.decode(msg.data)
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError):
        return SKIP
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
    """Evaluate batches as they arrive (``Puller``); while the database is unavailable the
    batch is held, and what was delivered behind it kept alive (decision 62)."""

    async def handle(batch: Sequence[Delivery[Incoming]]) -> list[Verdict]:
        return await _evaluate(uow, spec.max_deliver, batch)

    consumer = BatchConsumer(
        spec,
        Puller(nc, spec.stream, spec.name, batch),
        incoming,
        handle,
        Options(),
        uow=uow,
        scope=batch_span(__name__, f"evaluate {spec.name}"),
        holds=UNAVAILABLE,
    )
    await consumer.run(stop)


async def _evaluate(
    uow: UnitOfWorkFactory, max_deliver: int, batch: Sequence[Delivery[Incoming]]
) -> list[Verdict]:
    """Evaluate a batch, then ack it; a message of a device alerting does not know yet is
    delivered again later (until its last delivery: then it is let go)."""
    items = [delivery.item for delivery in batch]
    with BATCH_SECONDS.time():
        outcome = await evaluate(uow, items, ids.now())
    unknown = outcome.unknown
    verdicts: list[Verdict] = [
        RETRY
        if unknown
        and delivery.attempt < max_deliver
        and (delivery.item.org_id, delivery.item.device_id) in unknown
        else ACK
        for delivery in batch
    ]
    EVALUATED.inc(sum(len(item.points) for item in items))
    FIRED.inc(outcome.fired)
    CLEARED.inc(outcome.cleared)
    return verdicts
