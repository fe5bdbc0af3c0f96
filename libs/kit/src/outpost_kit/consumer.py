"""One JetStream consumer for every service: fetch, decode, handle, then ack, retry or
dead-letter; and, while the database is unavailable, keep the batch in hand (ADR 0083).

``BatchConsumer`` is given the consumer's ``ConsumerSpec``, a ``Source`` of batches
(``outpost_kit.pull``: ``Fetcher`` or the low-latency ``Puller``), a decoder and a handler.
The decoder turns a message into what the handler reads; it raises ``PermanentFailure`` for
a message that can never be processed (dead-lettered at once) or returns ``SKIP`` for one
this consumer does not handle (acked unread). The handler answers a ``Verdict`` per message
of a batch (or of a batch of one, ``per_message``): ``ACK``, ``Retry`` (nak with a delay,
backoff by default; dead-lettered at its last delivery where the options say so),
``DeadLetter`` or ``LEAVE``. A handler that raises ``PermanentFailure`` dead-letters its
batch; any other exception is transient: the batch is redelivered. Nothing is swallowed.
While the database is unavailable (``outpost_kit.db.errors``) the batch is kept and tried
again instead, 0.2 s doubling to ``hold_backoff_max``, its ack wait renewed (``+WPI``) well
within the ack wait, and what was delivered behind it too, so an outage spends none of its
deliveries (ADR 0062). Stopping during an outage hands the batch back at once.

``InboxConsumer`` is the idempotent event consumer built on it: inbox row in the same
transaction as the effects, ack only after commit (docs/architecture.md principle 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

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
from outpost_kit.pull import Fetcher, Source

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
# While the database is unavailable a batch is tried again after 0.2 s, doubling to this.
HOLD_BACKOFF_MAX_SECONDS = 5.0

EventHandler = Callable[[UnitOfWork, EventEnvelope], Awaitable[None]]

T = TypeVar("T")


class PermanentFailure(Exception):
    """This message will never be processed; dead-letter it now."""


class UnknownEvent(PermanentFailure):
    pass


def backoff_seconds(attempt: int) -> float:
    """Redelivery delay after the ``attempt``-th failure: 0.2 s doubling, capped at 30 s."""
    return float(min(0.2 * 2 ** max(attempt - 1, 0), 30.0))


class Skip:
    """What a decoder returns for a message this consumer does not handle: acked unread."""


SKIP = Skip()


@dataclass(frozen=True, slots=True)
class Ack:
    """Processed: the message can go."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Deliver it again after ``delay`` seconds (``None``: ``backoff_seconds`` of its
    delivery count). At its last delivery it is dead-lettered with ``reason`` instead when
    the consumer's ``Options.dead_letter_exhausted`` says so."""

    delay: float | None = None
    reason: BaseException | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Never processable: recorded in ``dead_letters`` with the reason, then terminated."""

    reason: BaseException


@dataclass(frozen=True, slots=True)
class Leave:
    """Neither acked nor nak'ed: another delivery of it is being worked on."""


Verdict = Ack | Retry | DeadLetter | Leave
ACK = Ack()
RETRY = Retry()
LEAVE = Leave()


@dataclass(slots=True)
class Delivery(Generic[T]):
    """A delivered message and what the decoder made of it."""

    msg: Msg
    item: T

    @property
    def attempt(self) -> int:
        """Which delivery of the message this is (1 for the first)."""
        meta = self.msg.metadata
        return meta.num_delivered if meta else 1

    async def in_progress(self) -> None:
        """Renew the message's ack wait; the broker may be away (then it comes back)."""
        with contextlib.suppress(Exception):
            await self.msg.in_progress()


Handler = Callable[[Sequence[Delivery[T]]], Awaitable[Sequence[Verdict]]]
Scope = Callable[[Sequence[Delivery[T]]], AbstractContextManager[object]]


