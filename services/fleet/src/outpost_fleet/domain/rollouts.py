"""The firmware rollout aggregate (stream type ``firmware_rollout``, ADR 0094).

``DRAFT`` → (``APPROVED``) → ``RUNNING`` ⇄ ``PAUSED`` → ``SUCCEEDED`` | ``ABORTED`` |
``CANCELLED``. A rollout that ``requiresApproval`` starts only once approved. The rules, all
pure functions of the rollout's events, the command and the time:

- **Start** resolves the target (the use case lists the devices and, per device, its pin,
  whether another rollout holds it, and the version it runs). A device gets no execution when
  it is pinned to another version (PINNED), in another active rollout (BUSY: at most one per
  device), already runs the target (ALREADY_INSTALLED), or runs a higher version and the rollout
  allows no downgrade (DOWNGRADE). The others are **planned into phases** (``plan_phases``):
  ordered by a hash of the rollout's and the device's ids (a stable, unbiased shuffle: the
  same devices give the same plan, and the first phase is not the oldest devices), then cut:
  a phase of ``count`` takes that many; the phases of ``percent`` together take, up to each
  of them, their cumulative share of the total rounded up (10% of 5 devices is one device,
  never none; three phases of 33% of 10 devices take 4, 3 and 3, not 4, 4 and 2); the last
  phase takes every device left, whatever size it names. A phase may come out empty when the
  devices run out.
- **Releases** (``Tick``): while RUNNING, inside the maintenance window, the current phase's
  devices not yet released are released (their executions notified), at most ``maxPerMinute``
  in any 60 seconds (a sliding window over the releases' times). Nothing outside the current
  phase is ever released, and nothing at all once the rollout paused or ended.
- **Phases**: a phase is complete when every one of its executions ended (after its retries);
  the next starts ``waitSeconds`` after that (at a ``Tick``); the rollout SUCCEEDED when the
  last phase completes, failures below the abort criteria included (the counts say how many).
- **Abort criteria** are checked whenever an execution ends, over the whole rollout: once at
  least ``minExecuted`` executions ended (CANCELLED ones are not counted) and more than
  ``failurePercent`` of them failed (FAILED, TIMED_OUT, REJECTED), the rollout is ABORTED, with
  the reason and the failures (which devices, which errors). Executions in flight finish; the
  use case cancels those not yet notified.
- **Dynamic** rollouts take devices that join the target while running or paused into the last
  phase (same skip rules); others ignore them.
- Pause, resume, cancel and approve are explicit; asking for the state a rollout is in already
  changes nothing, asking for an impossible move is a 409.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from fractions import Fraction
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.firmware import (
    ENDED,
    FAILURES,
    MAX_REPORTED_FAILURES,
    AbortCriteria,
    ExecutionFailure,
    ExecutionStatus,
    FirmwareRolloutAborted,
    FirmwareRolloutApproved,
    FirmwareRolloutCancelled,
    FirmwareRolloutCreated,
    FirmwareRolloutDevicesAdded,
    FirmwareRolloutDevicesReleased,
    FirmwareRolloutExecutionEnded,
    FirmwareRolloutPaused,
    FirmwareRolloutPhaseCompleted,
    FirmwareRolloutPhaseStarted,
    FirmwareRolloutResumed,
    FirmwareRolloutStarted,
    FirmwareRolloutSucceeded,
    FirmwareStatus,
    MaintenanceWindow,
    Phase,
    PhaseCounts,
    RetryPolicy,
    RolloutStatus,
    RolloutTarget,
    RolloutTargetType,
    SkippedDevice,
    SkipReason,
)
from outpost_fleet.domain import semver, windows

STREAM_TYPE = "firmware_rollout"
PACING_WINDOW = timedelta(seconds=60)
MAX_TARGET_DEVICES = 100_000

R = RolloutStatus
ENDED_ROLLOUT = frozenset({R.SUCCEEDED, R.ABORTED, R.CANCELLED})


class Rollout(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    firmware_id: UUID
    target_version: str
    target: RolloutTarget
    phases: tuple[Phase, ...]
    abort_criteria: AbortCriteria
    timeout_seconds: int
    max_per_minute: int | None
    window: MaintenanceWindow | None
    requires_approval: bool
    dynamic: bool
    allow_downgrade: bool
    retries: RetryPolicy
    status: RolloutStatus = R.DRAFT
    plan: tuple[tuple[UUID, ...], ...] = ()
    skipped: tuple[SkippedDevice, ...] = ()
    phase: int = -1  # the current phase, once started
    completed: dict[int, datetime] = {}  # phase -> when it completed
    released: dict[UUID, int] = {}  # device -> the phase it was released in
    outcomes: dict[UUID, ExecutionStatus] = {}  # device -> how its execution ended
    errors: dict[UUID, str | None] = {}
    recent: tuple[tuple[datetime, int], ...] = ()  # releases within the pacing window
    abort_reason: str | None = None
    version: int = 1  # the stream's
    # Kept so that each outcome costs O(1) to judge, whatever the rollout's size:
    phase_of: dict[UUID, int] = {}  # device -> its phase in the plan
    ended: tuple[int, ...] = ()  # per phase, how many executions ended
    tally: dict[ExecutionStatus, int] = {}  # ended executions by status


# --- commands ---------------------------------------------------------------------------------


class CreateRollout(msgspec.Struct, frozen=True, kw_only=True):
    firmware_id: UUID
    firmware_version: str
    firmware_status: FirmwareStatus  # the image's, read by the use case
    target: RolloutTarget
    phases: tuple[Phase, ...]
    abort_criteria: AbortCriteria
    timeout_seconds: int
    max_per_minute: int | None = None
    maintenance_window: MaintenanceWindow | None = None
    requires_approval: bool = False
    dynamic: bool = False
    allow_downgrade: bool = False
    retries: RetryPolicy = RetryPolicy()


class Approve(msgspec.Struct, frozen=True, kw_only=True):
    pass


class DeviceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the use case knows of a targeted device when the rollout starts."""

    pin: str | None = None  # firmwarePin, the device's or its group's
    busy: bool = False  # in another active rollout
    running: str | None = None  # the firmware version it reports


