"""Integrations' durable consumers on the PUBLIC stream (ADR 0097): identity's broker user
may make, inspect and remove consumers of that stream and of no other
(``access.integration_consumers``)."""

from __future__ import annotations

import logging
from datetime import datetime

from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.api import DeliverPolicy as JsDeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from outpost_contracts import integrations
from outpost_contracts.errors import ServiceUnavailable
from outpost_contracts.identity import DeliverPolicy

_log = logging.getLogger(__name__)

_POLICIES = {
    DeliverPolicy.ALL: JsDeliverPolicy.ALL,
    DeliverPolicy.NEW: JsDeliverPolicy.NEW,
    DeliverPolicy.BY_START_TIME: JsDeliverPolicy.BY_START_TIME,
}
# How long a delivered message waits for its ack before it is delivered again, and how many
# may wait at once per consumer (a subscriber that stops acking stops receiving).
ACK_WAIT_SECONDS = 30.0
MAX_ACK_PENDING = 1000


def consumer_config(
    name: str,
    filters: tuple[str, ...],
    policy: DeliverPolicy,
    start_time: datetime | None,
    description: str,
) -> ConsumerConfig:
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=description,
        deliver_policy=_POLICIES[policy],
        opt_start_time=start_time if policy is DeliverPolicy.BY_START_TIME else None,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=MAX_ACK_PENDING,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=list(filters) if len(filters) > 1 else None,
    )


class JetStreamConsumers:
    """The port ``IntegrationConsumers`` over JetStream."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def ensure(
        self,
        names: tuple[str, ...],
        filters: tuple[str, ...],
        policy: DeliverPolicy,
        start_time: datetime | None,
        description: str,
    ) -> None:
        for name in names:
            config = consumer_config(name, filters, policy, start_time, description)
            try:
                await self.js.add_consumer(integrations.STREAM, config)
            except Exception as exc:
                _log.warning("integration consumer %s not created: %s", name, exc)
                raise ServiceUnavailable("the broker did not take the integration") from exc

    async def remove(self, names: tuple[str, ...]) -> None:
        for name in names:
            try:
                await self.js.delete_consumer(integrations.STREAM, name)
            except NotFoundError:
                pass
            except Exception as exc:  # its credentials are refused already: nothing reads it
                _log.warning("integration consumer %s not removed: %s", name, exc)
