"""The command pipeline every event-sourced handler shares: load, decide, append.

Generic over the domain's decider functions; no domain type lives here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope, Principal, RequestContext
from outpost_kit import ids

S = TypeVar("S")
C = TypeVar("C")

Evolve = Callable[[Any, Event, UUID], Any]


class Taken(Exception):
    """A read model's constraint refused what an append projects: in practice a unique name
    or key that a concurrent command took first. The kit's event store raises it (ADR 0086),
    so a use case says ``except Taken`` and names no database driver; a fake event store in
    unit tests raises it the same way."""


class EventStream(Protocol):
    """What the pipeline needs of an event store: the kit's ``EventStore``, or a test's fake."""

    async def load(self, stream_id: UUID) -> list[EventEnvelope]: ...

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
    ) -> list[EventEnvelope]: ...


class HasEvents(Protocol):
    """A unit of work as the pipeline sees it: the kit's ``UnitOfWork``, a service's port
    over it, or a fake unit of work in unit tests."""

    @property
    def events(self) -> EventStream: ...


Decide = Callable[[Any, Any, datetime], Sequence[Event]]


def fold(evolve: Evolve, stream_id: UUID, events: Sequence[EventEnvelope]) -> tuple[Any, int]:
    state = None
    version = 0
    for envelope in events:
        state = evolve(state, envelope.data, stream_id)
        version = envelope.version
    return state, version


async def load(uow: HasEvents, evolve: Evolve, stream_id: UUID) -> tuple[Any, int]:
    """The aggregate's state and version (``(None, 0)`` if it has no events)."""
    return fold(evolve, stream_id, await uow.events.load(stream_id))


async def execute(
    uow: HasEvents,
    ctx: RequestContext | None,
    *,
    stream_id: UUID,
    stream_type: str,
    decide: Decide,
    evolve: Evolve,
    command: Any,
    org_id: UUID,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> tuple[Any, list[EventEnvelope]]:
    """Load, decide, append (projections update in the same transaction).

    ``expected_version`` (from ``If-Match``) must equal the current version; otherwise the
    loaded version is expected, and a concurrent change still fails the append."""
    state, version = await load(uow, evolve, stream_id)
    if expected_version is not None and expected_version != version:
        from outpost_contracts.errors import PreconditionFailed

        raise PreconditionFailed(
            "the resource has changed since that version",
            details={"expectedVersion": expected_version, "actualVersion": version},
        )
    return await decide_and_append(
        uow,
        ctx,
        stream_id=stream_id,
        stream_type=stream_type,
        decide=decide,
        evolve=evolve,
        state=state,
        version=version,
        command=command,
        org_id=org_id,
        now=now,
    )


async def decide_and_append(
    uow: HasEvents,
    ctx: RequestContext | None,
    *,
    stream_id: UUID,
    stream_type: str,
    decide: Decide,
    evolve: Evolve,
    state: Any,
    version: int,
    command: Any,
    org_id: UUID,
    now: datetime | None = None,
) -> tuple[Any, list[EventEnvelope]]:
    """Decide on ``state`` (at ``version``) and append; a concurrent change since fails the
    append (``ConcurrencyConflict``)."""
    events = decide(state, command, now or ids.now())
    envelopes = await uow.events.append(
        org_id=org_id,
        stream_id=stream_id,
        stream_type=stream_type,
        expected_version=version,
        events=events,
        actor=ctx.principal if ctx else None,
        request_id=ctx.request_id if ctx else None,
    )
    for envelope in envelopes:
        state = evolve(state, envelope.data, stream_id)
    return state, envelopes


@dataclass(frozen=True)
class Aggregate:
    """One kind of aggregate: its stream type and its pure decider, named once beside the
    domain module, so a use case says ``await API_KEYS.execute(uow, ctx, stream_id=…,
    command=…, org_id=…)``."""

    stream_type: str
    decide: Decide
    evolve: Evolve

    async def execute(
        self,
        uow: HasEvents,
        ctx: RequestContext | None,
        *,
        stream_id: UUID,
        command: Any,
        org_id: UUID,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> tuple[Any, list[EventEnvelope]]:
        return await execute(
            uow,
            ctx,
            stream_id=stream_id,
            stream_type=self.stream_type,
            decide=self.decide,
            evolve=self.evolve,
            command=command,
            org_id=org_id,
            expected_version=expected_version,
            now=now,
        )

    async def load(self, uow: HasEvents, stream_id: UUID) -> tuple[Any, int]:
        return await load(uow, self.evolve, stream_id)

    async def execute_on(
        self,
        uow: HasEvents,
        ctx: RequestContext | None,
        *,
        stream_id: UUID,
        state: Any,
        version: int,
        command: Any,
        org_id: UUID,
        now: datetime | None = None,
    ) -> tuple[Any, list[EventEnvelope]]:
        """``execute`` on a state the caller already holds at ``version`` (a read model kept
        in the same transaction as the stream, read for a whole batch in one statement),
        instead of loading the stream: the append still fails if the stream moved on."""
        return await decide_and_append(
            uow,
            ctx,
            stream_id=stream_id,
            stream_type=self.stream_type,
            decide=self.decide,
            evolve=self.evolve,
            state=state,
            version=version,
            command=command,
            org_id=org_id,
            now=now,
        )
