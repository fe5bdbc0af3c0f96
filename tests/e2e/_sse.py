"""Following a Server-Sent Events stream from a test: read on a thread, each message and
comment queued, so a test waits for what it expects with a timeout (never a sleep)."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class Comment:
    text: str


class Stream:
    """``GET path`` as ``text/event-stream``; ``status`` once answered, ``error`` its body
    when not 200."""

    def __init__(
        self,
        base_url: str,
        path: str,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=120))
        self._queue: queue.Queue[Message | Comment | None] = queue.Queue()
        self._answered = threading.Event()
        self._response: httpx.Response | None = None
        self._closing = threading.Event()
        self.status = 0
        self.error: Any = None
        self._thread = threading.Thread(
            target=self._run, args=(path, headers, params or {}), daemon=True
        )
        self._thread.start()
        assert self._answered.wait(30), f"{path} was not answered"

    def _run(self, path: str, headers: dict[str, str], params: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", path, headers=headers, params=params) as resp:
                self._response = resp
                self.status = resp.status_code
                if resp.status_code != 200:
                    self.error = json.loads(resp.read())
                    self._answered.set()
                    return
                self._answered.set()
                self._read(resp)
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by the test
        finally:
            self._answered.set()
            self._queue.put(None)

    def _read(self, resp: httpx.Response) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in resp.iter_lines():
            if self._closing.is_set():  # heartbeats come every second in the e2e stack
                return
            if line == "":
                if data:
                    self._queue.put(Message(fields.get("id"), fields.get("event"), "\n".join(data)))
                fields, data = {}, []
            elif line.startswith(":"):
                self._queue.put(Comment(line[1:].strip()))
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value

    def next(self, timeout: float = 30) -> Message | Comment:
        """The next message or comment; fails after ``timeout`` seconds or at the end."""
        item = self._queue.get(timeout=timeout)
        assert item is not None, "the stream ended"
        return item

    def messages(self, n: int, timeout: float = 60) -> list[Message]:
        """The next ``n`` messages (comments skipped)."""
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(out)} of {n} messages after {timeout}s: {out}"
            try:
                item = self.next(left)
            except queue.Empty:
                continue
            if isinstance(item, Message):
                out.append(item)
        return out

    def wait_comment(self, text: str, timeout: float = 30) -> list[Message]:
        """Read until the comment ``text``; the messages before it."""
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no ': {text}' within {timeout}s"
            item = self.next(left)
            if isinstance(item, Comment) and item.text == text:
                return out
            if isinstance(item, Message):
                out.append(item)

    def no_message_before(self, text: str, timeout: float = 30) -> None:
        """Nothing but comments until the comment ``text``."""
        assert self.wait_comment(text, timeout) == []

    def close(self) -> None:
        """Drop the connection (as a network failure would, from the server's side)."""
        self._closing.set()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
        with contextlib.suppress(Exception):
            self._client.close()
        self._thread.join(10)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
