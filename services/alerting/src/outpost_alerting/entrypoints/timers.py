"""The timer loop: ``forSeconds`` windows no reading contradicted and ``nodata`` fire when
they are due, on every replica (claims are leased, so one replica fires each)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from outpost_alerting.app.evaluation import fire_due
from outpost_kit import ids
from outpost_kit.db.uow import UnitOfWorkFactory

_log = logging.getLogger(__name__)


async def run(
    uow: UnitOfWorkFactory, every_seconds: float, lease: timedelta, batch: int, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        busy = False
        try:
            outcome = await fire_due(uow, ids.now(), lease, batch)
            busy = outcome.claimed >= batch  # more may be due: go on at once
        except Exception as exc:  # retried at the next round
            _log.warning("firing due timers failed: %r", exc)
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
