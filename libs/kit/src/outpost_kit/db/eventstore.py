"""The event store: append with an expected version, load a stream.

Events are appended in the caller's transaction together with their outbox rows and the
projections' updates, so a command's effects commit or roll back as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, Union
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope, Principal
from outpost_contracts.errors import Conflict, ErrorType
from outpost_kit import ids, telemetry
from outpost_kit.aggregate import Taken
from outpost_kit.db import outbox

_encoder = msgspec.json.Encoder()

# One round trip per append: the stream's version is checked, the events and their outbox
# rows are inserted only if it is the expected one, and the relay is woken, in one statement
# (data-modifying CTEs all run, on one snapshot). A concurrent append that took the same
# version makes the events' primary key refuse this one (IntegrityError). The caller learns
# the version it found (``actual``) and nothing was written when it is not the expected one.
_APPEND = text(
    "WITH cur AS (SELECT coalesce(max(version), 0) AS v FROM events WHERE stream_id = :stream_id),"
    " ok AS (SELECT v = CAST(:expected AS integer) AS yes FROM cur),"
    " ev AS (INSERT INTO events (stream_id, version, event_id, org_id, stream_type, event_type,"
    " data, request_id, actor, meta, occurred_at)"
    " SELECT :stream_id, x.version, x.event_id, :org_id, :stream_type, x.event_type,"
    " CAST(x.data AS jsonb), :request_id, CAST(:actor AS jsonb), CAST(:meta AS jsonb),"
    " :occurred_at FROM unnest(CAST(:versions AS integer[]), CAST(:event_ids AS uuid[]),"
    " CAST(:event_types AS text[]), CAST(:datas AS text[]))"
    " AS x(version, event_id, event_type, data) WHERE (SELECT yes FROM ok)),"
    f" ob AS ({outbox.INSERT_ROWS} WHERE (SELECT yes FROM ok))"
    " SELECT v, CASE WHEN v = CAST(:expected AS integer)"
    f" THEN {outbox.WAKE} END FROM cur"
)


class ProjectionRefused(Taken, IntegrityError):
    """A projection's statement broke a constraint of its read model (a unique name taken by
    a concurrent command): the driver-free ``Taken`` use cases catch, and still the
    ``IntegrityError`` callers not moved to ``Taken`` catch (ADR 0086)."""


class ConcurrencyConflict(Conflict):
    """Another command changed the stream since it was read (HTTP 409, or 412 on If-Match)."""

    def __init__(self, stream_id: UUID, expected: int, actual: int) -> None:
        super().__init__(
            "the resource was changed by another request; reload it and try again",
            details={"expectedVersion": expected, "actualVersion": actual},
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EventCodec:
    """Decodes stored and published events of a known set of types."""

    def __init__(self, event_types: Sequence[type[Event]]) -> None:
        self.event_types = tuple(event_types)
        # A union built at run time from a tuple of types: only typing.Union can do that.
        many = len(self.event_types) > 1
        union: Any = Union[self.event_types] if many else self.event_types[0]  # noqa: UP007
        self._data = msgspec.json.Decoder(union)
        self._envelope = msgspec.json.Decoder(_envelope_of(union))

    def decode_data(self, raw: bytes | str) -> Event:
        return self._data.decode(raw)  # type: ignore[no-any-return]

    def decode_envelope(self, raw: bytes) -> EventEnvelope:
        return self._envelope.decode(raw)  # type: ignore[no-any-return]

    def knows(self, tag: str) -> bool:
        return any(t.__struct_config__.tag == tag for t in self.event_types)


def _envelope_of(union: Any) -> Any:
    """An EventEnvelope subtype whose ``data`` is decoded as ``union``."""
    return msgspec.defstruct(
        "EventEnvelopeOf",
        [("data", union)],
        bases=(EventEnvelope,),
        kw_only=True,
        frozen=True,
        rename="camel",
    )


class Projector(Protocol):
    """A read model kept in the same transaction as the append (and rebuilt by replay)."""

    async def apply(self, conn: AsyncConnection, event: EventEnvelope) -> None: ...


class EventStore:
    def __init__(
        self, conn: AsyncConnection, codec: EventCodec, projectors: Sequence[Projector] = ()
    ) -> None:
        self._conn = conn
        self._codec = codec
        self._projectors = projectors

    async def version(self, stream_id: UUID) -> int:
        result = await self._conn.execute(
            text("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = :s"),
            {"s": stream_id},
        )
        return int(result.scalar_one())

    async def append(
        self,
        *,
        org_id: UUID,
        stream_id: UUID,
        stream_type: str,
        expected_version: int,
        events: Sequence[Event],
        actor: Principal | None = None,
        request_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> list[EventEnvelope]:
        """Append ``events`` after ``expected_version``; ``ConcurrencyConflict`` otherwise."""
        if not events:
            return []
        when = occurred_at or ids.now()
        trace_headers = telemetry.inject()
        meta: dict[str, Any] = {"trace": trace_headers} if trace_headers else {}
        envelopes = [
            EventEnvelope(
                id=ids.new_id(),
                org_id=org_id,
                stream_id=stream_id,
                stream_type=stream_type,
                version=expected_version + i,
                occurred_at=when,
                data=event,
                request_id=request_id,
                actor=actor,
                meta=meta,
            )
            for i, event in enumerate(events, start=1)
        ]
        try:
            result = await self._conn.execute(
                _APPEND,
                {
                    "stream_id": stream_id,
                    "org_id": org_id,
                    "stream_type": stream_type,
                    "expected": expected_version,
                    "request_id": request_id,
                    "actor": _encoder.encode(actor).decode() if actor else None,
                    "meta": _encoder.encode(meta).decode(),
                    "occurred_at": when,
                    "versions": [e.version for e in envelopes],
                    "event_ids": [e.id for e in envelopes],
                    "event_types": [e.type for e in envelopes],
                    "datas": [_encoder.encode(e.data).decode() for e in envelopes],
                    **outbox.outbox_params(
                        [outbox.OutboxRow.of_event(e, trace_headers) for e in envelopes]
                    ),
                },
            )
        except IntegrityError as exc:
            # A concurrent append took the same version between our check and our insert.
            raise ConcurrencyConflict(stream_id, expected_version, expected_version + 1) from exc
        actual = int(result.scalar_one())
        if actual != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, actual)
        try:
            for envelope in envelopes:
                for projector in self._projectors:
                    await projector.apply(self._conn, envelope)
        except IntegrityError as exc:
            raise ProjectionRefused(exc.statement, exc.params, exc.orig or exc) from exc
        return envelopes

    async def load(self, stream_id: UUID) -> list[EventEnvelope]:
        result = await self._conn.execute(
            text(
                "SELECT event_id, org_id, stream_id, stream_type, version, occurred_at,"
                " data::text AS data, request_id, actor::text AS actor, meta::text AS meta"
                " FROM events WHERE stream_id = :s ORDER BY version"
            ),
            {"s": stream_id},
        )
        return [self._row_to_envelope(row._mapping) for row in result]

    async def iter_all(
        self, *, after_position: int = 0, batch: int = 1000
    ) -> list[tuple[int, EventEnvelope]]:
        """Events visible to the current tenant after a position (for replay)."""
        result = await self._conn.execute(
            text(
                "SELECT position, event_id, org_id, stream_id, stream_type, version, occurred_at,"
                " data::text AS data, request_id, actor::text AS actor, meta::text AS meta"
                " FROM events WHERE position > :p ORDER BY position LIMIT :n"
            ),
            {"p": after_position, "n": batch},
        )
        return [(row.position, self._row_to_envelope(row._mapping)) for row in result]

    def _row_to_envelope(self, row: Any) -> EventEnvelope:
        return EventEnvelope(
            id=row["event_id"],
            org_id=row["org_id"],
            stream_id=row["stream_id"],
            stream_type=row["stream_type"],
            version=row["version"],
            occurred_at=row["occurred_at"],
            data=self._codec.decode_data(row["data"]),
            request_id=row["request_id"],
            actor=msgspec.json.decode(row["actor"], type=Principal) if row["actor"] else None,
            meta=msgspec.json.decode(row["meta"]) if row["meta"] else {},
        )


__all__ = ["ConcurrencyConflict", "ErrorType", "EventCodec", "EventStore", "Projector"]
