"""One device's execution of a firmware rollout (stream type ``firmware_execution``, ADR 0094).

``QUEUED`` → ``NOTIFIED`` → ``DOWNLOADING`` (bytes) → ``INSTALLING`` → ``SUCCEEDED`` | ``FAILED``
| ``TIMED_OUT`` | ``REJECTED`` | ``CANCELLED``. The rules:

- **Notify** sends the ``outpost.firmware`` command (devices' command mechanism delivers it
  when an offline device connects); each notification starts an attempt that must end before
  ``now + timeoutSeconds``.
- **Progress** comes from the device's acks: DOWNLOADING with the bytes it has, INSTALLING,
  then its word that it installed, FAILED or REJECTED. The status only moves forward
  (a late DOWNLOADING after INSTALLING changes nothing); a DOWNLOADING report with more bytes
  is recorded when it moved at least ``PROGRESS_STEP`` of the image since the last recorded
  one, or reached the end, so an execution's history stays short whatever the device's rate.
- **Success is what the device runs**, not what it says: SUCCEEDED only when its reported
  state names the target version (``semver.same``: build metadata included), at any point
  after the first notification. The device's "installed" is recorded and waited on; a device
  that then reports another version rebooted into something else and the attempt FAILED.
- **Timeouts**: an attempt still unfinished at its deadline is TIMED_OUT.
- **Retries**: a FAILED or TIMED_OUT attempt, with attempts left (``retries.maxAttempts``),
  schedules another: QUEUED again, notified at ``retryAt`` (``backoffSeconds`` doubling per
  attempt, at most an hour). REJECTED (the device refused the image: signature, digest,
  hardware) is never retried. The rollout counts an execution once it ended.
- **Cancel** ends any execution that has not ended (the rollout's use case chooses which:
  those not yet notified when a rollout is cancelled or aborts).

Reports for an execution that ended, or that waits for a retry, change nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.firmware import (
    ENDED,
    ExecutionStatus,
    FirmwareExecutionEnded,
    FirmwareExecutionInstallReported,
    FirmwareExecutionNotified,
    FirmwareExecutionProgressed,
    FirmwareExecutionQueued,
    FirmwareExecutionRetryScheduled,
    RetryPolicy,
)
from outpost_fleet.domain import semver

STREAM_TYPE = "firmware_execution"
PROGRESS_STEP = 0.05  # of the image's size, between two recorded DOWNLOADING reports
MAX_BACKOFF = timedelta(hours=1)
MAX_ERROR_LENGTH = 1000

S = ExecutionStatus
ACTIVE = frozenset({S.NOTIFIED, S.DOWNLOADING, S.INSTALLING})
_ORDER = {S.NOTIFIED: 0, S.DOWNLOADING: 1, S.INSTALLING: 2}


class Execution(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    rollout_id: UUID
    device_id: UUID
    firmware_id: UUID
    target: str  # the firmware version the device must report
    size_bytes: int
    timeout_seconds: int
    retries: RetryPolicy
    status: ExecutionStatus = S.QUEUED
    attempt: int = 0  # notifications so far
    deadline: datetime | None = None
    retry_at: datetime | None = None
    bytes_downloaded: int | None = None
    install_reported: bool = False
    error: str | None = None
    running: str | None = None  # the version it reported on success
    version: int = 1  # the stream's


class Queue(msgspec.Struct, frozen=True, kw_only=True):
    rollout_id: UUID
    device_id: UUID
    firmware_id: UUID
    target: str
    size_bytes: int
    timeout_seconds: int
    retries: RetryPolicy = RetryPolicy()


class Notify(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ReportProgress(msgspec.Struct, frozen=True, kw_only=True):
    """An ack from the device: DOWNLOADING (``bytesDownloaded``), INSTALLING, SUCCEEDED (its
    word that it installed), FAILED or REJECTED (``error``)."""

    status: ExecutionStatus
    bytes_downloaded: int | None = None
    error: str | None = None


class ObserveVersion(msgspec.Struct, frozen=True, kw_only=True):
    """The firmware version in the device's reported state."""

    version: str


