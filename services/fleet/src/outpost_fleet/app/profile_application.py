"""A changed device profile, applied to every device that uses it (ADR 0093): an
asynchronous, resumable job with progress (``GET /device-profiles/{id}/application``).

``request_application`` opens (or restarts) the job when the profile changes; workers take
a due job, apply the profile to the next ``batch`` devices after the job's cursor through
devices' ``APPLY_DEVICE_PROFILE`` (idempotent) and record the batch: the job's state and
cursor are in Postgres, so a worker that stops or dies leaves the job to the next one, which
carries on after the last batch recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from outpost_contracts import device_config, fleet
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_fleet.app.rollout_ports import Clock, RolloutUnitOfWork
from outpost_fleet.domain import profile_jobs as jobs
from outpost_fleet.domain.profile_jobs import ProfileJob
from outpost_fleet.domain.rollout import Selection

_log = logging.getLogger(__name__)

# The profile as devices apply it (None: the organization has no such profile any more).
Resolve = Callable[[UUID, UUID], Awaitable[fleet.DeviceProfileSpec | None]]
# Apply it to a batch of devices: (organization, profile, devices) -> devices' answer.
Apply = Callable[
    [UUID, fleet.DeviceProfileSpec, list[UUID]],
    Awaitable[device_config.ApplyDeviceProfileResult],
]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    batch: int = device_config.MAX_BATCH
    max_attempts: int = 10
    pause: float = 0.05
    idle: float = 0.5
    lease: timedelta = timedelta(seconds=60)


def view(job: ProfileJob) -> fleet.ProfileApplicationView:
    return fleet.ProfileApplicationView(
        profile_id=job.profile_id,
        profile_version=job.profile_version,
        status=job.status,
        total=job.total,
        done=job.done,
        missing=job.missing,
        error=job.error,
        requested_at=job.requested_at,
        finished_at=job.finished_at,
    )


async def request_application(
    uow: RolloutUnitOfWork, org_id: UUID, profile_id: UUID, profile_version: int, clock: Clock
) -> ProfileJob:
    """The profile is at ``profile_version`` now: (re)start its job unless it runs already."""
    async with uow(org_id) as tx:
        job = await tx.profile_job(profile_id)
        total = await tx.count_devices(Selection(profile_ids=frozenset({profile_id})))
        new = jobs.decide(
            job, profile_id, jobs.Request(profile_version=profile_version, total=total), clock()
        )
        if new != job:
            await tx.save_profile_job(new)
        await tx.commit()
    return new


async def get_application(
    uow: RolloutUnitOfWork, ctx: RequestContext, q: fleet.GetProfileApplication
) -> fleet.ProfileApplicationView:
    async with uow(ctx.org_id) as tx:
        job = await tx.profile_job(q.id)
    if job is None:
        raise NotFound("the device profile has not been applied to devices")
    return view(job)


async def run_once(
    uow: RolloutUnitOfWork, resolve: Resolve, apply: Apply, clock: Clock, options: JobOptions
) -> bool:
    """Take one due job and run its next batch; False when no job was due."""
    now = clock()
    async with uow(None) as tx:
        claim = await tx.claim_profile_job(now, now + options.lease)
        await tx.commit()
    if claim is None:
        return False
    org_id, profile_id = claim
    async with uow(org_id) as tx:
        job = await tx.profile_job(profile_id)
        if job is None or not jobs.runnable(job, now):
            if job is not None:
                await tx.save_profile_job(job)  # off the queue, or due later
            await tx.commit()
            return True
        device_ids = await tx.devices_with_profile(profile_id, job.cursor, options.batch)
    command: jobs.Command
    if not device_ids:
        command = jobs.NothingLeft(profile_version=job.profile_version)
    else:
        try:
            spec = await resolve(org_id, profile_id)
            if spec is None:
                command = jobs.BatchFailed(
                    profile_version=job.profile_version,
                    error="the device profile no longer exists",
                    max_attempts=1,
                )
            else:
                result = await apply(org_id, spec, device_ids)
                command = jobs.BatchApplied(
                    profile_version=job.profile_version,
                    last_device_id=device_ids[-1],
                    applied=len(result.applied),
                    missing=len(result.missing),
                    more=len(device_ids) == options.batch,
                )
        except Exception as exc:
            _log.warning("profile %s: a batch failed: %r", profile_id, exc)
            command = jobs.BatchFailed(
                profile_version=job.profile_version,
                error=str(exc)[:500] or type(exc).__name__,
                max_attempts=options.max_attempts,
            )
    async with uow(org_id) as tx:
        current = await tx.profile_job(profile_id)
        try:
            new = jobs.decide(current, profile_id, command, clock())
        except jobs.Stale:  # a newer version restarted the job meanwhile: it carries on
            if current is not None:
                await tx.save_profile_job(current)
            await tx.commit()
            return True
        await tx.save_profile_job(new)
        await tx.commit()
    return True


async def run(
    uow: RolloutUnitOfWork,
    resolve: Resolve,
    apply: Apply,
    clock: Clock,
    options: JobOptions,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            worked = await run_once(uow, resolve, apply, clock, options)
        except Exception as exc:
            _log.warning("profile job worker: %r", exc)
            worked = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), options.pause if worked else options.idle)
