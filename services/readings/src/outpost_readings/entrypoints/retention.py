"""Scheduled retention: at start and then every ``every_seconds``, drop the expired day
partitions of ``readings`` and delete the expired rows they do not take (app/retention.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date

from outpost_kit import ids
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings.app.retention import apply_retention

_log = logging.getLogger(__name__)


async def run(
    uow: UnitOfWorkFactory,
    default_days: int,
    every_seconds: float,
    batch: int,
    known_partitions: set[date] | None,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            await apply_retention(
                uow,
                ids.now().date(),
                default_days,
                batch=batch,
                forget=known_partitions,
            )
        except Exception as exc:  # tried again at the next round; nothing is half-done
            _log.warning("readings retention failed: %r", exc)
            every = min(every_seconds, 300.0)
        else:
            every = every_seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
