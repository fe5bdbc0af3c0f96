"""``EventStream`` over ``httpx.MockTransport``: the SSE parser, resumption after a dropped
connection with ``Last-Event-ID`` (nothing missed, nothing twice), a 429 while the old
connection is not yet seen closed, the deadline, and refusals raised as typed errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from outpost_client import Client, errors
from outpost_client.events import EventStream, Message, parse

pytestmark = pytest.mark.unit


def entry(seq: int) -> str:
    body = json.dumps({"seq": seq, "type": "devices.DeviceConnected.v1", "summary": f"#{seq}"})
    return f"event: timeline\nid: {seq}\ndata: {body}\n\n"


class Dropped(httpx.SyncByteStream):
    """A body that sends ``chunks`` then fails as a cut connection does (or ends)."""

    def __init__(self, chunks: list[str], *, drop: bool = True) -> None:
        self.chunks, self.drop = chunks, drop

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            yield chunk.encode()
        if self.drop:
            raise httpx.ReadError("connection reset by peer")


def test_the_parser_reads_messages_comments_and_multiline_data() -> None:
    lines = [": ready", "id: 3", "event: timeline", "data: a", "data: b", "", ":heartbeat", ""]
    assert list(parse(lines)) == [
        Message(comment="ready"),
        Message(id="3", event="timeline", data="a\nb"),
        Message(comment="heartbeat"),
    ]


def test_a_dropped_connection_resumes_after_the_last_entry_received() -> None:
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("last-event-id"))
        assert request.url.path == "/api/v1/events/stream"
        assert request.url.params["$filter"] == "alertId ne null"
        if len(asked) == 1:
            return httpx.Response(200, stream=Dropped([": ready\n\n", entry(1), entry(2)]))
        if len(asked) == 2:  # the old stream still counts against the credential
            return httpx.Response(429, json={"object": "error", "type": "throttled"})
        return httpx.Response(200, stream=Dropped([entry(3), ": ready\n\n", entry(4)]))

    waits: list[float] = []
    with Client("http://gw.test", "sk_live_x", transport=httpx.MockTransport(answer)) as api:
        stream = EventStream(api, {"$filter": "alertId ne null"}, sleep=waits.append)
        got = []
        for e in stream:
            got.append(e["seq"])
            if len(got) == 4:
                break
    assert got == [1, 2, 3, 4]
    assert asked == [None, "2", "2"] and stream.last_event_id == "4"
    assert stream.reconnects == 1 and len(waits) == 2  # a backoff, then the 429's


def test_the_deadline_ends_it_once_the_backlog_is_sent() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["last-event-id"] == "0"
        return httpx.Response(
            200, stream=Dropped([entry(1), entry(2), ": ready\n\n", ": heartbeat\n\n"])
        )

    with Client("http://gw.test", "sk_live_x", transport=httpx.MockTransport(answer)) as api:
        stream = EventStream(api, last_event_id="0", stop_at=0.0)
        assert [e["seq"] for e in stream] == [1, 2]


def test_a_refusal_is_raised_not_retried() -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            json={"object": "error", "code": 403, "type": "access_denied", "message": "no"},
        )

    with Client("http://gw.test", "sk_live_x", transport=httpx.MockTransport(answer)) as api:
        with pytest.raises(errors.ApiError) as exc:
            next(iter(EventStream(api)))
    assert exc.value.status == 403
