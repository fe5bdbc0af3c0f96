"""The profile-change job: requested, batches applied with a cursor, failures retried with
backoff then failed, a newer version restarting it, stale batches refused (ADR 0093)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from outpost_fleet.domain.profile_jobs import (
    BatchApplied,
    BatchFailed,
    NothingLeft,
    Request,
    Stale,
    Status,
    decide,
    runnable,
)

pytestmark = pytest.mark.unit

PROFILE = UUID(int=7)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_request_opens_a_pending_job_with_its_total() -> None:
    job = decide(None, PROFILE, Request(profile_version=2, total=1200), NOW)
    assert job.status is Status.PENDING
    assert (job.total, job.done, job.cursor) == (1200, 0, None)
    assert runnable(job, NOW)


def test_a_profile_nobody_uses_is_applied_at_once() -> None:
    job = decide(None, PROFILE, Request(profile_version=2, total=0), NOW)
    assert job.status is Status.COMPLETED
    assert job.finished_at == NOW
    assert not runnable(job, NOW)


def test_batches_advance_the_cursor_until_the_last() -> None:
    job = decide(None, PROFILE, Request(profile_version=2, total=1200), NOW)
    job = decide(
        job,
        PROFILE,
        BatchApplied(
            profile_version=2, last_device_id=UUID(int=500), applied=499, missing=1, more=True
        ),
        NOW,
    )
    assert (job.status, job.done, job.missing, job.cursor) == (
        Status.RUNNING,
        500,
        1,
        UUID(int=500),
    )
    job = decide(
        job,
        PROFILE,
        BatchApplied(
            profile_version=2, last_device_id=UUID(int=900), applied=700, missing=0, more=False
        ),
        NOW,
    )
    assert job.status is Status.COMPLETED
    assert job.done == 1200
    assert job.finished_at == NOW


def test_devices_that_joined_during_the_job_raise_the_total() -> None:
    job = decide(None, PROFILE, Request(profile_version=1, total=2), NOW)
    job = decide(
        job,
        PROFILE,
        BatchApplied(
            profile_version=1, last_device_id=UUID(int=3), applied=3, missing=0, more=False
        ),
        NOW,
    )
    assert (job.done, job.total) == (3, 3)


def test_nothing_left_completes_with_what_was_done() -> None:
    job = decide(None, PROFILE, Request(profile_version=1, total=10), NOW)
    job = decide(
        job,
        PROFILE,
        BatchApplied(
            profile_version=1, last_device_id=UUID(int=3), applied=8, missing=0, more=True
        ),
        NOW,
    )
    job = decide(job, PROFILE, NothingLeft(profile_version=1), NOW)
    assert (job.status, job.done, job.total) == (Status.COMPLETED, 8, 8)


def test_a_failed_batch_backs_off_then_fails_the_job() -> None:
    job = decide(None, PROFILE, Request(profile_version=1, total=10), NOW)
    job = decide(job, PROFILE, BatchFailed(profile_version=1, error="timeout", max_attempts=3), NOW)
    assert job.status is Status.RUNNING
    assert job.run_after == NOW + timedelta(seconds=1)
    assert not runnable(job, NOW)
    assert runnable(job, NOW + timedelta(seconds=1))
    job = decide(job, PROFILE, BatchFailed(profile_version=1, error="timeout", max_attempts=3), NOW)
    assert job.run_after == NOW + timedelta(seconds=2)
    job = decide(job, PROFILE, BatchFailed(profile_version=1, error="down", max_attempts=3), NOW)
    assert job.status is Status.FAILED
    assert job.error == "down"
    assert not runnable(job, NOW + timedelta(hours=1))


def test_a_success_resets_the_failures() -> None:
    job = decide(None, PROFILE, Request(profile_version=1, total=10), NOW)
    job = decide(job, PROFILE, BatchFailed(profile_version=1, error="x", max_attempts=3), NOW)
    job = decide(
        job,
        PROFILE,
        BatchApplied(
            profile_version=1, last_device_id=UUID(int=1), applied=5, missing=0, more=True
        ),
        NOW,
    )
    assert (job.attempts, job.run_after, job.error) == (0, None, None)


def test_a_newer_version_restarts_from_the_first_device() -> None:
    job = decide(None, PROFILE, Request(profile_version=1, total=10), NOW)
    job = decide(
        job,
        PROFILE,
        BatchApplied(
            profile_version=1, last_device_id=UUID(int=5), applied=5, missing=0, more=True
        ),
        NOW,
    )
    later = NOW + timedelta(minutes=1)
    job = decide(job, PROFILE, Request(profile_version=2, total=11), later)
    assert (job.profile_version, job.status, job.done, job.cursor) == (2, Status.PENDING, 0, None)
    assert job.requested_at == later


def test_the_same_or_an_older_version_again_changes_nothing() -> None:
    job = decide(None, PROFILE, Request(profile_version=3, total=10), NOW)
    assert decide(job, PROFILE, Request(profile_version=3, total=99), NOW) == job
    assert decide(job, PROFILE, Request(profile_version=2, total=99), NOW) == job


def test_a_failed_job_is_retried_by_requesting_its_version_again() -> None:
    job = decide(None, PROFILE, Request(profile_version=3, total=10), NOW)
    job = decide(job, PROFILE, BatchFailed(profile_version=3, error="x", max_attempts=1), NOW)
    assert job.status is Status.FAILED
    again = decide(job, PROFILE, Request(profile_version=3, total=10), NOW)
    assert again.status is Status.PENDING


def test_a_batch_of_another_version_or_a_finished_job_is_stale() -> None:
    job = decide(None, PROFILE, Request(profile_version=2, total=10), NOW)
    applied = BatchApplied(
        profile_version=1, last_device_id=UUID(int=1), applied=1, missing=0, more=True
    )
    with pytest.raises(Stale):
        decide(job, PROFILE, applied, NOW)
    with pytest.raises(Stale):
        decide(None, PROFILE, NothingLeft(profile_version=2), NOW)
    done = decide(job, PROFILE, NothingLeft(profile_version=2), NOW)
    with pytest.raises(Stale):
        decide(done, PROFILE, NothingLeft(profile_version=2), NOW)