class _Inc(Protocol):
    def inc(self, amount: float = 1) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How a ``BatchConsumer`` runs. ``fetch_ahead``: the next batch is fetched and decoded
    while one is handled (``Fetcher`` only); ``per_message``: each message of a fetched
    batch is handled and settled on its own, one after the other; ``hold``: keep the batch
    while the database is unavailable (else an outage is an ordinary failure);
    ``probe_database``: hold only if the database does not answer a ``SELECT 1`` either (a
    connection refused by something else has a retry budget); ``failure_delay``: the nak
    delay after a transient failure (``None``: backoff); ``dead_letter_exhausted``: a retry
    at the last delivery is dead-lettered; ``fetch_pause``: the pause after a failed fetch."""

    fetch_ahead: bool = False
    per_message: bool = False
    hold: bool = True
    probe_database: bool = False
    hold_backoff_max: float = HOLD_BACKOFF_MAX_SECONDS
    failure_delay: float | None = None
    dead_letter_exhausted: bool = False
    fetch_pause: float = 0.5


_Decoded = tuple[Msg, T | Skip | PermanentFailure]


class BatchConsumer(Generic[T]):
    """The one fetch loop (see the module's docstring). ``uow`` writes dead letters (and
    answers ``probe_database``); without one a dead letter is only logged and terminated.
    ``scope`` wraps the handling of a batch (its span); ``holds`` counts the consumer's
    own waits for the database besides ``outpost_consumer_database_waits_total``."""

    def __init__(
        self,
        spec: ConsumerSpec,
        source: Source,
        decode: Callable[[Msg], T | Skip],
        handle: Handler[T],
        options: Options,
        *,
        uow: UnitOfWorkFactory | None = None,
        scope: Scope[T] | None = None,
        holds: _Inc | None = None,
    ) -> None:
        if options.fetch_ahead and not isinstance(source, Fetcher):
            raise ValueError("fetch_ahead needs a Fetcher: a Puller's inbox has one reader")
        self.spec = spec
        self._source = source
        self._decode = decode
        self._handle = handle
        self.options = options
        self._uow = uow
        self._scope = scope
        self._holds = holds
        self._processed = PROCESSED.labels(spec.name)
        self._redeliveries = REDELIVERIES.labels(spec.name)
        self._waits = WAITS.labels(spec.name)
        self._ahead: asyncio.Task[list[_Decoded[T]]] | None = None
        # Per message: the fetched batch and where its rest, still in hand, starts.
        self._behind: tuple[Sequence[_Decoded[T]], int] = ((), 0)
        self.processed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: fetch, decode, handle, settle. Batches are handled one after the
        other in fetch order; with ``fetch_ahead`` one fetch is in flight meanwhile."""
        await self._source.start()
        try:
            while not stop.is_set():
                fetched = await (self._ahead or self._next())
                self._ahead = None
                if not fetched:
                    continue
                if self.options.fetch_ahead and not stop.is_set():
                    self._ahead = asyncio.create_task(self._next())
                try:
                    if self.options.per_message:
                        try:
                            for i, one in enumerate(fetched):
                                self._behind = (fetched, i + 1)
                                await self.settle([one], stop)
                        finally:
                            self._behind = ((), 0)
                    else:
                        await self.settle(fetched, stop)
                except Exception as exc:  # e.g. a dead letter not written: redelivered
                    _log.error(
                        "consumer %s: %d message(s) not settled: %r",
                        self.spec.name,
                        len(fetched),
                        exc,
                    )
        finally:
            ahead, self._ahead = self._ahead, None
            if ahead is not None:  # fetched but never handled: deliver them again now
                with contextlib.suppress(Exception):
                    for msg, _ in await ahead:
                        await msg.nak()
            with contextlib.suppress(Exception):
                await self._source.stop()

    async def _next(self) -> list[_Decoded[T]]:
        """The next batch, decoded; empty when nothing came (or fetching failed, after a
        pause: the connection is reconnecting)."""
        try:
            msgs = await self._source.next_batch(1.0)
        except Exception as exc:
            _log.warning("consumer %s: fetch failed: %r", self.spec.name, exc)
            await asyncio.sleep(self.options.fetch_pause)
            return []
        return [(msg, self.decoded(msg)) for msg in msgs]

    def decoded(self, msg: Msg) -> T | Skip | PermanentFailure:
        try:
            return self._decode(msg)
        except PermanentFailure as exc:
            return exc

    async def settle(self, fetched: Sequence[_Decoded[T]], stop: asyncio.Event | None) -> None:
        """Handle a decoded batch, then ack, nak or dead-letter each message as answered.
        Nothing is acked before the handler returned (its commit)."""
        live: list[Delivery[T]] = []
        for msg, item in fetched:
            if isinstance(item, PermanentFailure):
                await self._settle(msg, DeadLetter(item))
            elif isinstance(item, Skip):
                await self._settle(msg, ACK)
            else:
                live.append(Delivery(msg, item))
        if not live:
            return
        with self._scope(live) if self._scope is not None else contextlib.nullcontext():
            verdicts = await self._attempt(live, stop)
        if verdicts is None:  # stopping during an outage: hand the batch back at once
            for delivery in live:
                with contextlib.suppress(Exception):
                    await delivery.msg.nak()
            return
        acked = 0
        for delivery, verdict in zip(live, verdicts, strict=True):
            if await self._settle(delivery.msg, verdict):
                acked += 1
        if acked:
            self.processed += acked
            self._processed.inc(acked)

    async def _attempt(
        self, live: list[Delivery[T]], stop: asyncio.Event | None
    ) -> Sequence[Verdict] | None:
        """The handler's verdicts; its failure as verdicts; None when stopping during an
        outage."""
        outages = 0
        while True:
            try:
                return await self._handle(live)
            except PermanentFailure as exc:
                return [DeadLetter(exc)] * len(live)
            except Exception as exc:
                stopping = stop is not None and stop.is_set()
                if not (self.options.hold and database_unavailable(exc)) or (
                    not stopping and self.options.probe_database and await self._answers()
                ):
                    _log.warning(
                        "consumer %s: %d message(s) failed at delivery %d (%s: %s); redelivering",
                        self.spec.name,
                        len(live),
                        live[0].attempt,
                        type(exc).__name__,
                        exc,
                    )
                    return [Retry(self.options.failure_delay, exc)] * len(live)
                if stopping:
                    return None
                outages += 1
                if not await self._hold(live, exc, outages, stop):
                    return None

    async def _answers(self) -> bool:
        """Whether the database answers now: a handler's connection refused by something
        else (a webhook, another service) is an ordinary failure with a retry budget."""
        if self._uow is None:
            return False
        try:
            async with self._uow(None) as uow:
                await uow.execute("SELECT 1")
        except Exception:
            return False
        return True

    async def _hold(
        self, live: list[Delivery[T]], exc: Exception, outages: int, stop: asyncio.Event | None
    ) -> bool:
        """Keep the batch through an outage: wait 0.2 s doubling to ``hold_backoff_max``,
        renewing its messages' ack wait (``+WPI``: no redelivery, no delivery counted) at
        least every third of the ack wait, and that of what was delivered behind it. False
        when ``stop`` is set meanwhile."""
        self._waits.inc()
        if self._holds is not None:
            self._holds.inc()
        delay = min(0.2 * 2 ** (outages - 1), self.options.hold_backoff_max)
        log = _log.warning if outages == 1 or outages % 20 == 0 else _log.debug
        log(
            "consumer %s: database unavailable (%s: %s); keeping %d message(s), attempt %d,"
            " next in %.1fs",
            self.spec.name,
            type(exc).__name__,
            exc,
            len(live),
            outages,
            delay,
        )
        until = time.monotonic() + delay
        renew = max(self.spec.ack_wait_seconds / 3, 0.05)
        while True:
            await self._keep_alive(live)
            left = until - time.monotonic()
            if left <= 0:
                return True
            if stop is None:
                await asyncio.sleep(min(left, renew))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(left, renew))
            if stop.is_set():
                return False

    async def _keep_alive(self, live: list[Delivery[T]]) -> None:
        for delivery in live:
            await delivery.in_progress()
        with contextlib.suppress(Exception):  # the broker may be away: redelivered then
            await self._source.keep_alive()
        fetched, rest = self._behind  # the rest of a batch handled per message
        behind = [msg for msg, _ in fetched[rest:]]
        ahead = self._ahead
        if ahead is not None and ahead.done() and not ahead.cancelled() and not ahead.exception():
            behind += [msg for msg, _ in ahead.result()]  # and a batch fetched ahead
        for msg in behind:
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _settle(self, msg: Msg, verdict: Verdict) -> bool:
        """Apply one verdict; True when the message was acked."""
        try:
            if isinstance(verdict, Ack):
                await msg.ack()
                return True
            if isinstance(verdict, Retry):
                await self._retry(msg, verdict)
            elif isinstance(verdict, DeadLetter):
                await self._dead_letter(msg, verdict.reason)
        except Exception as exc:  # not settled: the message comes back after its ack wait
            _log.error("consumer %s: message not settled: %r", self.spec.name, exc)
        return False

    async def _retry(self, msg: Msg, retry: Retry) -> None:
        attempt = msg.metadata.num_delivered if msg.metadata else 1
        if self.options.dead_letter_exhausted and attempt >= self.spec.max_deliver:
            reason = retry.reason or RuntimeError("redelivery budget spent")
            await self._dead_letter(msg, reason, attempts=attempt)
            return
        self._redeliveries.inc()
        await msg.nak(delay=backoff_seconds(attempt) if retry.delay is None else retry.delay)

    async def _dead_letter(
        self, msg: Msg, exc: BaseException, *, attempts: int | None = None
    ) -> None:
        if self._uow is None:
            DEAD_LETTERS.labels(self.spec.name).inc()
            _log.error("consumer %s: dropped %s: %s", self.spec.name, msg.subject, exc)
            await msg.term()
            return
        await dead_letter(self._uow, self.spec.name, msg, exc, attempts=attempts)