class Start(msgspec.Struct, frozen=True, kw_only=True):
    """Resolve the target into phases and release what the first phase may (as ``Tick``)."""

    devices: Sequence[UUID]  # the target, resolved
    facts: Mapping[UUID, DeviceFacts] = {}
    zone: tzinfo | None = None


class AddDevices(msgspec.Struct, frozen=True, kw_only=True):
    devices: Sequence[UUID]
    facts: Mapping[UUID, DeviceFacts] = {}


class Pause(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Resume(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Cancel(msgspec.Struct, frozen=True, kw_only=True):
    pass


class RecordOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A device's execution ended (``FirmwareExecutionEnded``)."""

    device_id: UUID
    status: ExecutionStatus
    error: str | None = None


class Tick(msgspec.Struct, frozen=True, kw_only=True):
    """Time passed: start the next phase, release devices. ``zone`` is the maintenance
    window's time zone, resolved by the use case (None without a window)."""

    zone: tzinfo | None = None


Command = (
    CreateRollout | Approve | Start | AddDevices | Pause | Resume | Cancel | RecordOutcome | Tick
)


# --- pure rules -------------------------------------------------------------------------------


def check_phases(phases: Sequence[Phase]) -> None:
    if not phases:
        raise validation_error("phases", "must have at least one phase")
    total = Fraction(0)
    for i, phase in enumerate(phases):
        last = i == len(phases) - 1
        if phase.percent is not None and phase.count is not None:
            raise validation_error(f"phases[{i}]", "has percent or count, not both")
        if phase.percent is None and phase.count is None and not last:
            raise validation_error(
                f"phases[{i}]", "needs percent or count (only the last may omit it)"
            )
        if phase.percent is not None:
            total += Fraction(str(phase.percent))
    if total > 100:
        raise validation_error("phases", "percents add up to more than 100")


def _shuffle_key(rollout_id: UUID, device_id: UUID) -> bytes:
    return hashlib.sha256(rollout_id.bytes + device_id.bytes).digest()


def plan_phases(
    rollout_id: UUID, devices: Sequence[UUID], phases: Sequence[Phase]
) -> list[list[UUID]]:
    """Which devices go in which phase: a partition of ``devices`` (duplicates once), one
    list per phase, the same for the same rollout and devices in any order."""
    ordered = sorted(set(devices), key=lambda d: (_shuffle_key(rollout_id, d), d.bytes))
    n = len(ordered)
    plan: list[list[UUID]] = []
    taken = 0
    counted = 0  # devices taken by count phases so far
    cumulative = Fraction(0)  # percent of the percent phases so far
    for i, phase in enumerate(phases):
        if i == len(phases) - 1:
            end = n
        elif phase.count is not None:
            counted += phase.count
            end = min(n, taken + phase.count)
        else:
            cumulative += Fraction(str(phase.percent or 0))
            end = min(n, counted + math.ceil(cumulative * n / 100))
        plan.append(ordered[taken:end])
        taken = end
    return plan


def _skip(state: Rollout, device: UUID, facts: DeviceFacts) -> SkippedDevice | None:
    target = state.target_version
    if facts.pin is not None and not semver.same(facts.pin, target):
        return SkippedDevice(device_id=device, reason=SkipReason.PINNED, version=facts.pin)
    if facts.busy:
        return SkippedDevice(device_id=device, reason=SkipReason.BUSY)
    running = facts.running
    if running is not None and semver.same(running, target):
        return SkippedDevice(device_id=device, reason=SkipReason.ALREADY_INSTALLED, version=running)
    if (
        running is not None
        and not state.allow_downgrade
        and semver.is_valid(running)
        and semver.parse(running) > semver.parse(target)
    ):
        return SkippedDevice(device_id=device, reason=SkipReason.DOWNGRADE, version=running)
    return None


def _sort(
    state: Rollout, devices: Sequence[UUID], facts: Mapping[UUID, DeviceFacts]
) -> tuple[list[UUID], list[SkippedDevice]]:
    eligible: list[UUID] = []
    skipped: list[SkippedDevice] = []
    for device in dict.fromkeys(devices):
        skip = _skip(state, device, facts.get(device, DeviceFacts()))
        if skip is None:
            eligible.append(device)
        else:
            skipped.append(skip)
    return eligible, skipped


def allowance(state: Rollout, now: datetime) -> int | None:
    """How many devices may be released now under ``maxPerMinute`` (None: no limit)."""
    if state.max_per_minute is None:
        return None
    used = sum(n for at, n in state.recent if at > now - PACING_WINDOW)
    return max(0, state.max_per_minute - used)


def executed_and_failed(state: Rollout) -> tuple[int, int]:
    """Ended executions that tried (not CANCELLED), and those of them that failed."""
    executed = sum(n for s, n in state.tally.items() if s is not ExecutionStatus.CANCELLED)
    failed = sum(n for s, n in state.tally.items() if s in FAILURES)
    return executed, failed


def should_abort(state: Rollout) -> bool:
    criteria = state.abort_criteria
    executed, failed = executed_and_failed(state)
    return executed >= criteria.min_executed and Fraction(failed * 100, executed) > Fraction(
        str(criteria.failure_percent)
    )


def phase_complete(state: Rollout, phase: int) -> bool:
    return state.ended[phase] == len(state.plan[phase])


def next_phase_at(state: Rollout) -> datetime | None:
    """When the next phase may start: ``waitSeconds`` after the current one completed (no
    wait after an empty phase); None while it has not completed, or was the last."""
    completed = state.completed.get(state.phase)
    if completed is None or state.phase + 1 >= len(state.plan):
        return None
    if not state.plan[state.phase]:
        return completed
    return completed + timedelta(seconds=state.phases[state.phase].wait_seconds)


def next_tick(state: Rollout, now: datetime, zone: tzinfo | None = None) -> datetime | None:
    """When a ``Tick`` next has something to do: the next phase's start, or the next release
    (the window open and the pace allowing one); None while it waits for executions to end
    (their outcomes come as commands) or once it stopped. The scheduler's wake-up time."""
    if state.status is not R.RUNNING or state.phase < 0:
        return None
    if state.phase in state.completed:
        starts = next_phase_at(state)
        return None if starts is None else max(now, starts)
    if all(d in state.released for d in state.plan[state.phase]):
        return None
    at = now
    for _ in range(16):  # the window and the pace each push the time later; both settle fast
        if state.window is not None:
            if zone is None:
                raise ValueError("a rollout with a maintenance window needs its zone")
            at = windows.next_opening(state.window, at, zone)
        if allowance(state, at) != 0:
            return at
        at = min(t for t, _ in state.recent if t > at - PACING_WINDOW) + PACING_WINDOW
    return at


def counts(state: Rollout) -> list[PhaseCounts]:
    """``GET /firmware-rollouts/{id}``'s counts per phase: QUEUED (not released yet), NOTIFIED
    (released, not ended: the executions say how far they are) and each way executions end."""
    result = []
    for i, devices in enumerate(state.plan):
        tally = {s.value: 0 for s in ExecutionStatus}
        for d in devices:
            outcome = state.outcomes.get(d)
            if outcome is not None:
                tally[outcome.value] += 1
            elif d in state.released:
                tally[ExecutionStatus.NOTIFIED.value] += 1
            else:
                tally[ExecutionStatus.QUEUED.value] += 1
        if i in state.completed:
            status = "COMPLETED" if i < state.phase or i == len(state.plan) - 1 else "WAITING"
        elif i == state.phase:
            status = "RUNNING"
        else:
            status = "PENDING"
        result.append(PhaseCounts(phase=i, status=status, counts=tally))
    return result


# --- the decider ------------------------------------------------------------------------------


def _create(command: CreateRollout) -> list[Event]:
    if command.firmware_status is not FirmwareStatus.READY:
        raise Conflict(f"the firmware image is {command.firmware_status}, not READY")
    check_phases(command.phases)
    if command.maintenance_window is not None:
        windows.check(command.maintenance_window)
    target = command.target
    if target.type is RolloutTargetType.DEVICES:
        if not target.device_ids:
            raise validation_error("target.deviceIds", "must name at least one device")
        if len(target.device_ids) > MAX_TARGET_DEVICES:
            raise validation_error("target.deviceIds", f"at most {MAX_TARGET_DEVICES} devices")
    elif target.type is RolloutTargetType.FILTER:
        if not target.filter:
            raise validation_error("target.filter", "is required for a FILTER target")
    elif target.id is None:
        raise validation_error("target.id", f"is required for a {target.type} target")
    if command.timeout_seconds < 1:
        raise validation_error("timeoutSeconds", "must be positive")
    return [
        FirmwareRolloutCreated(
            firmware_id=command.firmware_id,
            version=command.firmware_version,
            target=target,
            phases=list(command.phases),
            abort_criteria=command.abort_criteria,
            timeout_seconds=command.timeout_seconds,
            max_per_minute=command.max_per_minute,
            maintenance_window=command.maintenance_window,
            requires_approval=command.requires_approval,
            dynamic=command.dynamic,
            allow_downgrade=command.allow_downgrade,
            retries=command.retries,
        )
    ]


def _move(
    state: Rollout, want: RolloutStatus, allowed: set[RolloutStatus], event: Event
) -> list[Event]:
    if state.status is want:
        return []
    if state.status not in allowed:
        raise Conflict(
            f"a {state.status} rollout cannot become {want}", details={"status": state.status}
        )
    return [event]


def _follow(state: Rollout, events: list[Event]) -> Rollout:
    for event in events:
        after = evolve(state, event, state.id)
        assert after is not None
        state = after
    return state


def _after_outcome(state: Rollout, now: datetime) -> list[Event]:
    """Abort, or complete the phase (and the rollout), after an execution ended."""
    if state.status not in (R.RUNNING, R.PAUSED):
        return []
    if should_abort(state):
        executed, failed = executed_and_failed(state)
        failures = [
            ExecutionFailure(device_id=d, status=s, error=state.errors.get(d))
            for d, s in state.outcomes.items()
            if s in FAILURES
        ][:MAX_REPORTED_FAILURES]
        percent = failed * 100 / executed
        reason = (
            f"{failed} of {executed} executions failed ({percent:.1f}%), more than the "
            f"{state.abort_criteria.failure_percent:g}% allowed"
        )
        return [
            FirmwareRolloutAborted(
                reason=reason, executed=executed, failed=failed, failures=failures
            )
        ]
    return _complete(state, now)


def _complete(state: Rollout, now: datetime) -> list[Event]:
    if state.phase < 0 or state.phase in state.completed or not phase_complete(state, state.phase):
        return []
    events: list[Event] = [FirmwareRolloutPhaseCompleted(phase=state.phase, at=now)]
    if state.phase == len(state.plan) - 1:
        _, failed = executed_and_failed(state)
        succeeded = state.tally.get(ExecutionStatus.SUCCEEDED, 0)
        events.append(FirmwareRolloutSucceeded(succeeded=succeeded, failed=failed))
    return events


def _tick(state: Rollout, now: datetime, zone: tzinfo | None) -> list[Event]:
    if state.status is not R.RUNNING:
        return []
    events: list[Event] = []
    while state.status is R.RUNNING:
        step = _complete(state, now)
        starts = next_phase_at(_follow(state, step))
        if starts is not None and now >= starts:
            step.append(FirmwareRolloutPhaseStarted(phase=state.phase + 1, at=now))
        if not step:
            break
        events += step
        state = _follow(state, step)
    if state.status is not R.RUNNING or state.phase in state.completed:
        return events
    if state.window is not None:
        if zone is None:
            raise ValueError("a rollout with a maintenance window needs its zone")
        if not windows.is_open(state.window, now, zone):
            return events
    pending = [d for d in state.plan[state.phase] if d not in state.released]
    limit = allowance(state, now)
    batch = pending if limit is None else pending[:limit]
    if batch:
        events.append(FirmwareRolloutDevicesReleased(phase=state.phase, device_ids=batch, at=now))
    return events


def decide(state: Rollout | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, CreateRollout):
        if state is not None:
            raise Conflict("the rollout exists")
        return _create(command)
    if state is None:
        raise NotFound("no such firmware rollout")
    if isinstance(command, Approve):
        return _move(state, R.APPROVED, {R.DRAFT}, FirmwareRolloutApproved())
    if isinstance(command, Pause):
        return _move(state, R.PAUSED, {R.RUNNING}, FirmwareRolloutPaused())
    if isinstance(command, Resume):
        if state.status is R.PAUSED:
            return [FirmwareRolloutResumed()]
        return _move(state, R.RUNNING, set(), FirmwareRolloutResumed())
    if isinstance(command, Cancel):
        return _move(
            state,
            R.CANCELLED,
            {R.DRAFT, R.APPROVED, R.RUNNING, R.PAUSED},
            FirmwareRolloutCancelled(),
        )
    if isinstance(command, Start):
        if state.status in (R.RUNNING, R.PAUSED) or state.status in ENDED_ROLLOUT:
            raise Conflict(f"the rollout is {state.status}", details={"status": state.status})
        if state.requires_approval and state.status is not R.APPROVED:
            raise Conflict("the rollout requires approval before it starts")
        if len(command.devices) > MAX_TARGET_DEVICES:
            raise validation_error("target", f"resolves to more than {MAX_TARGET_DEVICES} devices")
        eligible, skipped = _sort(state, command.devices, command.facts)
        plan = plan_phases(state.id, eligible, state.phases)
        events: list[Event] = [
            FirmwareRolloutStarted(plan=plan, skipped=skipped),
            FirmwareRolloutPhaseStarted(phase=0, at=now),
        ]
        return events + _tick(_follow(state, events), now, command.zone)
    if isinstance(command, AddDevices):
        if not state.dynamic or state.status not in (R.RUNNING, R.PAUSED):
            return []
        known = state.phase_of
        known_skipped = {s.device_id for s in state.skipped}
        new = [d for d in command.devices if d not in known and d not in known_skipped]
        eligible, skipped = _sort(state, new, command.facts)
        if not eligible and not skipped:
            return []
        last = len(state.plan) - 1
        return [FirmwareRolloutDevicesAdded(phase=last, device_ids=eligible, skipped=skipped)]
    if isinstance(command, RecordOutcome):
        if command.device_id not in state.phase_of:
            raise NotFound("the device has no execution in this rollout")
        if command.device_id in state.outcomes:
            return []
        if command.status not in ENDED:
            raise validation_error("status", f"{command.status} is not an ended execution")
        ended = FirmwareRolloutExecutionEnded(
            device_id=command.device_id, status=command.status, error=command.error
        )
        return [ended, *_after_outcome(_follow(state, [ended]), now)]
    return _tick(state, now, command.zone)


def evolve(state: Rollout | None, event: Event, stream_id: UUID) -> Rollout | None:
    if isinstance(event, FirmwareRolloutCreated):
        return Rollout(
            id=stream_id,
            firmware_id=event.firmware_id,
            target_version=event.version,
            target=event.target,
            phases=tuple(event.phases),
            abort_criteria=event.abort_criteria,
            timeout_seconds=event.timeout_seconds,
            max_per_minute=event.max_per_minute,
            window=event.maintenance_window,
            requires_approval=event.requires_approval,
            dynamic=event.dynamic,
            allow_downgrade=event.allow_downgrade,
            retries=event.retries,
        )
    assert state is not None
    version = state.version + 1
    replace = msgspec.structs.replace
    if isinstance(event, FirmwareRolloutApproved):
        return replace(state, status=R.APPROVED, version=version)
    if isinstance(event, FirmwareRolloutStarted):
        return replace(
            state,
            status=R.RUNNING,
            plan=tuple(tuple(p) for p in event.plan),
            skipped=tuple(event.skipped),
            phase_of={d: i for i, devices in enumerate(event.plan) for d in devices},
            ended=(0,) * len(event.plan),
            version=version,
        )
    if isinstance(event, FirmwareRolloutPhaseStarted):
        return replace(state, phase=event.phase, version=version)
    if isinstance(event, FirmwareRolloutDevicesReleased):
        kept = [(at, n) for at, n in state.recent if at > event.at - PACING_WINDOW]
        recent = (*kept, (event.at, len(event.device_ids)))
        released = {**state.released, **dict.fromkeys(event.device_ids, event.phase)}
        return replace(state, released=released, recent=recent, version=version)
    if isinstance(event, FirmwareRolloutDevicesAdded):
        plan = list(state.plan)
        plan[event.phase] = plan[event.phase] + tuple(event.device_ids)
        return replace(
            state,
            plan=tuple(plan),
            skipped=state.skipped + tuple(event.skipped),
            phase_of={**state.phase_of, **dict.fromkeys(event.device_ids, event.phase)},
            version=version,
        )
    if isinstance(event, FirmwareRolloutExecutionEnded):
        ended = list(state.ended)
        ended[state.phase_of[event.device_id]] += 1
        return replace(
            state,
            outcomes={**state.outcomes, event.device_id: event.status},
            errors={**state.errors, event.device_id: event.error},
            ended=tuple(ended),
            tally={**state.tally, event.status: state.tally.get(event.status, 0) + 1},
            version=version,
        )
    if isinstance(event, FirmwareRolloutPhaseCompleted):
        return replace(state, completed={**state.completed, event.phase: event.at}, version=version)
    if isinstance(event, FirmwareRolloutPaused):
        return replace(state, status=R.PAUSED, version=version)
    if isinstance(event, FirmwareRolloutResumed):
        return replace(state, status=R.RUNNING, version=version)
    if isinstance(event, FirmwareRolloutSucceeded):
        return replace(state, status=R.SUCCEEDED, version=version)
    if isinstance(event, FirmwareRolloutAborted):
        return replace(state, status=R.ABORTED, abort_reason=event.reason, version=version)
    if isinstance(event, FirmwareRolloutCancelled):
        return replace(state, status=R.CANCELLED, version=version)
    return replace(state, version=version)
