"""The TELEMETRY ingest loop: fetch a batch, decode, store in one transaction, then ack.

Raw nats-py rather than a FastStream subscriber: this is the hot path (PERFORMANCE.md), and
it needs batch fetches and per-message ack/nak/term after one commit.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from prometheus_client import Counter

from outpost_contracts import subjects
from outpost_contracts.readings import TelemetryMessage
from outpost_contracts.streams import ConsumerSpec
from outpost_kit import ids
from outpost_kit.consumer import PermanentFailure, backoff_seconds, dead_letter
from outpost_readings.app.handlers import Deps, Incoming, ingest

_log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(TelemetryMessage)

STORED = Counter("outpost_readings_stored_total", "Readings stored")
REJECTED = Counter("outpost_readings_rejected_total", "Readings refused by validation")


def _incoming(msg: Msg) -> Incoming:
    try:
        org, device = subjects.parse_telemetry(msg.subject)
        org_id, device_id = UUID(org), UUID(device)
    except ValueError as exc:
        raise PermanentFailure(f"not a device telemetry subject: {msg.subject}") from exc
    try:
        message = _decoder.decode(msg.data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PermanentFailure(f"invalid telemetry payload: {exc}") from exc
    # The stream's own timestamp: the same on every redelivery, so a defaulted ``ts`` is too.
    arrival = msg.metadata.timestamp if msg.metadata else datetime.now(UTC)
    return Incoming(org_id=org_id, device_id=device_id, message=message, arrival=arrival)


async def run(
    deps: Deps, js: JetStreamContext, spec: ConsumerSpec, batch: int, stop: asyncio.Event
) -> None:
    sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except TimeoutError:  # nats-py and asyncio time-outs alike: nothing to fetch
            continue
        except Exception as exc:
            _log.warning("telemetry fetch failed: %r", exc)
            await asyncio.sleep(0.5)
            continue
        await handle(deps, spec, msgs)


async def handle(deps: Deps, spec: ConsumerSpec, msgs: list[Msg]) -> None:
    good: list[tuple[Msg, Incoming]] = []
    for msg in msgs:
        try:
            good.append((msg, _incoming(msg)))
        except PermanentFailure as exc:
            await dead_letter(deps.uow, spec.name, msg, exc)
    if not good:
        return
    try:
        outcomes = await ingest(deps, [i for _, i in good], ids.now())
    except Exception as exc:
        _log.warning("telemetry batch of %d failed: %s; redelivering", len(good), exc)
        for msg, _ in good:
            await msg.nak(delay=backoff_seconds(msg.metadata.num_delivered))
        return
    for (msg, _), outcome in zip(good, outcomes, strict=True):
        if outcome.unknown_device:
            attempt = msg.metadata.num_delivered
            if attempt >= spec.max_deliver:
                await dead_letter(deps.uow, spec.name, msg, PermanentFailure("unknown device"))
            else:  # the registry may not have caught up with the device's registration yet
                await msg.nak(delay=backoff_seconds(attempt))
            continue
        STORED.inc(outcome.stored)
        REJECTED.inc(len(outcome.rejected))
        await msg.ack()
