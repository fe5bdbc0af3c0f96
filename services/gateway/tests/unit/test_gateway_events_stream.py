"""``/events/stream`` (ADR 0096): the follow loop over a fake timeline (resumption, the
handover from reading to live, late, repeated and out-of-order announcements, entries that
commit after a read, filters, heartbeats), the per-credential leases, and the route's
refusals before any stream starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts.alerting import LIST_EVENTS, ListOf, TimelineEntry
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.query import And, Cmp, Node, OrderBy, Page
from outpost_gateway.adapters.timeline_follower import announcement
from outpost_gateway.app.timeline_stream import (
    HEARTBEAT,
    READY,
    StreamLeases,
    TimelineHub,
    follow,
)
from outpost_gateway.entrypoints.events_stream import (
    comment,
    message,
    parse_position,
    stream_filter,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORG = uuid4()
CTX = RequestContext(
    request_id="r",
    org_id=ORG,
    principal=Principal(kind=PrincipalKind.API_KEY, id=uuid4(), org_id=ORG),
)


def _matches(node: Node | None, e: TimelineEntry) -> bool:
    if node is None:
        return True
    if isinstance(node, And):
        return all(_matches(i, e) for i in node.items)
    assert isinstance(node, Cmp), node
    if node.field == "seq":
        assert node.op == "gt" and isinstance(node.value, int)
        return e.seq > node.value
    assert (node.field, node.op) == ("type", "eq"), node
    return e.type == node.value


class Timeline:
    """Alerting's ``ListEvents`` over committed entries; ``commit`` adds one, ``announced``
    says whether its announcement has been handed to the hub yet."""

    def __init__(self, hub: TimelineHub) -> None:
        self.hub = hub
        self.committed: list[TimelineEntry] = []
        self.backend = FakeBackend().on(LIST_EVENTS, self._list)
        self.reads = 0
        self.during_read: list[Any] = []  # run once each, after a read took its snapshot

    def _list(self, ctx: RequestContext, body: ListOf) -> Page[TimelineEntry]:
        assert ctx.org_id == ORG
        self.reads += 1
        q = body.query
        rows = [e for e in self.committed if _matches(q.filter, e)]
        desc = q.order_by == [OrderBy(field="seq", desc=True)]
        rows.sort(key=lambda e: e.seq, reverse=desc)
        while self.during_read:
            self.during_read.pop(0)()
        return Page(data=rows[: q.limit], limit=q.limit, has_more=len(rows) > q.limit)

    def commit(self, type_: str = "devices.DeviceConnected.v1", *, announce: bool = True) -> int:
        seq = len(self.committed) + 1
        self.committed.append(
            TimelineEntry(id=uuid4(), ts=T0, type=type_, summary=f"#{seq}", seq=seq)
        )
        if announce:
            self.hub.announce(ORG, seq)
        return seq


async def _next(it: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(it), 5)


async def _seqs(it: AsyncIterator[Any], n: int) -> list[int]:
    out = []
    while len(out) < n:
        item = await _next(it)
        if item is not HEARTBEAT:
            out.append(item.seq)
    return out


def _stream(tl: Timeline, after: int | None, *, heartbeat: float = 60, flt: Node | None = None):
    return follow(
        tl.hub, tl.backend, CTX, user_filter=flt, after=after, heartbeat_seconds=heartbeat
    )


async def test_resumes_after_the_last_event_id_then_follows_live() -> None:
    tl = Timeline(TimelineHub())
    for _ in range(3):
        tl.commit()
    it = _stream(tl, after=1)
    assert await _seqs(it, 2) == [2, 3]
    assert await _next(it) is READY  # the backlog is sent
    tl.commit()
    tl.commit()
    assert await _seqs(it, 2) == [4, 5]
    await it.aclose()
    assert tl.hub.streams() == 0


async def test_without_last_event_id_starts_now() -> None:
    tl = Timeline(TimelineHub())
    tl.commit()
    tl.commit()
    it = _stream(tl, after=None)
    assert await _next(it) is READY
    tl.commit()
    assert await _seqs(it, 1) == [3]
    await it.aclose()


async def test_an_entry_committed_and_announced_during_a_read_is_not_skipped() -> None:
    """The handover: the announcement of ``n`` moves the position past ``n`` only if the read
    started after it arrived; one that arrives while a read is under way (its snapshot older
    than the commit) makes the stream read again."""
    tl = Timeline(TimelineHub())
    tl.commit(announce=False)
    tl.during_read.append(tl.commit)  # 2 commits and is announced during the first read
    it = _stream(tl, after=0)
    assert await _seqs(it, 1) == [1]
    assert await _next(it) is READY
    assert await _seqs(it, 1) == [2]
    tl.during_read.append(tl.commit)  # 4 during the read that 3's announcement starts
    tl.commit()
    assert await _seqs(it, 2) == [3, 4]
    await it.aclose()


async def test_late_repeated_and_out_of_order_announcements_send_nothing_twice() -> None:
    tl = Timeline(TimelineHub())
    it = _stream(tl, after=0)
    assert await _next(it) is READY
    a = tl.commit(announce=False)
    b = tl.commit(announce=False)
    tl.hub.announce(ORG, b)  # the relay published b first
    assert await _seqs(it, 2) == [a, b]
    reads = tl.reads
    tl.hub.announce(ORG, a)  # late
    tl.hub.announce(ORG, b)  # repeated
    c = tl.commit()
    assert await _seqs(it, 1) == [c]
    assert tl.reads == reads + 1  # the stale announcements asked nothing
    await it.aclose()


async def test_a_filter_sends_only_matching_entries_and_resumes_past_the_others() -> None:
    tl = Timeline(TimelineHub())
    flt = Cmp(field="type", op="eq", value="alerting.AlertOpened.v1")
    it = _stream(tl, after=0, flt=flt)
    assert await _next(it) is READY
    tl.commit()
    opened = tl.commit("alerting.AlertOpened.v1")
    tl.commit()
    assert await _seqs(it, 1) == [opened]
    again = tl.commit("alerting.AlertOpened.v1")
    assert await _seqs(it, 1) == [again]
    await it.aclose()


async def test_a_long_backlog_is_read_a_page_at_a_time_in_order() -> None:
    tl = Timeline(TimelineHub())
    for _ in range(2500):
        tl.commit(announce=False)
    it = _stream(tl, after=10)
    assert await _seqs(it, 2490) == list(range(11, 2501))
    assert await _next(it) is READY
    await it.aclose()


async def test_quiet_streams_get_heartbeats_and_wake_all_reads_once() -> None:
    tl = Timeline(TimelineHub())
    it = _stream(tl, after=0, heartbeat=0.01)
    assert await _next(it) is READY
    assert await _next(it) is HEARTBEAT
    seq = tl.commit(announce=False)  # its announcement lost (a reconnection)
    tl.hub.wake_all()
    assert await _seqs(it, 1) == [seq]
    await it.aclose()


def test_leases_limit_each_credential_and_release_once() -> None:
    leases = StreamLeases(limit=2)
    a, b = uuid4(), uuid4()
    first, second = leases.acquire(a), leases.acquire(a)
    leases.acquire(b)
    with pytest.raises(OutpostError) as exc:
        leases.acquire(a)
    assert exc.value.type == ErrorType.THROTTLED and exc.value.status == 429
    first()
    first()  # released once
    assert leases.held[a] == 1
    leases.acquire(a)
    second()
    assert leases.held[a] == 1


def test_positions_filters_and_messages() -> None:
    assert parse_position(None, "h") is None and parse_position(" 42 ", "h") == 42
    for bad in ("-1", "x", "1.5", "²", "9" * 19):
        with pytest.raises(OutpostError):
            parse_position(bad, "h")
    assert stream_filter([("type", "alerting.AlertOpened.v1"), ("lastEventId", "3")]) == Cmp(
        field="type", op="eq", value="alerting.AlertOpened.v1"
    )
    for option in ("limit", "after", "$top", "$orderby", "$select"):
        with pytest.raises(OutpostError):
            stream_filter([(option, "1")])
    entry = TimelineEntry(id=uuid4(), ts=T0, type="t", summary="s", seq=7)
    msg = message(entry)
    assert (msg.id, msg.event) == ("7", "timeline") and '"seq":7' in str(msg.data)
    assert msg.encode().startswith(b"id: 7\r\nevent: timeline\r\ndata: {")
    assert comment("ready").encode() == b": ready\r\n\r\n"  # no message with it


def test_announcements_are_read_from_their_subject() -> None:
    org = uuid4()
    assert announcement(f"outpost.timeline.{org}", b'{"seq":3}') == (org, 3)
    assert announcement("outpost.timeline.nope", b'{"seq":3}') is None
    assert announcement(f"outpost.timeline.{org}", b"{}") is None


# --- the route, before any stream starts ------------------------------------------------


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def test_the_route_refuses_bad_input_and_missing_scopes(env: Env) -> None:
    env.backend.on(LIST_EVENTS, Page(data=[]))
    url = "/api/v1/events/stream"
    resp = env.client.get(url, headers={**bearer(env.world.full), "Last-Event-ID": "abc"})
    assert_error(resp, 400, "validation_error", "Last-Event-ID")
    assert_error(
        env.client.get(url + "?limit=5", headers=bearer(env.world.full)),
        400,
        "validation_error",
        "limit",
    )
    assert_error(env.client.get(url, headers=bearer(env.world.reader)), 403, "access_denied")
    assert_error(env.client.get(url), 401, "invalid_auth")
    assert env.backend.calls == []


def test_a_filter_alerting_refuses_is_refused_before_the_stream(env: Env) -> None:
    env.backend.on(
        LIST_EVENTS, OutpostError("nope: unknown field", type=ErrorType.VALIDATION_ERROR)
    )
    resp = env.client.get("/api/v1/events/stream?nope=1", headers=bearer(env.world.full))
    assert_error(resp, 400, "validation_error")
    assert env.backend.last.body.query.filter == Cmp(field="nope", op="eq", value="1")


def test_open_streams_are_a_metric(env: Env) -> None:
    hub: TimelineHub = env.client.app.state["gateway"].timeline
    assert "outpost_gateway_event_streams 0.0" in env.client.get("/metrics").text
    sub = hub.subscribe(ORG)
    assert "outpost_gateway_event_streams 1.0" in env.client.get("/metrics").text
    hub.unsubscribe(ORG, sub)
