"""Feeds ``TimelineHub`` from the TIMELINE stream (ADR 0096).

Each replica runs its own ordered, ephemeral consumer (``gateway-timeline`` in
``outpost_contracts.streams``) from the stream's new messages on: alerting's announcements
that an organization's timeline reaches a ``seq``. The hub wakes that organization's
``/events/stream`` connections on this replica, which read the entries from alerting. After a
broker reconnection every connection reads once (announcements may have been missed then:
``bootstrap``'s ``reconnected_cb``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import msgspec
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from outpost_contracts import subjects
from outpost_contracts.alerting import TimelineAdvanced
from outpost_contracts.streams import consumer
from outpost_gateway.app.timeline_stream import TimelineHub

_log = logging.getLogger(__name__)

SPEC = consumer("gateway-timeline")
_decoder = msgspec.json.Decoder(TimelineAdvanced)


def announcement(subject: str, data: bytes) -> tuple[UUID, int] | None:
    """The organization and ``seq`` of an announcement; None (logged) if it is not one."""
    try:
        return UUID(subjects.parse_timeline(subject)), _decoder.decode(data).seq
    except (ValueError, msgspec.DecodeError):
        _log.warning("not a timeline announcement on %s", subject)
        return None


class TimelineFollower:
    def __init__(self, nc: Client, hub: TimelineHub) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.hub = hub
        self._sub: Any = None

    async def start(self) -> None:
        """Subscribe to new announcements (waits for the stream if it does not exist yet)."""
        while True:
            try:
                await self._js.stream_info(SPEC.stream)
                break
            except NotFoundError:
                _log.warning("stream %s does not exist yet; retrying", SPEC.stream)
                await asyncio.sleep(1.0)
        self._sub = await self._js.subscribe(
            SPEC.filter_subjects[0],
            stream=SPEC.stream,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        # Whatever was announced while the consumer did not exist yet.
        self.hub.wake_all()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_message(self, msg: Any) -> None:
        got = announcement(msg.subject, msg.data)
        if got is not None:
            self.hub.announce(*got)