def batch_span(tracer: str, name: str) -> Scope[Any]:
    """A span per batch (a trace starts there for device telemetry), linked to the contexts
    its messages were published in, when they carry one."""

    @contextlib.contextmanager
    def scope(batch: Sequence[Delivery[Any]]) -> Iterator[None]:
        listening = telemetry.listening()
        links = telemetry.links_to(d.msg.headers for d in batch) if listening else None
        with telemetry.tracer(tracer).start_as_current_span(
            name, kind=SpanKind.CONSUMER, links=links
        ) as span:
            if listening:
                span.set_attribute("messaging.batch.message_count", len(batch))
            yield

    return scope


class _Event(NamedTuple):
    envelope: EventEnvelope
    message_id: str


class InboxConsumer:
    """An event consumer applying each message exactly once: its inbox row in the same
    transaction as the handler's effects, one message at a time. A handler receives the
    unit of work (already set to the event's tenant) and the decoded event; it raises
    ``PermanentFailure`` for an event that will never be processed; any other exception is
    redelivered with backoff until ``max_deliver``, then dead-lettered with the last error."""

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
        self.spec = spec
        self._handler = handler
        self._codec = codec
        self.batch_size = batch_size
        self.ignore_unknown = ignore_unknown
        self._stop: asyncio.Event | None = None
        self._consumer = BatchConsumer(
            spec,
            Fetcher(js, spec.stream, spec.name, batch_size),
            self._decode,
            self._apply,
            Options(per_message=True, probe_database=True, dead_letter_exhausted=True),
            uow=uow,
            scope=self._span,
        )

    @property
    def processed(self) -> int:
        return self._consumer.processed

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await self._consumer.run(stop)

    async def process(self, msg: Msg) -> None:
        """Apply one message exactly once, then ack; or redeliver; or dead-letter."""
        await self._consumer.settle([(msg, self._consumer.decoded(msg))], self._stop)

    def _decode(self, msg: Msg) -> _Event | Skip:
        try:
            envelope = self._codec.decode_envelope(msg.data)
        except msgspec.ValidationError as exc:
            tag = _tag_of(msg.data)
            if tag is not None and not self._codec.knows(tag) and self.ignore_unknown:
                return SKIP  # an event type this consumer does not handle
            raise PermanentFailure(f"undecodable event: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise PermanentFailure(f"not JSON: {exc}") from exc
        headers = msg.headers or {}
        return _Event(envelope, headers.get(MSG_ID) or str(envelope.id))

    @contextlib.contextmanager
    def _span(self, batch: Sequence[Delivery[_Event]]) -> Iterator[None]:
        # The span continues the trace that caused the event (the relay's publish, itself a
        # child of the request that appended it) and links to it (decision 66).
        (delivery,) = batch
        envelope, message_id = delivery.item
        parent = telemetry.extract(delivery.msg.headers or {})
        link = Link(trace.get_current_span(parent).get_span_context())
        with (
            telemetry.tracer(__name__).start_as_current_span(
                f"consume {self.spec.name} {envelope.type}",
                kind=SpanKind.CONSUMER,
                links=[link],
                context=parent,
            ) as span,
            request_scope(envelope.request_id),
        ):
            if span.is_recording():
                span.set_attribute("messaging.consumer.group.name", self.spec.name)
                span.set_attribute("messaging.message.id", message_id)
                span.set_attribute("outpost.event_id", str(envelope.id))
                span.set_attribute("outpost.org_id", str(envelope.org_id))
            yield

    async def _apply(self, batch: Sequence[Delivery[_Event]]) -> Sequence[Verdict]:
        (delivery,) = batch
        envelope, message_id = delivery.item
        async with self._uow(envelope.org_id) as uow:
            claimed = await uow.conn.execute(
                text(
                    "INSERT INTO inbox (consumer, message_id) VALUES (:c, :m)"
                    " ON CONFLICT DO NOTHING RETURNING 1"
                ),
                {"c": self.spec.name, "m": message_id},
            )
            if claimed.first() is None:
                DUPLICATES.labels(self.spec.name).inc()
            else:
                await self._handler(uow, envelope)
            await uow.commit()
        return (ACK,)


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
