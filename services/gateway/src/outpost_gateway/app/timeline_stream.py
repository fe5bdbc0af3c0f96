"""``/events/stream``'s use case (ADR 0096): an organization's timeline, from a position on,
live, with no gap and no duplicate.

The timeline stays alerting's (``ListEvents``, the query ``/events`` runs, with the same
filters and scopes); what this process learns from the broker is only that an organization's
timeline now reaches ``seq`` (``alerting.TimelineAdvanced``, fed to ``TimelineHub.announce``
by ``adapters/timeline_follower.py``). Entries are numbered per organization in commit order:
when the announcement of ``seq`` arrives, every entry up to ``seq`` is committed. So a
stream keeps one number, ``pos`` (everything up to it that matches has been sent), and:

1. registers with the hub *before* it reads anything, so no announcement made after it
   started reading is missed;
2. with ``Last-Event-ID`` it sends what matches past it (``seq > pos``, in ``seq`` order, a
   page at a time); without one it starts at the organization's last entry;
3. on each announcement past ``pos`` (several while it was busy count as one, the largest),
   asks ``seq > pos`` again, sends it, and moves ``pos`` to the larger of the announced
   ``seq`` and the last entry sent.

Announcements may arrive late, twice or out of order (the outbox relay publishes in
parallel): a late or repeated one is at or below ``pos`` and changes nothing. Sent entries
always have ``seq > pos``, and ``pos`` never decreases: no duplicate; every committed entry
up to an announced ``seq`` is read before ``pos`` passes it: no gap. If this process may have
missed announcements (a broker reconnection), ``wake_all`` makes every stream ask once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from uuid import UUID

from outpost_contracts.alerting import LIST_EVENTS, ListOf, TimelineEntry
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.query import MAX_LIMIT, And, Cmp, ListQuery, Node, OrderBy
from outpost_gateway.app.ports import Backend


class _Subscriber:
    __slots__ = ("announced", "forced", "woken")

    def __init__(self) -> None:
        self.announced = 0  # the largest ``seq`` announced since it subscribed
        self.forced = False  # asked to read whatever was announced (``wake_all``)
        self.woken = asyncio.Event()

    def wake(self, seq: int) -> None:
        if seq > self.announced:
            self.announced = seq
        self.woken.set()


class TimelineHub:
    """The streams of this process by organization; the follower announces to it."""

    def __init__(self) -> None:
        self._by_org: dict[UUID, set[_Subscriber]] = {}

    def subscribe(self, org_id: UUID) -> _Subscriber:
        sub = _Subscriber()
        self._by_org.setdefault(org_id, set()).add(sub)
        return sub

    def unsubscribe(self, org_id: UUID, sub: _Subscriber) -> None:
        subs = self._by_org.get(org_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_org[org_id]

    def announce(self, org_id: UUID, seq: int) -> None:
        for sub in self._by_org.get(org_id, ()):
            sub.wake(seq)

    def wake_all(self) -> None:
        """Every stream asks once (announcements may have been missed)."""
        for subs in self._by_org.values():
            for sub in subs:
                sub.forced = True
                sub.woken.set()

    def streams(self) -> int:
        return sum(len(s) for s in self._by_org.values())


@dataclass
class StreamLeases:
    """How many streams each credential holds on this process (``limit`` at most)."""

    limit: int
    held: dict[UUID, int] = field(default_factory=dict)

    def acquire(self, credential: UUID) -> Callable[[], None]:
        """A release function (idempotent), or 429 ``throttled`` past the limit."""
        count = self.held.get(credential, 0)
        if count >= self.limit:
            raise OutpostError(
                f"this credential already has {count} open event streams (the limit is"
                f" {self.limit}); close one first",
                type=ErrorType.THROTTLED,
                details={"limit": self.limit},
            )
        self.held[credential] = count + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.held.get(credential, 1) - 1
            if left > 0:
                self.held[credential] = left
            else:
                self.held.pop(credential, None)

        return release


class Heartbeat:
    """Nothing happened for a heartbeat interval (the route sends a comment line)."""


HEARTBEAT = Heartbeat()


class Ready:
    """The stream has sent what was there when it started (``Last-Event-ID``'s backlog) and
    follows: every entry committed from now on will be sent."""


READY = Ready()


def _after(pos: int, user_filter: Node | None) -> Node:
    past: Node = Cmp(field="seq", op="gt", value=pos)
    return past if user_filter is None else And(items=[user_filter, past])


async def _past(
    backend: Backend, ctx: RequestContext, user_filter: Node | None, pos: int
) -> AsyncIterator[TimelineEntry]:
    """Every entry matching ``user_filter`` with ``seq > pos``, in ``seq`` order."""
    while True:
        query = ListQuery(
            filter=_after(pos, user_filter), limit=MAX_LIMIT, order_by=[OrderBy(field="seq")]
        )
        page = await backend.call(LIST_EVENTS, ctx, ListOf(query=query))
        for e in page.data:
            yield e
            pos = e.seq
        if not page.has_more or not page.data:
            return


async def last_seq(backend: Backend, ctx: RequestContext) -> int:
    """The organization's last entry's ``seq`` (0 for an empty timeline)."""
    query = ListQuery(limit=1, order_by=[OrderBy(field="seq", desc=True)])
    page = await backend.call(LIST_EVENTS, ctx, ListOf(query=query))
    return page.data[0].seq if page.data else 0


async def follow(
    hub: TimelineHub,
    backend: Backend,
    ctx: RequestContext,
    *,
    user_filter: Node | None,
    after: int | None,
    heartbeat_seconds: float,
) -> AsyncIterator[TimelineEntry | Heartbeat | Ready]:
    """The entries of ``ctx``'s organization past ``after`` (None: from now) matching
    ``user_filter``, then live; ``READY`` once the backlog is sent; ``HEARTBEAT`` after each
    quiet ``heartbeat_seconds``."""
    sub = hub.subscribe(ctx.org_id)
    try:
        pos = after if after is not None else await last_seq(backend, ctx)
        ready = False
        while True:
            # What was announced before the query starts is committed: the query sees it.
            sub.woken.clear()
            sub.forced = False
            target = sub.announced
            async for e in _past(backend, ctx, user_filter, pos):
                yield e
                pos = e.seq
            pos = max(pos, target)
            if not ready:
                ready = True
                yield READY
            while not (sub.woken.is_set() and (sub.forced or sub.announced > pos)):
                sub.woken.clear()
                try:
                    await asyncio.wait_for(sub.woken.wait(), heartbeat_seconds)
                except TimeoutError:
                    yield HEARTBEAT
    finally:
        hub.unsubscribe(ctx.org_id, sub)
