"""The outbox relay: every committed event reaches JetStream, exactly once by ``Nats-Msg-Id``.

Rows are marked individually (deleted once JetStream acknowledged them), never skipped by a
position watermark: a row committed late, out of position order, is simply still there on
the next poll (docs/design/reliability.md, "commit-order"). A publish is retried with the same
``Nats-Msg-Id`` (the event id) until acknowledged; JetStream's duplicate window absorbs the
repeats of a relay killed between ack and delete, and consumers' inboxes absorb the rest.

One relay per service is active at a time: it holds a session advisory lock on its own
connection, so a second replica stands by and takes over when the first one's connection
dies. The append's ``pg_notify`` wakes the relay; a short poll covers lost notifications.

Each row carries the trace context of the transaction that appended it (``traceparent`` in
its headers, also kept in the event's ``meta``). When spans are recorded, each publish is a
producer span that continues that trace, and the message carries the publish span's
context, so a consumer's span is a child of the publish and the trace runs from the HTTP
request through the relay into every consumer (decision 66). ``outpost_outbox_backlog`` and
``outpost_outbox_oldest_age_seconds`` say how far behind the relay is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from nats.js.client import JetStreamContext
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import subjects
from outpost_contracts.envelope import EventEnvelope
from outpost_kit import telemetry
from outpost_kit.db.engine import plain_dsn
from outpost_kit.messaging import MSG_ID, REQUEST_ID

_log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()

CHANNEL = "outpost_outbox"

# --- writing rows -----------------------------------------------------------------------
# The one statement that writes outbox rows, from four parallel arrays (``outbox_params``).
# ``EventStore.append`` runs it as a data-modifying CTE of its append (with its version
# guard as a WHERE); ``write`` runs it alone. Either way the same statement wakes the relay
# (``WAKE``): a notification is delivered at commit, once per transaction.
INSERT_ROWS = (
    "INSERT INTO outbox (event_id, subject, payload, headers)"
    " SELECT x.event_id, x.subject, x.payload, CAST(x.headers AS jsonb)"
    " FROM unnest(CAST(:event_ids AS uuid[]), CAST(:subjects AS text[]),"
    " CAST(:payloads AS bytea[]), CAST(:headers AS text[]))"
    " AS x(event_id, subject, payload, headers)"
)
WAKE = f"pg_notify('{CHANNEL}', current_schema())"
_WRITE = text(f"WITH ob AS ({INSERT_ROWS}) SELECT {WAKE}")


@dataclass(frozen=True)
class OutboxRow:
    """One message the relay publishes: to ``subject``, with ``headers`` (``Nats-Msg-Id``
    among them: JetStream's de-duplication key)."""

    event_id: UUID
    subject: str
    payload: bytes
    headers: Mapping[str, str]

    @classmethod
    def of_event(cls, envelope: EventEnvelope, extra_headers: Mapping[str, str] = {}) -> OutboxRow:
        """An event to its stream: ``Nats-Msg-Id`` is the event id."""
        return cls(
            event_id=envelope.id,
            subject=subjects.event(envelope.type, envelope.org_id),
            payload=_encoder.encode(envelope),
            headers={
                MSG_ID: str(envelope.id),
                REQUEST_ID: envelope.request_id or "",
                **extra_headers,
            },
        )


def outbox_params(rows: Sequence[OutboxRow]) -> dict[str, Any]:
    """The parameters of ``INSERT_ROWS`` for ``rows``."""
    return {
        "event_ids": [r.event_id for r in rows],
        "subjects": [r.subject for r in rows],
        "payloads": [r.payload for r in rows],
        "headers": [_encoder.encode(dict(r.headers)).decode() for r in rows],
    }


async def write(conn: AsyncConnection, rows: Iterable[OutboxRow]) -> None:
    """Write ``rows`` in the caller's transaction and wake the relay, in one statement: they
    are published when (and only if) the transaction commits."""
    batch = list(rows)
    if batch:
        await conn.execute(_WRITE, outbox_params(batch))


# --- the relay --------------------------------------------------------------------------

PUBLISHED = Counter("outpost_outbox_published_total", "Events published by the relay", ["service"])
FAILURES = Counter("outpost_outbox_publish_failures_total", "Failed publish attempts", ["service"])
BACKLOG = Gauge(
    "outpost_outbox_backlog", "Rows waiting in the outbox at the last poll", ["service"]
)
OLDEST_AGE = Gauge(
    "outpost_outbox_oldest_age_seconds",
    "Age of the oldest row waiting in the outbox at the last poll (0 when empty)",
    ["service"],
)
ACTIVE = Gauge(
    "outpost_outbox_relay_active", "1 while this process holds the relay lock", ["service"]
)


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        schema: str,
        js: JetStreamContext,
        *,
        batch_size: int = 500,
        idle_wait: float = 0.5,
        lock_retry: float = 1.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self._dsn = plain_dsn(dsn)
        self.schema = schema
        self._js = js
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.lock_retry = lock_retry
        self.publish_timeout = publish_timeout
        self.active = False
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set, surviving database and broker outages."""
        backoff = 0.2
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.2
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,  # e.g. a query after the server ended the session
            ) as exc:
                _log.warning("outbox relay for %s lost its database: %r", self.schema, exc)
                self._set_active(False)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _session(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, server_settings={"search_path": self.schema}
        )
        try:
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", f"outpost.outbox.{self.schema}"
            )
            if not locked:
                await _wait(stop, self.lock_retry)
                return
            self._set_active(True)
            wake = asyncio.Event()

            def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
                if payload == self.schema:
                    wake.set()

            def on_lost(_c: Any) -> None:
                # The lock went with the session: stop claiming it now, not at the next poll.
                self._set_active(False)
                wake.set()

            conn.add_termination_listener(on_lost)
            await conn.add_listener(CHANNEL, on_notify)
            while not stop.is_set():
                if conn.is_closed():
                    raise asyncpg.InterfaceError("the relay's connection was closed")
                wake.clear()
                relayed = await self.drain_once(conn)
                if relayed < self.batch_size:
                    await _wait_any(stop, wake, self.idle_wait)
        finally:
            self._set_active(False)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def drain_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch in position order, pipelined; delete what JetStream acked."""
        rows = await conn.fetch(
            "SELECT position, subject, payload, headers::text AS headers,"
            " extract(epoch FROM clock_timestamp() - created_at)::float8 AS age"
            " FROM outbox ORDER BY position LIMIT $1",
            self.batch_size,
        )
        if len(rows) < self.batch_size:
            BACKLOG.labels(self.schema).set(len(rows))
        else:  # a full batch: count what waits behind it (rarely; only while behind)
            BACKLOG.labels(self.schema).set(await conn.fetchval("SELECT count(*) FROM outbox"))
        OLDEST_AGE.labels(self.schema).set(max(rows[0]["age"], 0.0) if rows else 0.0)
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(r) for r in rows), return_exceptions=True)
        done = [r["position"] for r, res in zip(rows, results, strict=True) if res is None]
        failed = [
            (r["position"], res) for r, res in zip(rows, results, strict=True) if res is not None
        ]
        if done:
            await conn.execute("DELETE FROM outbox WHERE position = ANY($1::bigint[])", done)
            PUBLISHED.labels(self.schema).inc(len(done))
            self.published += len(done)
        if failed:
            FAILURES.labels(self.schema).inc(len(failed))
            await conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE position = $1",
                [(pos, repr(err)[:500]) for pos, err in failed],
            )
            _log.warning(
                "outbox relay for %s: %d of %d publishes failed (first: %r); retrying",
                self.schema,
                len(failed),
                len(rows),
                failed[0][1],
            )
            await asyncio.sleep(0.5)
        return len(done)

    async def _publish(self, row: asyncpg.Record) -> BaseException | None:
        headers: dict[str, str] = msgspec.json.decode(row["headers"])
        span = None
        if telemetry.listening():
            # Continue the appending request's trace; the message carries this span's
            # context, so consumers become its children (and link to it).
            span = telemetry.tracer(__name__).start_span(
                f"publish {self.schema}",
                context=telemetry.extract(headers),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": row["subject"],
                    "messaging.message.id": headers.get("Nats-Msg-Id", ""),
                    "outpost.outbox.age_seconds": float(row["age"]),
                },
            )
            headers = {**headers, **telemetry.inject_from(span)}
        try:
            await self._js.publish(
                row["subject"], bytes(row["payload"]), headers=headers, timeout=self.publish_timeout
            )
        except Exception as exc:
            if span is not None:
                span.set_status(StatusCode.ERROR, repr(exc)[:200])
                span.end()
            return exc
        if span is not None:
            span.end()
        return None

    def _set_active(self, active: bool) -> None:
        self.active = active
        ACTIVE.labels(self.schema).set(1 if active else 0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