class CheckTimeout(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Cancel(msgspec.Struct, frozen=True, kw_only=True):
    reason: str | None = None


Command = Queue | Notify | ReportProgress | ObserveVersion | CheckTimeout | Cancel


def backoff(retries: RetryPolicy, attempt: int) -> timedelta:
    """The wait before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
    seconds = retries.backoff_seconds * 2 ** max(0, attempt - 1)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def ended(state: Execution) -> bool:
    return state.status in ENDED


def _error(text: str | None) -> str | None:
    return text[:MAX_ERROR_LENGTH] if text else text


def _fail(state: Execution, status: ExecutionStatus, error: str | None, now: datetime) -> Event:
    """The end of the current attempt: another one scheduled, or the execution ended."""
    if status is not S.REJECTED and state.attempt < state.retries.max_attempts:
        return FirmwareExecutionRetryScheduled(
            attempt=state.attempt,
            status=status,
            retry_at=now + backoff(state.retries, state.attempt),
            error=_error(error),
        )
    return FirmwareExecutionEnded(status=status, error=_error(error))


def _progress(state: Execution, command: ReportProgress, now: datetime) -> list[Event]:
    status = command.status
    if status in (S.FAILED, S.REJECTED):
        return [_fail(state, status, command.error or "the device reported a failure", now)]
    if status is S.SUCCEEDED:
        return [] if state.install_reported else [FirmwareExecutionInstallReported()]
    if status is S.DOWNLOADING:
        received = command.bytes_downloaded
        if received is None or not 0 <= received <= state.size_bytes:
            raise validation_error("bytesDownloaded", f"must be from 0 to {state.size_bytes}")
        if state.status is S.DOWNLOADING:
            last = state.bytes_downloaded or 0
            step = max(1, int(state.size_bytes * PROGRESS_STEP))
            if received <= last or (received - last < step and received != state.size_bytes):
                return []
        elif _ORDER[state.status] > _ORDER[S.DOWNLOADING]:
            return []
        return [FirmwareExecutionProgressed(status=S.DOWNLOADING, bytes_downloaded=received)]
    if status is S.INSTALLING:
        if state.status is S.INSTALLING:
            return []
        return [FirmwareExecutionProgressed(status=S.INSTALLING)]
    raise validation_error("status", f"a device does not report {status}")


def decide(state: Execution | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, Queue):
        if state is not None:
            raise Conflict("the execution exists")
        semver.parse(command.target)
        return [
            FirmwareExecutionQueued(
                rollout_id=command.rollout_id,
                device_id=command.device_id,
                firmware_id=command.firmware_id,
                version=command.target,
                size_bytes=command.size_bytes,
                timeout_seconds=command.timeout_seconds,
                retries=command.retries,
            )
        ]
    if state is None:
        raise NotFound("no such execution")
    if ended(state):
        return []
    if isinstance(command, Cancel):
        return [FirmwareExecutionEnded(status=S.CANCELLED, error=_error(command.reason))]
    if isinstance(command, Notify):
        if state.status is not S.QUEUED:
            return []
        if state.retry_at is not None and now < state.retry_at:
            return []
        return [
            FirmwareExecutionNotified(
                attempt=state.attempt + 1, deadline=now + timedelta(seconds=state.timeout_seconds)
            )
        ]
    if isinstance(command, ObserveVersion):
        if state.attempt == 0:
            return []
        if semver.same(command.version, state.target):
            return [FirmwareExecutionEnded(status=S.SUCCEEDED, version=command.version)]
        if state.status in ACTIVE and state.install_reported:
            return [
                _fail(
                    state,
                    S.FAILED,
                    f"the device runs {command.version} after installing {state.target}",
                    now,
                )
            ]
        return []
    if state.status not in ACTIVE:
        return []  # waiting for a retry: late acks and timers of the last attempt
    if isinstance(command, CheckTimeout):
        assert state.deadline is not None
        if now < state.deadline:
            return []
        return [_fail(state, S.TIMED_OUT, f"no success within {state.timeout_seconds} s", now)]
    return _progress(state, command, now)


def evolve(state: Execution | None, event: Event, stream_id: UUID) -> Execution | None:
    if isinstance(event, FirmwareExecutionQueued):
        return Execution(
            id=stream_id,
            rollout_id=event.rollout_id,
            device_id=event.device_id,
            firmware_id=event.firmware_id,
            target=event.version,
            size_bytes=event.size_bytes,
            timeout_seconds=event.timeout_seconds,
            retries=event.retries,
        )
    assert state is not None
    version = state.version + 1
    if isinstance(event, FirmwareExecutionNotified):
        return msgspec.structs.replace(
            state,
            status=S.NOTIFIED,
            attempt=event.attempt,
            deadline=event.deadline,
            retry_at=None,
            bytes_downloaded=None,
            install_reported=False,
            version=version,
        )
    if isinstance(event, FirmwareExecutionProgressed):
        return msgspec.structs.replace(
            state,
            status=event.status,
            bytes_downloaded=(
                event.bytes_downloaded
                if event.bytes_downloaded is not None
                else state.bytes_downloaded
            ),
            version=version,
        )
    if isinstance(event, FirmwareExecutionInstallReported):
        return msgspec.structs.replace(state, install_reported=True, version=version)
    if isinstance(event, FirmwareExecutionRetryScheduled):
        return msgspec.structs.replace(
            state,
            status=S.QUEUED,
            retry_at=event.retry_at,
            deadline=None,
            error=event.error,
            version=version,
        )
    if isinstance(event, FirmwareExecutionEnded):
        return msgspec.structs.replace(
            state, status=event.status, error=event.error, running=event.version, version=version
        )
    return msgspec.structs.replace(state, version=version)
