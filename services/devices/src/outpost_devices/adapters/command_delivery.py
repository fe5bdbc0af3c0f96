"""Offering a message on a device's command subject over core NATS (decision 56).

A request with a short time-out: nats-server answers "no responders" at once when nothing
subscribes to the subject (the device is offline or has not subscribed yet), over NATS and
MQTT alike; when a device holds the subscription it gets the message but cannot answer (it
may not publish on ``_INBOX``), so the request times out, and that means delivered."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout


class NatsDelivery:
    def __init__(self, nc: NATS, timeout: float = 0.25) -> None:
        self.nc = nc
        self.timeout = timeout

    async def __call__(self, subject: str, payload: bytes) -> bool:
        try:
            await self.nc.request(subject, payload, timeout=self.timeout)
        except NoRespondersError:
            return False
        except NatsTimeout:
            return True
        return True  # something answered: a subscriber that could reply holds the subject
