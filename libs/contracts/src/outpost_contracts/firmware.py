"""Firmware images, their signing keys, rollouts and per-device executions (issue 22, ADR 0094).

The fleet service owns them (docs/design/firmware.md). This first layer is the pure domain
(``outpost_fleet.domain.semver``, ``firmware_images``, ``firmware_signing``, ``rollouts``,
``executions``, ``windows``); these are the events its deciders emit, the enums and value
shapes the API fixes (``../shared/API.md``, "Firmware") and the request bodies and views the
routes will use. There are no operations yet, so nothing is registered in ``access``; and
nothing publishes these events yet, so this module is not in ``schemas.MODULES`` (it joins
it, and the FLEET stream, with the service that publishes them).

The bytes a firmware signature covers are fixed here, because the platform signs them and a
device (the simulator, a real one) verifies them from nothing but the ``outpost.firmware``
command: see ``signed_message``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Event, Instant, Request, whole, wire_tag

SERVICE = "fleet"

# The Semantic Versioning 2.0.0 grammar (semver.org's regular expression), whole-string.
SEMVER_PATTERN = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
SemVer = Annotated[str, msgspec.Meta(min_length=5, max_length=128, pattern=whole(SEMVER_PATTERN))]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=whole(r"[0-9a-f]{64}"))]

# An image is at least one byte and at most 16 GiB (uploads and downloads are streamed).
MAX_IMAGE_BYTES = 16 * 1024**3
# How long an upload URL accepts the bytes; an image still UPLOADING after it is REJECTED.
UPLOAD_WINDOW_SECONDS = 24 * 3600
SIGNATURE_ALGORITHM = "Ed25519"


def signed_message(*, sha256: str, size_bytes: int, version: str) -> bytes:
    """The bytes an image's Ed25519 signature covers: built from the ``outpost.firmware``
    command's own fields, so a device can verify with the public keys alone."""
    return f"outpost.firmware.v1\n{sha256}\n{size_bytes}\n{version}\n".encode()


class FirmwareStatus(enum.StrEnum):
    UPLOADING = "UPLOADING"
    READY = "READY"
    REJECTED = "REJECTED"


class RolloutStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    APPROVED = "APPROVED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    ABORTED = "ABORTED"
    CANCELLED = "CANCELLED"


class ExecutionStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    NOTIFIED = "NOTIFIED"
    DOWNLOADING = "DOWNLOADING"
    INSTALLING = "INSTALLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


# Ended executions; the ones counted as failures by a rollout's abort criteria.
ENDED = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.REJECTED,
        ExecutionStatus.CANCELLED,
    }
)
FAILURES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.REJECTED})


class RolloutTargetType(enum.StrEnum):
    DEVICES = "DEVICES"
    GROUP = "GROUP"
    SITE = "SITE"
    PROFILE = "PROFILE"
    FILTER = "FILTER"


class SkipReason(enum.StrEnum):
    """Why a targeted device got no execution when the rollout started."""

    PINNED = "PINNED"  # pinned to another version (firmwarePin, on the device or a group)
    BUSY = "BUSY"  # in another active rollout (at most one per device)
    ALREADY_INSTALLED = "ALREADY_INSTALLED"  # already reports the target version
    DOWNGRADE = "DOWNGRADE"  # runs a higher version and the rollout allows no downgrade


class Weekday(enum.StrEnum):
    MON = "MON"
    TUE = "TUE"
    WED = "WED"
    THU = "THU"
    FRI = "FRI"
    SAT = "SAT"
    SUN = "SUN"


# --- value shapes -------------------------------------------------------------------------

Percent = Annotated[float, msgspec.Meta(gt=0, le=100)]
Clock = Annotated[str, msgspec.Meta(pattern=whole(r"([01]\d|2[0-3]):[0-5]\d"))]


class RolloutTarget(Contract, kw_only=True, frozen=True):
    """``DEVICES`` lists ``deviceIds``; GROUP, SITE and PROFILE name one ``id``; FILTER is a
    devices collection ``filter`` (docs/api.md). Resolved into devices when the rollout
    starts."""

    type: RolloutTargetType
    id: UUID | None = None
    device_ids: list[UUID] = []
    filter: str | None = None


