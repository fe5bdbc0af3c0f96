"""``GET /api/v1/events/stream``: the organization's timeline as Server-Sent Events (ADR 0096).

The same entries, filters and scope (``events:read``) as ``/events``; each message is one
entry (``event: timeline``, ``id:`` its ``seq``, ``data:`` the entry as ``/events`` shows it);
a comment line every ``stream_heartbeat_seconds`` while nothing else is sent. ``Last-Event-ID``
(or ``?lastEventId=`` for a first connection of a browser's ``EventSource``) resumes after that
entry; without it the stream starts at the organization's last entry. Each credential may
hold ``stream_max_per_credential`` streams on one replica; one more is 429 ``throttled``.
The use case is ``app/timeline_stream.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.background_tasks import BackgroundTask
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from outpost_contracts.alerting import LIST_EVENTS, ListOf, TimelineEntry
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import validation_error
from outpost_contracts.query import ListQuery, Node
from outpost_gateway.app.ports import Backend
from outpost_gateway.app.timeline_stream import (
    HEARTBEAT,
    READY,
    StreamLeases,
    TimelineHub,
    follow,
)
from outpost_gateway.domain.query import parse_list_request
from outpost_gateway.domain.query.paging import PAGING_PARAMS
from outpost_gateway.entrypoints.params import is_number
from outpost_gateway.entrypoints.security import BackendDep, Ctx, gateway_state

Req = Request[Any, Any, Any]
EVENT_NAME = "timeline"
RESUME_PARAM = "lastEventId"
# The collection options a stream has no use for (it is one ordered, endless page).
_NOT_ACCEPTED = frozenset(
    {*PAGING_PARAMS, "$top", "$skip", "$orderby", "$select", "$expand", "$count"}
)

LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        description="Resume after this entry (the `id:` of the last message received)",
    ),
]
ResumeParam = Annotated[
    str | None,
    QueryParameter(
        name=RESUME_PARAM,
        description="As `Last-Event-ID`, for clients that cannot set it (the header wins)",
    ),
]

_encoder = msgspec.json.Encoder()


def parse_position(value: str | None, name: str) -> int | None:
    """The ``seq`` a ``Last-Event-ID`` names; None when absent."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not is_number(text) or len(text) > 18:
        raise validation_error(name, "must be the id of a message of this stream (a number)")
    return int(text)


def stream_filter(params: list[tuple[str, str]]) -> Node | None:
    """The filter of ``/events``' parameters; 400 for a collection option a stream ignores."""
    for name, _ in params:
        if name in _NOT_ACCEPTED:
            raise validation_error(name, "not accepted by a stream (filters only)")
    query, _ = parse_list_request(params, ignore={RESUME_PARAM})
    return query.filter


def message(item: TimelineEntry) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=_encoder.encode(item).decode(), event=EVENT_NAME, id=str(item.seq)
    )


def comment(text: str) -> ServerSentEventMessage:
    """A comment line alone (``data=None``: Litestar would add an empty ``data:`` line, which
    a client dispatches as a message)."""
    return ServerSentEventMessage(data=None, comment=text)


async def _messages(
    entries: AsyncIterator[Any], release: Callable[[], None]
) -> AsyncIterator[ServerSentEventMessage]:
    try:
        async for item in entries:
            if item is HEARTBEAT:
                yield comment("heartbeat")
            elif item is READY:
                yield comment("ready")
            else:
                yield message(item)
    finally:
        release()


async def _check(backend: Backend, ctx: RequestContext, user_filter: Node | None) -> None:
    """Alerting accepts the filter (and answers) before the stream's 200 is sent."""
    await backend.call(LIST_EVENTS, ctx, ListOf(query=ListQuery(filter=user_filter, limit=1)))


@get(
    "/api/v1/events/stream",
    tags=["events"],
    summary="The organization's timeline, live (Server-Sent Events)",
    description=(
        "`text/event-stream`: one message per timeline entry (`event: timeline`, `id:` the"
        " entry's `seq`, `data:` the entry as `/events` lists it), in `seq` order, and a"
        " comment line while nothing happens. The filters of `/events` (field filters,"
        " `$filter`); paging options are refused. Resume with `Last-Event-ID`: every entry"
        " after it, none twice. Without it the stream starts now. A credential may hold a"
        " few streams at once (429 `throttled` beyond)."
    ),
    media_type="text/event-stream",
)
async def stream_events(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    last_event_id: LastEventId = None,
    resume: ResumeParam = None,
) -> ServerSentEvent:
    after = parse_position(last_event_id, "Last-Event-ID")
    if after is None:
        after = parse_position(resume, RESUME_PARAM)
    user_filter = stream_filter(list(request.query_params.multi_items()))
    state = gateway_state(request)
    hub: TimelineHub = state.timeline
    leases: StreamLeases = state.stream_leases
    await _check(backend, ctx, user_filter)
    release = leases.acquire(ctx.principal.id)
    entries = follow(
        hub,
        backend,
        ctx,
        user_filter=user_filter,
        after=after,
        heartbeat_seconds=state.stream_heartbeat_seconds,
    )

    async def release_lease() -> None:  # also when the stream never started
        release()

    return ServerSentEvent(
        _messages(entries, release),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(release_lease),
    )


ROUTES = [stream_events]
