"""The in-memory unit of work of the use cases' unit tests, written once (ADR 0089).

cosmicpython's FakeUnitOfWork, shaped as the kit's ``UnitOfWork`` and ``UnitOfWorkFactory``
are: ``FakeUnitOfWorkFactory(world, transaction)(org_id)`` opens a ``FakeUnitOfWork`` on a
``FakeWorld``, what Postgres would hold. The common part lives here:

- an event store (``FakeEvents``) that checks the expected version as the kit's
  ``EventStore`` does (``ConcurrencyConflict``), appends nothing for no events, and hands
  each envelope to the transaction's ``project`` before it is stored, where a service's fake
  keeps its read models and refuses what a unique index would with the kit's ``Taken``;
- row-level security per tenant: a transaction sees the streams of its tenant only
  (``visible``) and may append only its tenant's events;
- a transaction works on a copy of the world and replaces it only on ``commit()``, so
  leaving the block without committing rolls back as Postgres would;
- a clock the test moves (``advance``) and ``first_page`` for the listings.

A service's fake subclasses ``FakeWorld`` (its tables), ``FakeUnitOfWork`` (its port's
statements, over ``self.w``) and ``FakeUnitOfWorkFactory``. The Postgres adapters are what
the integration tests cover."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.query import ListQuery, Page
from outpost_kit import ids
from outpost_kit.db.eventstore import ConcurrencyConflict

T = TypeVar("T")


@dataclass
class FakeWorld:
    """What Postgres would hold: the event streams and the clock; a service's world adds its
    read models and tables."""

    now: datetime = field(default_factory=lambda: datetime(2025, 1, 1, tzinfo=UTC))
    streams: dict[UUID, list[EventEnvelope]] = field(default_factory=dict)


W = TypeVar("W", bound=FakeWorld)


class FakeEvents:
    """The kit's ``EventStore`` in memory, under the transaction's tenant."""

    def __init__(self, tx: FakeUnitOfWork[Any]) -> None:
        self._tx = tx

    async def load(self, stream_id: UUID) -> list[EventEnvelope]:
        return list(self._tx.stream(stream_id))

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
    ) -> list[EventEnvelope]:
        if not events:
            return []
        tx = self._tx
        if not tx.visible(org_id):
            raise PermissionError("row-level security refuses an event of another tenant")
        stream = tx.w.streams.setdefault(stream_id, [])
        if len(stream) != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, len(stream))
        envelopes = [
            EventEnvelope(
                id=ids.new_id(),
                org_id=org_id,
                stream_id=stream_id,
                stream_type=stream_type,
                version=expected_version + i,
                occurred_at=tx.w.now,
                data=event,
                request_id=request_id,
                actor=actor,
            )
            for i, event in enumerate(events, start=1)
        ]
        for envelope in envelopes:
            tx.project(envelope)
            stream.append(envelope)
        return envelopes


class FakeUnitOfWork(Generic[W]):
    """One transaction: ``w`` is its working copy of the world, ``tenant`` plays row-level
    security."""

    def __init__(self, world: W, tenant: UUID | None) -> None:
        self._world = world
        self.w = world
        self.tenant = tenant
        self.committed = False

    async def __aenter__(self) -> Self:
        self.w = copy.deepcopy(self._world)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.w = self._world

    @property
    def events(self) -> FakeEvents:
        return FakeEvents(self)

    async def commit(self) -> None:
        self._world.__dict__.update(self.w.__dict__)
        self.committed = True

    async def set_tenant(self, org_id: UUID) -> None:
        self.tenant = org_id

    def visible(self, org_id: UUID) -> bool:
        """Whether this transaction's tenant sees a row of ``org_id``: with no tenant, every
        row (a service whose policies hide everything then overrides this)."""
        return self.tenant is None or org_id == self.tenant

    def stream(self, stream_id: UUID) -> list[EventEnvelope]:
        stream = self.w.streams.get(stream_id, [])
        return stream if not stream or self.visible(stream[0].org_id) else []

    def project(self, envelope: EventEnvelope) -> None:
        """What the service's projectors do with an appended event (nothing here); raises
        the kit's ``Taken`` where a read model's unique index would refuse it."""


U = TypeVar("U", bound=FakeUnitOfWork[Any])


class FakeUnitOfWorkFactory(Generic[W, U]):
    """The factory a use case is handed: ``world`` is what Postgres would hold."""

    def __init__(self, world: W, transaction: Callable[[W, UUID | None], U]) -> None:
        self.world = world
        self._transaction = transaction

    def __call__(self, org_id: UUID | None) -> U:
        return self._transaction(self.world, org_id)

    def tenant(self, org_id: UUID) -> U:
        """A look at the committed world as one tenant sees it (for assertions)."""
        return self._transaction(self.world, org_id)

    def advance(self, by: timedelta) -> None:
        self.world.now += by


def update_row(table: dict[UUID, tuple[UUID, Any]], key: UUID, **changes: Any) -> None:
    """An UPDATE of one row of a fake's read model kept as ``{id: (org_id, view)}``: the
    view (a msgspec struct) with ``changes``, its organization kept."""
    org_id, view = table[key]
    table[key] = (org_id, msgspec.structs.replace(view, **changes))


def first_page(views: Sequence[T], query: ListQuery, key: Callable[[T], Any]) -> Page[T]:
    """The first page of ``views`` in ``key`` order: the fakes list no filter, order or
    cursor (the Postgres adapters' listings are covered against Postgres)."""
    if query.filter is not None or query.order_by or query.after or query.skip:
        raise NotImplementedError("the fake lists the first page, unfiltered, by id")
    ordered = sorted(views, key=key)
    return Page(data=ordered[: query.limit], limit=query.limit, has_more=len(ordered) > query.limit)


def api_key_context(org_id: UUID) -> RequestContext:
    """A request in ``org_id`` by an API key with every scope: who a unit test's use case
    acts for when the caller's kind does not matter."""
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org_id,
        principal=Principal(
            kind=PrincipalKind.API_KEY, id=ids.new_id(), org_id=org_id, scopes=("*",)
        ),
    )