class Phase(Contract, kw_only=True, frozen=True):
    """One stage: ``percent`` of the targeted devices or ``count`` of them (one of the two,
    except in the last phase, which takes every device the earlier ones did not), then
    ``waitSeconds`` after it completed before the next one starts."""

    percent: Percent | None = None
    count: Annotated[int, msgspec.Meta(ge=1)] | None = None
    wait_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 24 * 3600)] = 0


class AbortCriteria(Contract, kw_only=True, frozen=True):
    """The rollout aborts itself once at least ``minExecuted`` executions ended and more than
    ``failurePercent`` of the ended ones failed (FAILED, TIMED_OUT or REJECTED)."""

    failure_percent: Annotated[float, msgspec.Meta(ge=0, le=100)]
    min_executed: Annotated[int, msgspec.Meta(ge=1)] = 1


class RetryPolicy(Contract, kw_only=True, frozen=True):
    """An execution that FAILED or TIMED_OUT is tried again, ``maxAttempts`` in all, after
    ``backoffSeconds`` doubling each time (capped at an hour); REJECTED is never retried."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1
    backoff_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 60


class MaintenanceWindow(Contract, kw_only=True, frozen=True):
    """New devices are notified only inside the window: on ``days`` (the day the window
    opens), from ``start`` to ``end`` (``HH:MM``, local time in ``timezone``, an IANA name);
    ``end`` before ``start`` runs past midnight. Cron expressions are not supported yet."""

    days: list[Weekday]
    start: Clock
    end: Clock
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"


class SkippedDevice(Contract, kw_only=True, frozen=True):
    device_id: UUID
    reason: SkipReason
    version: str | None = None  # the pin, or the version it runs


class ExecutionFailure(Contract, kw_only=True, frozen=True):
    device_id: UUID
    status: ExecutionStatus
    error: str | None = None


# --- events: images -------------------------------------------------------------------------


class FirmwareImageCreated(
    Event, tag=wire_tag(SERVICE, "FirmwareImageCreated", 1), kw_only=True, frozen=True
):
    """An image announced: status UPLOADING until its bytes arrive, or until
    ``uploadExpiresAt``."""

    name: str
    version: str
    size_bytes: int
    sha256: str
    upload_expires_at: datetime
    device_profile_id: UUID | None = None
    hardware: list[str] = []
    release_notes: str | None = None


class FirmwareImageReady(
    Event, tag=wire_tag(SERVICE, "FirmwareImageReady", 1), kw_only=True, frozen=True
):
    """The bytes arrived with the announced size and digest, and were signed."""

    signing_key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature of ``signed_message``


class FirmwareImageSigned(
    Event, tag=wire_tag(SERVICE, "FirmwareImageSigned", 1), kw_only=True, frozen=True
):
    """A READY image signed again, with another key (after a rotation)."""

    signing_key_id: str
    signature: str


class FirmwareImageRejected(
    Event, tag=wire_tag(SERVICE, "FirmwareImageRejected", 1), kw_only=True, frozen=True
):
    reason: str


class FirmwareImageDeleted(
    Event, tag=wire_tag(SERVICE, "FirmwareImageDeleted", 1), kw_only=True, frozen=True
):
    pass


# --- events: an organization's signing keys ---------------------------------------------------


class FirmwareSigningKeyAdded(
    Event, tag=wire_tag(SERVICE, "FirmwareSigningKeyAdded", 1), kw_only=True, frozen=True
):
    """A key devices should trust from now; it signs from ``signsFrom`` on (after the overlap
    that lets devices learn it first)."""

    kid: str
    public_key: str  # base64 of the 32-byte raw Ed25519 public key
    signs_from: datetime


class FirmwareSigningKeyRetired(
    Event, tag=wire_tag(SERVICE, "FirmwareSigningKeyRetired", 1), kw_only=True, frozen=True
):
    """The key signs nothing from ``signsUntil`` and is no longer published for verification
    from ``verifyUntil`` (both now for an emergency revocation)."""

    kid: str
    signs_until: datetime
    verify_until: datetime


# --- events: rollouts ---------------------------------------------------------------------------


class FirmwareRolloutCreated(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutCreated", 1), kw_only=True, frozen=True
):
    firmware_id: UUID
    version: str  # the image's version, the one devices must report
    target: RolloutTarget
    phases: list[Phase]
    abort_criteria: AbortCriteria
    timeout_seconds: int
    max_per_minute: int | None = None
    maintenance_window: MaintenanceWindow | None = None
    requires_approval: bool = False
    dynamic: bool = False  # devices that join the target later join the rollout
    allow_downgrade: bool = False
    retries: RetryPolicy = RetryPolicy()


class FirmwareRolloutApproved(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutApproved", 1), kw_only=True, frozen=True
):
    pass


class FirmwareRolloutStarted(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutStarted", 1), kw_only=True, frozen=True
):
    """The target resolved: ``plan`` lists each phase's devices (each gets an execution),
    ``skipped`` the targeted devices that get none, and why."""

    plan: list[list[UUID]]
    skipped: list[SkippedDevice] = []


class FirmwareRolloutDevicesAdded(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutDevicesAdded", 1), kw_only=True, frozen=True
):
    """Devices that joined a dynamic rollout's target while it ran, put in ``phase``."""

    phase: int
    device_ids: list[UUID]
    skipped: list[SkippedDevice] = []


