"""The maintenance loop: every ``expiry_check_seconds``, on every replica, expire archives
past their lifetime and publish again the work items of stuck jobs (each export is handled
in its own locked transaction, so replicas do not do one twice)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.app.expiry import expire_due, requeue_stuck
from outpost_exports.app.ports import ExportsUnitOfWork
from outpost_kit import ids

_log = logging.getLogger(__name__)


async def run(
    uow: ExportsUnitOfWork,
    store: ArtifactStore,
    every_seconds: float,
    requeue_after: timedelta,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            await expire_due(uow, store, ids.now())
        except Exception as exc:  # retried at the next round
            _log.warning("expiring export archives failed: %r", exc)
        try:
            await requeue_stuck(uow, ids.now(), requeue_after)
        except Exception as exc:  # retried at the next round
            _log.warning("re-publishing stuck exports failed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
