"""Following the organization's timeline live: ``GET /api/v1/events/stream`` (Server-Sent
Events, docs/api.md "The timeline, live"), resumed after a dropped connection with
``Last-Event-ID`` so that no entry is missed and none is seen twice.

```python
with Client(url, key) as api:
    stream = EventStream(api, params={"type": "alerting.AlertOpened.v1"})
    for entry in stream:          # forever; stream.last_event_id says where it is
        print(entry["seq"], entry["summary"])
```
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from outpost_client import errors
from outpost_client.base import SyncBase, expired, query, raise_for

PATH = "/api/v1/events/stream"
READY = "ready"


@dataclass(frozen=True)
class Message:
    """One dispatched SSE message (``comment`` set for a comment line instead)."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    comment: str | None = None


def parse(lines: Iterable[str]) -> Iterator[Message]:
    """The messages and comments of an ``text/event-stream`` body, line by line (the WHATWG
    rules Outpost's streams need: ``data``, ``id``, ``event``, comments)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Message(id=fields.get("id"), event=fields.get("event"), data="\n".join(data))
            fields, data = {}, []
        elif line.startswith(":"):
            yield Message(comment=line[1:].removeprefix(" "))
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in ("id", "event"):
                fields[name] = value


class EventStream:
    """The timeline's entries (``/events`` items, as dicts) from ``last_event_id`` on (None:
    from now), following ``params`` (``/events`` filters); reconnects after a dropped or
    silent connection (``idle_seconds`` without even a heartbeat) with ``Last-Event-ID``.
    ``on_ready`` is called each time a connection has sent its backlog. With ``stop_at`` (a
    ``time.monotonic()`` deadline) it ends once past it and the backlog was sent, checked at
    each message and heartbeat (the server's heartbeat interval bounds the lateness)."""

    def __init__(
        self,
        api: SyncBase,
        params: Mapping[str, Any] | None = None,
        *,
        last_event_id: str | None = None,
        idle_seconds: float = 60.0,
        on_ready: Callable[[], None] | None = None,
        on_reconnect: Callable[[Exception], None] | None = None,
        stop_at: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.params = dict(params or {})
        self.last_event_id = last_event_id
        self.idle_seconds = idle_seconds
        self.on_ready = on_ready
        self.on_reconnect = on_reconnect
        self.stop_at = stop_at
        self.reconnects = 0
        self._sleep = sleep
        self._stopped = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        failures = 0
        while True:
            try:
                for entry in self._connection():
                    failures = 0
                    yield entry
                if self._stopped:
                    return
                raise httpx.RemoteProtocolError("the stream ended")  # the server went away
            except httpx.TransportError as exc:
                failures += 1
                self.reconnects += 1
                if self.on_reconnect is not None:
                    self.on_reconnect(exc)
                self._sleep(min(8.0, 0.25 * 2 ** min(failures - 1, 5)))

    def _connection(self) -> Iterator[dict[str, Any]]:
        settings = self.api.settings
        headers = settings.headers("GET", {"Accept": "text/event-stream"})
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(30.0, read=self.idle_seconds)
        attempt = 0
        while True:
            attempt += 1
            with self.api.http.stream(
                "GET", PATH, params=query({}, self.params), headers=headers, timeout=timeout
            ) as resp:
                if resp.status_code != 200:
                    resp.read()
                    refresh = getattr(self.api, "_refresh", None)
                    if expired(resp) and refresh is not None and attempt == 1:
                        token = refresh()
                        if token:
                            settings.token = token
                            headers["Authorization"] = f"Bearer {token}"
                            continue
                    # 429 (a stream of this credential not yet seen closed) and 503 wait.
                    wait = settings.retry.delay(
                        attempt, resp.status_code, resp.headers.get("retry-after")
                    )
                    if wait is None:
                        raise_for(resp)
                        raise errors.from_response(resp.status_code, resp.text, dict(resp.headers))
                    self._sleep(wait)
                    continue
                ready = False
                for message in parse(resp.iter_lines()):
                    if message.comment == READY:
                        ready = True
                        if self.on_ready is not None:
                            self.on_ready()
                    if ready and self.stop_at is not None and time.monotonic() >= self.stop_at:
                        self._stopped = True
                        return
                    if message.comment is not None:
                        continue
                    entry = json.loads(message.data)
                    if message.id is not None:
                        self.last_event_id = message.id
                    yield entry
                return