class FirmwareRolloutPhaseStarted(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutPhaseStarted", 1), kw_only=True, frozen=True
):
    phase: int  # 0-based
    at: datetime


class FirmwareRolloutDevicesReleased(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutDevicesReleased", 1), kw_only=True, frozen=True
):
    """These devices' executions are to be notified now (``outpost.firmware``)."""

    phase: int
    device_ids: list[UUID]
    at: datetime  # for pacing (maxPerMinute)


class FirmwareRolloutExecutionEnded(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutExecutionEnded", 1), kw_only=True, frozen=True
):
    """A device's execution ended (after its retries): what the rollout counts."""

    device_id: UUID
    status: ExecutionStatus
    error: str | None = None


class FirmwareRolloutPhaseCompleted(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutPhaseCompleted", 1), kw_only=True, frozen=True
):
    """Every execution of the phase ended; the next one starts ``waitSeconds`` after ``at``."""

    phase: int
    at: datetime


class FirmwareRolloutPaused(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutPaused", 1), kw_only=True, frozen=True
):
    pass


class FirmwareRolloutResumed(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutResumed", 1), kw_only=True, frozen=True
):
    pass


class FirmwareRolloutSucceeded(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutSucceeded", 1), kw_only=True, frozen=True
):
    succeeded: int
    failed: int


class FirmwareRolloutAborted(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutAborted", 1), kw_only=True, frozen=True
):
    """The abort criteria were met: an alert-style explanation, with the failures (the
    first ``MAX_REPORTED_FAILURES``)."""

    reason: str
    executed: int
    failed: int
    failures: list[ExecutionFailure] = []


class FirmwareRolloutCancelled(
    Event, tag=wire_tag(SERVICE, "FirmwareRolloutCancelled", 1), kw_only=True, frozen=True
):
    pass


MAX_REPORTED_FAILURES = 100


# --- events: executions -----------------------------------------------------------------------


class FirmwareExecutionQueued(
    Event, tag=wire_tag(SERVICE, "FirmwareExecutionQueued", 1), kw_only=True, frozen=True
):
    rollout_id: UUID
    device_id: UUID
    firmware_id: UUID
    version: str
    size_bytes: int
    timeout_seconds: int
    retries: RetryPolicy = RetryPolicy()


class FirmwareExecutionNotified(
    Event, tag=wire_tag(SERVICE, "FirmwareExecutionNotified", 1), kw_only=True, frozen=True
):
    """The ``outpost.firmware`` command was sent (delivered when the device connects, if it
    is offline); the attempt must end before ``deadline``."""

    attempt: int
    deadline: datetime


