"""Metrics sampled rather than counted: how far behind each durable consumer is.

A JetStream consumer's lag lives on the server (``num_pending``: messages in the stream the
consumer has not been delivered yet; ``num_ack_pending``: delivered, not acknowledged;
``num_redelivered``: delivered more than once and still unacknowledged). Each service asks
for its own consumers' info every few seconds (one small request per consumer) and
publishes it as gauges; every replica reports the same server-side figures, so dashboards
take the ``max`` over replicas, not the sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from nats.js.client import JetStreamContext
from prometheus_client import Gauge

from outpost_contracts.streams import ConsumerSpec

_log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0

PENDING = Gauge(
    "outpost_consumer_pending",
    "Messages in the stream not yet delivered to the consumer (its lag), sampled",
    ["consumer"],
)
ACK_PENDING = Gauge(
    "outpost_consumer_ack_pending",
    "Messages delivered to the consumer and not yet acknowledged, sampled",
    ["consumer"],
)
REDELIVERED = Gauge(
    "outpost_consumer_redelivered",
    "Messages delivered more than once and not yet acknowledged, sampled",
    ["consumer"],
)
SAMPLED = Gauge(
    "outpost_consumer_info_timestamp_seconds",
    "When the consumer's info was last read (unix time)",
    ["consumer"],
)


def declare_consumer_series(specs: Sequence[ConsumerSpec]) -> None:
    """Make each consumer's counters exist at 0 from the start (a series that appears only
    with its first dead letter cannot be alerted on with ``rate()`` or ``increase()``)."""
    from outpost_kit import consumer

    for spec in specs:
        for counter in (
            consumer.PROCESSED,
            consumer.DUPLICATES,
            consumer.REDELIVERIES,
            consumer.DEAD_LETTERS,
            consumer.WAITS,
        ):
            counter.labels(spec.name)


async def sample_consumers_once(js: JetStreamContext, specs: Sequence[ConsumerSpec]) -> int:
    """Read each durable consumer's info and set its gauges; returns how many answered."""
    answered = 0
    for spec in specs:
        if not spec.durable:
            continue
        try:
            info = await js.consumer_info(spec.stream, spec.name, timeout=2.0)
        except Exception as exc:  # the broker is away: keep the last figures
            _log.debug("consumer info of %s unavailable: %r", spec.name, exc)
            continue
        PENDING.labels(spec.name).set(info.num_pending or 0)
        ACK_PENDING.labels(spec.name).set(info.num_ack_pending or 0)
        REDELIVERED.labels(spec.name).set(info.num_redelivered or 0)
        SAMPLED.labels(spec.name).set_to_current_time()
        answered += 1
    return answered


async def sample_consumers(
    js: JetStreamContext,
    specs: Sequence[ConsumerSpec],
    stop: asyncio.Event,
    every: float = SAMPLE_SECONDS,
) -> None:
    """``sample_consumers_once`` every ``every`` seconds until ``stop`` (a service's jobs
    return only on stop: a returning job stops the service)."""
    declare_consumer_series([s for s in specs if s.durable])
    if not any(s.durable for s in specs):
        await stop.wait()
        return
    while not stop.is_set():
        await sample_consumers_once(js, specs)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
