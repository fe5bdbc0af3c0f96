"""A test-only service for the kit's integration tests: two event types, one projection
(``counters``), its own migrations and its own stream, declared here and nowhere else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import subjects
from outpost_contracts.base import Event, wire_tag
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.streams import ConsumerSpec, StreamSpec
from outpost_kit.db.eventstore import EventCodec

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = "kitsvc"  # the wire-tag service: subjects are outpost.evt.kitsvc.<org>.<Name>.v1
STREAM_TYPE = "counter"


class CounterCreated(Event, kw_only=True, frozen=True, tag=wire_tag(SERVICE, "CounterCreated", 1)):
    name: str


class CounterIncremented(
    Event, kw_only=True, frozen=True, tag=wire_tag(SERVICE, "CounterIncremented", 1)
):
    by: int = 1


@dataclass(frozen=True)
class KitDb:
    """A provisioned, migrated kitsvc schema."""

    admin_dsn: str
    dsn: str  # the service role's DSN
    schema: str


EVENT_TYPES: tuple[type[Event], ...] = (CounterCreated, CounterIncremented)
CODEC = EventCodec(EVENT_TYPES)

STREAM = StreamSpec(
    name="KITSVC",
    subjects=(subjects.service_events(SERVICE),),
    owner=SERVICE,
    description="The kit's test service",
)


def org_events(org_id: UUID) -> str:
    """Every KITSVC event of one tenant (tests give each test its own tenant)."""
    return f"{subjects.PREFIX}.evt.{SERVICE}.{org_id}.>"


def consumer_spec(
    name: str, org_id: UUID, *, ack_wait: float = 30, max_deliver: int = 20
) -> ConsumerSpec:
    """A durable consumer of one tenant's KITSVC events, local to the tests (not in
    contracts' CONSUMERS)."""
    return ConsumerSpec(
        stream=STREAM.name,
        name=name,
        owner=SERVICE,
        filter_subjects=(org_events(org_id),),
        ack_wait_seconds=ack_wait,
        max_deliver=max_deliver,
    )


class CounterProjector:
    """``counters``: one row per counter. Deliberately not idempotent (an increment applied
    twice counts twice) so the tests can see a duplicate effect."""

    async def apply(self, conn: AsyncConnection, event: EventEnvelope) -> None:
        data = event.data
        if isinstance(data, CounterCreated):
            await conn.execute(
                text(
                    "INSERT INTO counters (org_id, id, name, value, version)"
                    " VALUES (:o, :i, :n, 0, :v)"
                ),
                {"o": event.org_id, "i": event.stream_id, "n": data.name, "v": event.version},
            )
        elif isinstance(data, CounterIncremented):
            await conn.execute(
                text(
                    "UPDATE counters SET value = value + :by, version = :v"
                    " WHERE org_id = :o AND id = :i"
                ),
                {"o": event.org_id, "i": event.stream_id, "by": data.by, "v": event.version},
            )

    async def reset(self, conn: AsyncConnection) -> None:
        """Delete the current tenant's rows (RLS scopes the DELETE to it)."""
        await conn.execute(text("DELETE FROM counters"))


async def counters(conn: AsyncConnection) -> dict[UUID, tuple[str, int, int]]:
    rows = await conn.execute(text("SELECT id, name, value, version FROM counters"))
    return {r.id: (r.name, r.value, r.version) for r in rows}


async def read_stream(js: JetStreamContext, org_id: UUID) -> list[str]:
    """Every Nats-Msg-Id in KITSVC for one tenant, in stream order (duplicates kept).

    Reads until the consumer has nothing pending, however slowly the messages come (a
    fetch that times out on a loaded machine is not the end of the stream); a minute
    without progress fails."""
    sub = await js.pull_subscribe(
        org_events(org_id),
        stream=STREAM.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1)
            except (NatsTimeout, TimeoutError):  # nats-py raises either
                if (await sub.consumer_info()).num_pending == 0:
                    return seen
                assert time.monotonic() < deadline, "the stream's messages stopped coming"
                continue
            deadline = time.monotonic() + 60
            for msg in msgs:
                envelope = CODEC.decode_envelope(msg.data)
                msg_id = (msg.headers or {}).get("Nats-Msg-Id")
                assert msg_id == str(envelope.id), (msg_id, envelope.id)
                seen.append(msg_id)
            if msgs and msgs[-1].metadata.num_pending == 0:
                return seen
    finally:
        await sub.unsubscribe()