class FirmwareExecutionProgressed(
    Event, tag=wire_tag(SERVICE, "FirmwareExecutionProgressed", 1), kw_only=True, frozen=True
):
    """DOWNLOADING (with bytes) or INSTALLING, as the device reported on its ack subject."""

    status: ExecutionStatus
    bytes_downloaded: int | None = None


class FirmwareExecutionInstallReported(
    Event,
    tag=wire_tag(SERVICE, "FirmwareExecutionInstallReported", 1),
    kw_only=True,
    frozen=True,
):
    """The device says it installed: not a success until it reports the version running."""


class FirmwareExecutionRetryScheduled(
    Event, tag=wire_tag(SERVICE, "FirmwareExecutionRetryScheduled", 1), kw_only=True, frozen=True
):
    """The attempt failed (``status`` FAILED or TIMED_OUT) and another is due at
    ``retryAt``: the execution is QUEUED again."""

    attempt: int
    status: ExecutionStatus
    retry_at: datetime
    error: str | None = None


class FirmwareExecutionEnded(
    Event, tag=wire_tag(SERVICE, "FirmwareExecutionEnded", 1), kw_only=True, frozen=True
):
    """SUCCEEDED (``version`` is what the device reports running), FAILED, TIMED_OUT,
    REJECTED or CANCELLED."""

    status: ExecutionStatus
    error: str | None = None
    version: str | None = None


EVENT_TYPES: tuple[type[Event], ...] = (
    FirmwareImageCreated,
    FirmwareImageReady,
    FirmwareImageSigned,
    FirmwareImageRejected,
    FirmwareImageDeleted,
    FirmwareSigningKeyAdded,
    FirmwareSigningKeyRetired,
    FirmwareRolloutCreated,
    FirmwareRolloutApproved,
    FirmwareRolloutStarted,
    FirmwareRolloutDevicesAdded,
    FirmwareRolloutPhaseStarted,
    FirmwareRolloutDevicesReleased,
    FirmwareRolloutExecutionEnded,
    FirmwareRolloutPhaseCompleted,
    FirmwareRolloutPaused,
    FirmwareRolloutResumed,
    FirmwareRolloutSucceeded,
    FirmwareRolloutAborted,
    FirmwareRolloutCancelled,
    FirmwareExecutionQueued,
    FirmwareExecutionNotified,
    FirmwareExecutionProgressed,
    FirmwareExecutionInstallReported,
    FirmwareExecutionRetryScheduled,
    FirmwareExecutionEnded,
)


# --- the device protocol (devices' commands, ADR 0056) ------------------------------------------

# The command's name; its params are a ``FirmwareCommand``.
FIRMWARE_COMMAND = "outpost.firmware"
# Where a device reports the firmware it runs, in its reported state: {"firmware": {"version"}}.
REPORTED_FIRMWARE_KEY = "firmware"
DEVICE_PROGRESS = frozenset(
    {
        ExecutionStatus.DOWNLOADING,
        ExecutionStatus.INSTALLING,
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.REJECTED,
    }
)


class FirmwareCommand(Contract, kw_only=True, frozen=True):
    """The params of an ``outpost.firmware`` command: download ``url`` (HTTP ``Range``
    served, so an interrupted download resumes), check ``sizeBytes`` and ``sha256``, verify
    ``signature`` (base64 Ed25519 over ``signed_message``) with a key from
    ``GET /firmware/signing-keys`` (``signingKeyId`` names it), install, reboot, report the
    version."""

    execution_id: UUID
    version: str
    url: str
    sha256: str
    signature: str
    size_bytes: int
    signing_key_id: str | None = None


class FirmwareProgress(Contract, kw_only=True, frozen=True):
    """The ``result`` of the device's acks to an ``outpost.firmware`` command: DOWNLOADING
    (with ``bytesDownloaded``), INSTALLING, SUCCEEDED (installed: counted once the reported
    state names the version), FAILED or REJECTED (with ``error``)."""

    execution_id: UUID
    status: ExecutionStatus
    bytes_downloaded: int | None = None
    error: str | None = None


