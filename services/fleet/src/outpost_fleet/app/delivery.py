"""Deliver effective states to devices in bounded batches (ADR 0093).

The queue is in Postgres (``delivery_queue``: a device, the digest to deliver, when it is
due, a lease), so a delivery survives a restart: a worker that dies holding a batch leaves
it due again when its lease ends. A worker claims at most ``MAX_BATCH`` deliveries of one
organization, reads their current states, makes one ``SET_FLEET_DESIRED_STATES`` call and
records the outcome per device; a failed call gives the batch back with backoff. Workers run
``concurrency`` batches at a time at most, with ``pause`` between two batches of one worker:
the broker and devices see a bounded rate, never the whole fleet at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from prometheus_client import Counter

from outpost_contracts import device_config
from outpost_fleet.app.rollout_ports import Clock, RolloutUnitOfWork
from outpost_fleet.domain import rollout

_log = logging.getLogger(__name__)

DELIVERED = Counter(
    "outpost_fleet_desired_states_delivered_total", "Effective states delivered", ["outcome"]
)
FAILED_BATCHES = Counter(
    "outpost_fleet_delivery_failures_total", "Delivery batches given back after a failure"
)

# Deliver a batch to devices: (organization, items) -> devices' answer.
Deliver = Callable[
    [UUID, list[device_config.FleetDesiredState]],
    Awaitable[device_config.SetFleetDesiredStatesResult],
]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOptions:
    batch: int = 100
    concurrency: int = 1
    pause: float = 0.05  # seconds between two batches of one worker
    idle: float = 0.25  # seconds between two looks at an empty queue
    lease: timedelta = timedelta(seconds=60)


async def deliver_once(
    uow: RolloutUnitOfWork, deliver: Deliver, clock: Clock, options: DeliveryOptions
) -> int:
    """Claim one batch, deliver it, record it; the number of devices it held (0: none due)."""
    now = clock()
    async with uow(None) as tx:
        claim = await tx.claim_deliveries(now, options.batch, now + options.lease)
        await tx.commit()
    if claim is None:
        return 0
    org_id, queued = claim.org_id, claim.digests
    async with uow(org_id) as tx:
        items = await tx.desired_states(list(queued))
        gone = [d for d in queued if d not in {i.device_id for i in items}]
        if gone:
            await tx.forget_deliveries(gone)
        await tx.commit()
    if not items:
        return len(queued)
    try:
        result = await deliver(org_id, items)
    except Exception as exc:
        FAILED_BATCHES.inc()
        _log.warning("delivery of %d state(s) failed: %r; given back", len(items), exc)
        later = clock()
        async with uow(org_id) as tx:
            await tx.delivery_failed(
                [i.device_id for i in items], lambda n: rollout.retry_at(n, later)
            )
            await tx.commit()
        return len(queued)
    got = rollout.outcome([i.device_id for i in items], result)
    sent = {i.device_id: i.digest for i in items}
    outcome = {d: "DELIVERED" for d in got.changed}
    outcome |= {d: "UNCHANGED" for d in got.unchanged}
    outcome |= {d: "MISSING" for d in got.missing}
    outcome |= {d: "TOO_LARGE" for d in got.too_large}
    async with uow(org_id) as tx:
        await tx.delivered({d: sent[d] for d in outcome}, outcome, clock())
        if got.unanswered:
            later = clock()
            await tx.delivery_failed(sorted(got.unanswered), lambda n: rollout.retry_at(n, later))
        await tx.commit()
    for name, ids in (
        ("changed", got.changed),
        ("unchanged", got.unchanged),
        ("missing", got.missing),
        ("too_large", got.too_large),
    ):
        DELIVERED.labels(name).inc(len(ids))
    return len(queued)


async def run(
    uow: RolloutUnitOfWork,
    deliver: Deliver,
    clock: Clock,
    options: DeliveryOptions,
    stop: asyncio.Event,
) -> None:
    """``options.concurrency`` workers until ``stop``."""
    await asyncio.gather(
        *(_worker(uow, deliver, clock, options, stop) for _ in range(options.concurrency))
    )


async def _worker(
    uow: RolloutUnitOfWork,
    deliver: Deliver,
    clock: Clock,
    options: DeliveryOptions,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            count = await deliver_once(uow, deliver, clock, options)
        except Exception as exc:  # the database is away: look again later
            _log.warning("delivery worker: %r", exc)
            count = 0
        wait = options.pause if count else options.idle
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
