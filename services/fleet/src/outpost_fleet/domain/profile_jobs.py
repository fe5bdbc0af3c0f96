"""The application of a changed device profile to every device that uses it (ADR 0093).

One job per device profile: the newest version of the profile is applied to the devices that
use it, in batches of at most ``MAX_BATCH`` in device id order, each batch one call to devices
(``APPLY_DEVICE_PROFILE``, idempotent) and one transaction here. The job remembers the last
device id applied (``cursor``), so a worker that stops, crashes or loses the database resumes
after the last batch it recorded, never from the start. A newer version of the profile
restarts the job from the first device (applying is idempotent, so nothing is lost by
applying again); a batch recorded for an older version is stale and ignored.

A job is an operational record, not an aggregate: ``decide`` gives the job's next state (or
raises ``Stale``), the store writes it with the batch's effects.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts.errors import Conflict
from outpost_contracts.fleet import ApplicationStatus

Status = ApplicationStatus

RETRY_FIRST = timedelta(seconds=1)
RETRY_MAX = timedelta(minutes=2)


class ProfileJob(msgspec.Struct, frozen=True, kw_only=True):
    profile_id: UUID
    profile_version: int
    status: Status
    total: int  # the devices using the profile when the job started (it may grow)
    done: int = 0  # devices applied (or found gone) so far
    missing: int = 0  # of those, devices devices no longer had
    cursor: UUID | None = None  # the last device id applied
    attempts: int = 0  # failures in a row of the current batch
    run_after: datetime | None = None  # not before (after a failure)
    error: str | None = None
    requested_at: datetime
    finished_at: datetime | None = None


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """The profile is at ``profile_version`` now and ``total`` devices use it."""

    profile_version: int
    total: int


class BatchApplied(msgspec.Struct, frozen=True, kw_only=True):
    profile_version: int
    last_device_id: UUID
    applied: int
    missing: int
    more: bool  # whether devices after ``last_device_id`` may use the profile


class BatchFailed(msgspec.Struct, frozen=True, kw_only=True):
    profile_version: int
    error: str
    max_attempts: int


class NothingLeft(msgspec.Struct, frozen=True, kw_only=True):
    """No device after the cursor uses the profile."""

    profile_version: int


Command = Request | BatchApplied | BatchFailed | NothingLeft


class Stale(Conflict):
    """The command is about another version of the profile, or the job is over."""


def decide(job: ProfileJob | None, profile_id: UUID, command: Command, now: datetime) -> ProfileJob:
    if isinstance(command, Request):
        if job is not None and (
            job.profile_version > command.profile_version
            or (job.profile_version == command.profile_version and job.status is not Status.FAILED)
        ):
            return job  # already applying (or applied) this version or a newer one
        return ProfileJob(
            profile_id=profile_id,
            profile_version=command.profile_version,
            status=Status.PENDING if command.total else Status.COMPLETED,
            total=command.total,
            requested_at=now,
            finished_at=None if command.total else now,
        )
    if job is None:
        raise Stale("no job for this profile")
    if command.profile_version != job.profile_version:
        raise Stale(f"the job applies version {job.profile_version}")
    if job.status in (Status.COMPLETED, Status.FAILED):
        raise Stale(f"the job is {job.status.value}")
    replace = msgspec.structs.replace
    if isinstance(command, BatchApplied):
        done = job.done + command.applied + command.missing
        finished = not command.more
        return replace(
            job,
            status=Status.COMPLETED if finished else Status.RUNNING,
            done=done,
            total=max(job.total, done),
            missing=job.missing + command.missing,
            cursor=command.last_device_id,
            attempts=0,
            run_after=None,
            error=None,
            finished_at=now if finished else None,
        )
    if isinstance(command, NothingLeft):
        return replace(
            job,
            status=Status.COMPLETED,
            total=job.done,
            attempts=0,
            run_after=None,
            finished_at=now,
        )
    if isinstance(command, BatchFailed):
        attempts = job.attempts + 1
        if attempts >= command.max_attempts:
            return replace(
                job,
                status=Status.FAILED,
                attempts=attempts,
                error=command.error,
                run_after=None,
                finished_at=now,
            )
        delay = min(RETRY_FIRST * 2 ** min(attempts - 1, 16), RETRY_MAX)
        return replace(
            job,
            status=Status.RUNNING,
            attempts=attempts,
            error=command.error,
            run_after=now + delay,
        )
    raise TypeError(f"unknown command {command!r}")


def runnable(job: ProfileJob, now: datetime) -> bool:
    """Whether a worker may take the job's next batch now."""
    if job.status not in (Status.PENDING, Status.RUNNING):
        return False
    return job.run_after is None or job.run_after <= now