def reported_version(reported: dict[str, object]) -> str | None:
    """The firmware version a device's reported state names (``{"firmware": {"version"}}``),
    or None."""
    firmware = reported.get(REPORTED_FIRMWARE_KEY)
    if isinstance(firmware, dict):
        version = firmware.get("version")
        if isinstance(version, str):
            return version
    return None


# --- request bodies -----------------------------------------------------------------------------

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Hardware = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CreateFirmware(Request, kw_only=True, frozen=True):
    """``POST /firmware``: the image announced; the reply carries the ``uploadUrl``."""

    name: Name
    version: SemVer
    size_bytes: Annotated[int, msgspec.Meta(ge=1, le=MAX_IMAGE_BYTES)]
    sha256: Sha256Hex
    device_profile_id: UUID | None = None
    hardware: Annotated[list[Hardware], msgspec.Meta(max_length=100)] = []
    release_notes: Annotated[str, msgspec.Meta(max_length=16384)] | None = None


class CreateFirmwareRollout(Request, kw_only=True, frozen=True):
    """``POST /firmware-rollouts``."""

    firmware_id: UUID
    target: RolloutTarget
    abort_criteria: AbortCriteria
    timeout_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 24 * 3600)]
    phases: Annotated[list[Phase], msgspec.Meta(min_length=1, max_length=20)] = msgspec.field(
        default_factory=lambda: [Phase()]
    )
    max_per_minute: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    maintenance_window: MaintenanceWindow | None = None
    requires_approval: bool = False
    dynamic: bool = False
    allow_downgrade: bool = False
    retries: RetryPolicy = RetryPolicy()


# --- views ----------------------------------------------------------------------------------------


class FirmwareView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    version: str
    status: FirmwareStatus
    sha256: str
    size_bytes: int
    created_at: datetime
    device_profile_id: UUID | None = None
    hardware: list[str] = []
    release_notes: str | None = None
    signature: str | None = None
    signing_key_id: str | None = None
    rejected_reason: str | None = None
    upload_url: str | None = None  # on create only
    upload_expires_at: datetime | None = None


class FirmwareSigningKeyView(Contract, kw_only=True, frozen=True):
    """``GET /firmware/signing-keys``: every key a device should trust now."""

    kid: str
    algorithm: str
    public_key: str
    signs_from: datetime
    signs_until: datetime | None = None
    verify_until: datetime | None = None
    signing: bool = False  # the key that signs now


class PhaseCounts(Contract, kw_only=True, frozen=True):
    phase: int
    status: str  # PENDING, RUNNING, WAITING, COMPLETED
    counts: dict[str, int]  # per ExecutionStatus name, plus SKIPPED at the rollout level


class FirmwareRolloutView(Contract, kw_only=True, frozen=True):
    id: UUID
    firmware_id: UUID
    version: str
    target: RolloutTarget
    phases: list[Phase]
    abort_criteria: AbortCriteria
    timeout_seconds: int
    status: RolloutStatus
    counts: list[PhaseCounts] = []
    max_per_minute: int | None = None
    maintenance_window: MaintenanceWindow | None = None
    requires_approval: bool = False
    dynamic: bool = False
    allow_downgrade: bool = False
    retries: RetryPolicy = RetryPolicy()
    abort_reason: str | None = None


class ExecutionHistoryEntry(Contract, kw_only=True, frozen=True):
    status: ExecutionStatus
    at: Instant
    bytes_downloaded: int | None = None
    error: str | None = None


class FirmwareExecutionView(Contract, kw_only=True, frozen=True):
    id: UUID
    rollout_id: UUID
    device_id: UUID
    status: ExecutionStatus
    attempt: int
    phase: int | None = None
    bytes_downloaded: int | None = None
    error: str | None = None
    history: list[ExecutionHistoryEntry] = []
