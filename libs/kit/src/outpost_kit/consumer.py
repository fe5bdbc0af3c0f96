"""Idempotent JetStream consumers: inbox row in the same transaction as the effects, ack only
after commit, dead letters for what can never succeed (docs/architecture.md principle 4).

A handler receives the unit of work (already set to the event's tenant) and the decoded
event. It raises ``PermanentFailure`` for input that will never be processed (it is
dead-lettered at once); any other exception is transient: the message is redelivered with
backoff until ``max_deliver``, then dead-lettered with the last error. Nothing is swallowed.
While the database is unavailable (``outpost_kit.db.errors``) a message is kept and tried
again instead, its ack wait renewed, so an outage spends none of its deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from prometheus_client import Counter
from sqlalchemy import text

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.streams import ConsumerSpec
from outpost_kit import telemetry
from outpost_kit.db.errors import database_unavailable
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.logs import request_scope
from outpost_kit.messaging import MSG_ID

_log = logging.getLogger(__name__)

PROCESSED = Counter("outpost_consumer_processed_total", "Messages processed", ["consumer"])
DUPLICATES = Counter(
    "outpost_consumer_duplicates_total", "Redeliveries skipped by the inbox", ["consumer"]
)
REDELIVERIES = Counter(
    "outpost_consumer_redeliveries_total", "Transient failures redelivered", ["consumer"]
)
DEAD_LETTERS = Counter("outpost_dead_letters_total", "Messages dead-lettered", ["consumer"])
WAITS = Counter(
    "outpost_consumer_database_waits_total",
    "Waits for an unavailable database with the message kept (not redelivered)",
    ["consumer"],
)
# While the database is unavailable a message is tried again after 0.2 s, doubling to this.
HOLD_BACKOFF_MAX_SECONDS = 5.0

EventHandler = Callable[[UnitOfWork, EventEnvelope], Awaitable[None]]


class PermanentFailure(Exception):
    """This message will never be processed; dead-letter it now."""


class UnknownEvent(PermanentFailure):
    pass


def backoff_seconds(attempt: int) -> float:
    """Redelivery delay after the ``attempt``-th failure: 0.2 s doubling, capped at 30 s."""
    return float(min(0.2 * 2 ** max(attempt - 1, 0), 30.0))


class InboxConsumer:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: EventHandler,
        codec: EventCodec,
        *,
        batch_size: int = 100,
        ignore_unknown: bool = True,
    ) -> None:
        self._uow = uow
        self._js = js
        self.spec = spec
        self._handler = handler
        self._codec = codec
        self.batch_size = batch_size
        self.ignore_unknown = ignore_unknown
        self.processed = 0
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        sub = await self._js.pull_subscribe_bind(self.spec.name, stream=self.spec.stream)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=1.0)
                except TimeoutError:  # nats-py and asyncio time-outs alike: nothing to fetch
                    continue
                except Exception as exc:
                    _log.warning("consumer %s: fetch failed: %r", self.spec.name, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    try:
                        await self.process(msg)
                    except Exception as exc:  # e.g. a dead letter not written: redelivered
                        _log.error("consumer %s: message not settled: %r", self.spec.name, exc)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def process(self, msg: Msg) -> None:
        """Apply one message exactly once, then ack; or redeliver; or dead-letter."""
        name = self.spec.name
        headers = msg.headers or {}
        try:
            envelope = self._decode(msg.data)
        except PermanentFailure as exc:
            await self._dead_letter(msg, exc)
            return
        if envelope is None:  # an event type this consumer does not handle
            await msg.ack()
            return
        message_id = headers.get(MSG_ID) or str(envelope.id)
        # The span continues the trace that caused the event (the relay's publish, itself a
        # child of the request that appended it) and links to it (decision 66).
        parent = telemetry.extract(headers)
        link = Link(trace.get_current_span(parent).get_span_context())
        with (
            telemetry.tracer(__name__).start_as_current_span(
                f"consume {name} {envelope.type}",
                kind=SpanKind.CONSUMER,
                links=[link],
                context=parent,
            ) as span,
            request_scope(envelope.request_id),
        ):
            if span.is_recording():
                span.set_attribute("messaging.consumer.group.name", name)
                span.set_attribute("messaging.message.id", message_id)
                span.set_attribute("outpost.event_id", str(envelope.id))
                span.set_attribute("outpost.org_id", str(envelope.org_id))
            outages = 0
            while True:
                try:
                    async with self._uow(envelope.org_id) as uow:
                        claimed = await uow.conn.execute(
                            text(
                                "INSERT INTO inbox (consumer, message_id) VALUES (:c, :m)"
                                " ON CONFLICT DO NOTHING RETURNING 1"
                            ),
                            {"c": name, "m": message_id},
                        )
                        if claimed.first() is None:
                            DUPLICATES.labels(name).inc()
                        else:
                            await self._handler(uow, envelope)
                        await uow.commit()
                except PermanentFailure as exc:
                    await self._dead_letter(msg, exc)
                    return
                except Exception as exc:
                    # The database is down: keep the message and try again; an outage must
                    # not spend its deliveries (ADR 0062).
                    if (
                        database_unavailable(exc)
                        and not self._stopping()
                        and not await self._database_answers()
                    ):
                        outages += 1
                        await self._wait_for_database(msg, exc, outages)
                        continue
                    await self._transient(msg, exc)
                    return
                break
        await msg.ack()
        PROCESSED.labels(name).inc()
        self.processed += 1

    def _decode(self, data: bytes) -> EventEnvelope | None:
        try:
            return self._codec.decode_envelope(data)
        except msgspec.ValidationError as exc:
            tag = _tag_of(data)
            if tag is not None and not self._codec.knows(tag) and self.ignore_unknown:
                return None
            raise PermanentFailure(f"undecodable event: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise PermanentFailure(f"not JSON: {exc}") from exc

    async def _database_answers(self) -> bool:
        """Whether the database answers now: a handler's connection refused by something
        else (a webhook, another service) is an ordinary failure with a retry budget."""
        try:
            async with self._uow(None) as uow:
                await uow.execute("SELECT 1")
        except Exception:
            return False
        return True

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _wait_for_database(self, msg: Msg, exc: Exception, outages: int) -> None:
        """Renew the message's ack wait (``+WPI``: no redelivery, no delivery counted) and
        wait 0.2 s doubling to ``HOLD_BACKOFF_MAX_SECONDS`` (or until stopping)."""
        WAITS.labels(self.spec.name).inc()
        delay = min(0.2 * 2 ** (outages - 1), HOLD_BACKOFF_MAX_SECONDS)
        if outages == 1 or outages % 20 == 0:
            _log.warning(
                "consumer %s: database unavailable (%s: %s); keeping the message, attempt %d",
                self.spec.name,
                type(exc).__name__,
                exc,
                outages,
            )
        with contextlib.suppress(Exception):  # the broker may be down too: redelivered then
            await msg.in_progress()
        if self._stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def _transient(self, msg: Msg, exc: Exception) -> None:
        attempt = msg.metadata.num_delivered if msg.metadata else 1
        if attempt >= self.spec.max_deliver:
            await self._dead_letter(msg, exc, attempts=attempt)
            return
        REDELIVERIES.labels(self.spec.name).inc()
        _log.warning(
            "consumer %s: attempt %d failed (%s: %s); redelivering",
            self.spec.name,
            attempt,
            type(exc).__name__,
            exc,
        )
        await msg.nak(delay=backoff_seconds(attempt))

    async def _dead_letter(
        self, msg: Msg, exc: BaseException, *, attempts: int | None = None
    ) -> None:
        await dead_letter(self._uow, self.spec.name, msg, exc, attempts=attempts)


async def dead_letter(
    uow_factory: UnitOfWorkFactory,
    consumer: str,
    msg: Msg,
    exc: BaseException,
    *,
    attempts: int | None = None,
) -> None:
    """Record ``msg`` in the dead-letter table with the reason, then stop its redelivery."""
    headers = dict(msg.headers or {})
    attempt = attempts or (msg.metadata.num_delivered if msg.metadata else 1)
    async with uow_factory(None) as uow:
        await uow.conn.execute(
            text(
                "INSERT INTO dead_letters (consumer, message_id, subject, payload, headers,"
                " reason, error_class, attempts) VALUES (:c, :m, :s, :p, CAST(:h AS jsonb),"
                " :r, :e, :a)"
            ),
            {
                "c": consumer,
                "m": headers.get(MSG_ID),
                "s": msg.subject,
                "p": msg.data,
                "h": msgspec.json.encode(headers).decode(),
                "r": str(exc)[:2000] or type(exc).__name__,
                "e": type(exc).__name__,
                "a": attempt,
            },
        )
        await uow.commit()
    DEAD_LETTERS.labels(consumer).inc()
    _log.error("consumer %s: dead-lettered %s: %s", consumer, msg.subject, exc)
    await msg.term()


def _tag_of(data: bytes) -> str | None:
    try:
        probe: Any = msgspec.json.decode(data)
        tag = probe.get("data", {}).get("type")
        return tag if isinstance(tag, str) else None
    except Exception:
        return None
