"""Scheduled upkeep: the day partitions of ``readings`` created ahead, at start and then on
a schedule, so ingest never waits on one (it creates a missing one itself if it must)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from outpost_kit import ids
from outpost_readings.app.handlers import Deps, ensure_partitions_ahead

_log = logging.getLogger(__name__)


async def run(deps: Deps, days_ahead: int, every_seconds: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            made = await ensure_partitions_ahead(deps, ids.now().date(), days_ahead)
            if made:
                _log.info("created %d readings partitions", made)
        except Exception as exc:  # retried at the next round; ingest creates what it needs
            _log.warning("creating readings partitions failed: %r", exc)
            every = min(every_seconds, 30.0)
        else:
            every = every_seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
