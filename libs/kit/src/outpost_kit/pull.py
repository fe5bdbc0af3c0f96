"""Where a consumer's batches come from (``outpost_kit.consumer.BatchConsumer`` reads them):
``Fetcher``, nats-py's ``fetch(n)``, which fills a batch or waits out its timeout, and
``Puller``, low-latency batches from one pull request kept open, each batch whatever has
arrived, handed over as soon as the first message is there.

nats-py's ``fetch(n)`` returns only when ``n`` messages arrived or its timeout passed once
the server had nothing at the moment of asking, so at low rates a message can wait out most
of the timeout (up to a second) in a batch that will never fill. A pull request itself has
no such wait: the server delivers each message to the request's inbox as it arrives. Here
the inbox is read directly: ``next_batch`` waits for the first message and takes the rest
that are already queued, up to ``batch``; a new pull request goes out whenever the open one
is spent, expired or lost (JetStream's status messages say which).
"""

from __future__ import annotations

import contextlib
import time
from typing import Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext

_STATUS = "Status"
_encoder = msgspec.json.Encoder()


class Source(Protocol):
    """Batches of one durable pull consumer."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def next_batch(self, wait_seconds: float) -> list[Msg]:
        """At most a batch; none when nothing came within ``wait_seconds``."""
        ...

    async def keep_alive(self) -> None:
        """While the caller holds a batch: keep what was delivered behind it alive."""
        ...


class Fetcher:
    """Batches of ``fetch(batch)``: a batch fills up to ``batch`` messages or waits out the
    wait (up to a second at low rates), so a loaded consumer gets large batches."""

    def __init__(self, js: JetStreamContext, stream: str, consumer: str, batch: int) -> None:
        self._js = js
        self._stream = stream
        self._consumer = consumer
        self._batch = batch
        self._sub: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        self._sub = await self._js.pull_subscribe_bind(self._consumer, stream=self._stream)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def next_batch(self, wait_seconds: float) -> list[Msg]:
        assert self._sub is not None, "start() first"
        try:
            return await self._sub.fetch(self._batch, timeout=wait_seconds)
        except TimeoutError:  # nats-py and asyncio time-outs alike: nothing to fetch
            return []

    async def keep_alive(self) -> None:
        """Nothing is delivered behind a fetched batch until the next fetch."""


class Puller:
    """Batches of a durable pull consumer. ``expires``: how long one pull request stays
    open on the server; a request not answered by then (a lost one, after a reconnect) is
    replaced."""

    def __init__(
        self, nc: Client, stream: str, consumer: str, batch: int, expires: float = 5.0
    ) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch
        self._expires = expires
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._left = 0  # messages the open request may still deliver
        self._held: list[Msg] = []  # delivered, not handed over yet (see keep_alive)
        self._renew_at = 0.0  # when the open request is taken as lost

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, pending_msgs_limit=4 * self._batch)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _request(self) -> None:
        body = {"batch": self._batch, "expires": int(self._expires * 1e9)}
        await self._nc.publish(self._next, _encoder.encode(body), reply=self._inbox)
        self._left = self._batch
        self._renew_at = time.monotonic() + self._expires + 1.0

    async def next_batch(self, wait_seconds: float) -> list[Msg]:
        """Messages as soon as there is at least one (at most ``batch``), or none after
        ``wait_seconds``."""
        assert self._sub is not None, "start() first"
        deadline = time.monotonic() + wait_seconds
        batch, self._held = self._held[: self._batch], self._held[self._batch :]
        while self._sub.pending_msgs and batch and len(batch) < self._batch:
            self._take(await self._sub.next_msg(timeout=0.1), batch)
        while not batch:
            if self._left <= 0 or time.monotonic() >= self._renew_at:
                await self._request()
            wait = min(deadline, self._renew_at) - time.monotonic()
            if wait <= 0:
                if time.monotonic() >= deadline:
                    return batch
                continue
            try:
                msg = await self._sub.next_msg(timeout=wait)
            except TimeoutError:
                continue
            self._take(msg, batch)
            while self._sub.pending_msgs and len(batch) < self._batch:
                self._take(await self._sub.next_msg(timeout=0.1), batch)
        return batch

    async def keep_alive(self) -> None:
        """While the caller holds a batch (its database is down): take what the open
        request delivered meanwhile off the inbox and keep those deliveries alive too
        (in-progress acks), so their ack wait does not run out and spend them; the next
        batches hand them over first."""
        assert self._sub is not None, "start() first"
        while self._sub.pending_msgs:
            self._take(await self._sub.next_msg(timeout=0.1), self._held)
        for msg in self._held:
            with contextlib.suppress(Exception):
                await msg.in_progress()

    def _take(self, msg: Msg, batch: list[Msg]) -> None:
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            batch.append(msg)
            self._left -= 1
        elif status != "100":  # 404/408/409: the request is spent; 100 is a heartbeat
            self._left = 0
