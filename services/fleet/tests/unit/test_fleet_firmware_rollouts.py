"""The firmware rollout decider as pure functions of events and time (ADR 0094): phases,
pacing, abort criteria, approval, pins, windows; property-based where it helps."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from random import Random
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.firmware import (
    AbortCriteria,
    ExecutionFailure,
    ExecutionStatus,
    FirmwareRolloutAborted,
    FirmwareRolloutApproved,
    FirmwareRolloutCancelled,
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
    RolloutStatus,
    RolloutTarget,
    RolloutTargetType,
    SkippedDevice,
    SkipReason,
    Weekday,
)
from outpost_fleet.domain import rollouts
from outpost_fleet.domain.rollouts import (
    AddDevices,
    Approve,
    Cancel,
    Command,
    CreateRollout,
    DeviceFacts,
    Pause,
    RecordOutcome,
    Resume,
    Rollout,
    Start,
    Tick,
    counts,
    plan_phases,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)  # a Monday
RID = UUID(int=0xF1)
S = ExecutionStatus
R = RolloutStatus


def dev(i: int) -> UUID:
    return UUID(int=1000 + i)


DEVICES = [dev(i) for i in range(10)]


def create(**kw: Any) -> CreateRollout:
    fields: dict[str, Any] = {
        "firmware_id": UUID(int=3),
        "firmware_version": "1.4.2",
        "firmware_status": FirmwareStatus.READY,
        "target": RolloutTarget(type=RolloutTargetType.GROUP, id=UUID(int=4)),
        "phases": (Phase(count=1), Phase(percent=50, wait_seconds=600), Phase()),
        "abort_criteria": AbortCriteria(failure_percent=20, min_executed=3),
        "timeout_seconds": 3600,
    }
    return CreateRollout(**(fields | kw))


def apply(state: Rollout | None, events: list[Event]) -> Rollout:
    for event in events:
        state = rollouts.evolve(state, event, RID)
    assert state is not None
    return state


def step(
    state: Rollout | None, command: Command, at: datetime = NOW
) -> tuple[Rollout, list[Event]]:
    events = rollouts.decide(state, command, at)
    return apply(state, events), events


def draft(**kw: Any) -> Rollout:
    return step(None, create(**kw))[0]


def started(devices: list[UUID] = DEVICES, **kw: Any) -> tuple[Rollout, list[Event]]:
    return step(draft(**kw), Start(devices=devices))


def released(events: list[Event]) -> list[UUID]:
    return [
        d for e in events if isinstance(e, FirmwareRolloutDevicesReleased) for d in e.device_ids
    ]


# --- creating ----------------------------------------------------------------------------------


def test_a_rollout_needs_a_ready_image() -> None:
    with pytest.raises(Conflict):
        rollouts.decide(None, create(firmware_status=FirmwareStatus.UPLOADING), NOW)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"phases": ()}, "phases"),
        ({"phases": (Phase(), Phase())}, "phases[0]"),
        ({"phases": (Phase(percent=10, count=2), Phase())}, "phases[0]"),
        ({"phases": (Phase(percent=60), Phase(percent=50))}, "phases"),
        ({"target": RolloutTarget(type=RolloutTargetType.DEVICES)}, "target.deviceIds"),
        ({"target": RolloutTarget(type=RolloutTargetType.SITE)}, "target.id"),
        ({"target": RolloutTarget(type=RolloutTargetType.FILTER)}, "target.filter"),
        (
            {"maintenance_window": MaintenanceWindow(days=[], start="01:00", end="02:00")},
            "maintenanceWindow.days",
        ),
    ],
)
def test_a_bad_rollout_is_a_validation_error(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rollouts.decide(None, create(**kw), NOW)
    assert caught.value.fields[0].name == field


# --- planning ----------------------------------------------------------------------------------


def test_phases_take_counts_cumulative_percents_rounded_up_and_the_last_takes_the_rest() -> None:
    phases = [Phase(count=1), Phase(percent=10), Phase(percent=40), Phase(percent=5)]
    plan = plan_phases(RID, DEVICES, phases)
    # 1; then ceil(10% of 10) = 1; ceil(50% of 10) = 5, so 4 more; the rest, 4
    assert [len(p) for p in plan] == [1, 1, 4, 4]
    assert sorted(d for p in plan for d in p) == sorted(DEVICES)
    thirds = [Phase(percent=33), Phase(percent=33), Phase(percent=33), Phase()]
    assert [len(p) for p in plan_phases(RID, DEVICES, thirds)] == [4, 3, 3, 0]
    assert [len(p) for p in plan_phases(RID, DEVICES[:5], [Phase(percent=10), Phase()])] == [1, 4]
    assert [len(p) for p in plan_phases(RID, [], [Phase(percent=10), Phase()])] == [0, 0]
    assert [len(p) for p in plan_phases(RID, DEVICES, [Phase(count=50), Phase()])] == [10, 0]


def test_a_plan_is_the_same_for_the_same_devices_and_shuffled_by_the_rollout() -> None:
    phases = [Phase(count=3), Phase()]
    plan = plan_phases(RID, DEVICES, phases)
    assert plan == plan_phases(RID, list(reversed(DEVICES)) + DEVICES[:2], phases)
    others = [plan_phases(UUID(int=i), DEVICES, phases)[0] for i in range(20)]
    assert len({tuple(p) for p in others}) > 1  # not always the same first devices


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 500), max_size=60),
    st.lists(
        st.one_of(
            st.builds(Phase, percent=st.integers(1, 40).map(float)),
            st.builds(Phase, count=st.integers(1, 20)),
        ),
        max_size=4,
    ),
    st.integers(0, 2**64),
)
def test_a_plan_is_a_partition_that_respects_the_sizes(
    ids: list[int], head: list[Phase], rid: int
) -> None:
    devices = [dev(i) for i in ids]
    phases = [*head, Phase()]
    plan = plan_phases(UUID(int=rid), devices, phases)
    flat = [d for p in plan for d in p]
    assert len(flat) == len(set(flat)) and set(flat) == set(devices)
    n = len(set(devices))
    counted = by_percent = 0
    cumulative = Fraction(0)
    for i, (phase, devices_in) in enumerate(zip(head, plan, strict=False)):
        before = sum(map(len, plan[:i]))
        if phase.count is not None:
            counted += phase.count
            enough = before + phase.count <= n
            assert len(devices_in) == phase.count if enough else len(devices_in) < phase.count
        else:
            cumulative += Fraction(str(phase.percent))
            by_percent += len(devices_in)
            share = math.ceil(cumulative * n / 100)  # the cumulative share, rounded up
            if counted + share <= n:
                assert by_percent == share
            else:
                assert before + len(devices_in) == n


# --- lifecycle ---------------------------------------------------------------------------------


def test_approval_is_required_when_asked_for() -> None:
    state = draft(requires_approval=True)
    with pytest.raises(Conflict):
        rollouts.decide(state, Start(devices=DEVICES), NOW)
    state, events = step(state, Approve())
    assert events == [FirmwareRolloutApproved()] and state.status is R.APPROVED
    assert rollouts.decide(state, Approve(), NOW) == []
    state, events = step(state, Start(devices=DEVICES))
    assert state.status is R.RUNNING


def test_start_plans_the_phases_starts_the_first_and_releases_it() -> None:
    state, events = started()
    plan = plan_phases(RID, DEVICES, state.phases)
    assert events[:2] == [
        FirmwareRolloutStarted(plan=plan, skipped=[]),
        FirmwareRolloutPhaseStarted(phase=0, at=NOW),
    ]
    assert released(events) == plan[0] and len(plan[0]) == 1
    with pytest.raises(Conflict):
        rollouts.decide(state, Start(devices=DEVICES), NOW)


def test_pause_resume_cancel_and_the_moves_that_are_refused() -> None:
    state, _ = started()
    state, events = step(state, Pause())
    assert events == [FirmwareRolloutPaused()] and rollouts.decide(state, Pause(), NOW) == []
    assert rollouts.decide(state, Tick(), NOW + timedelta(hours=1)) == []
    state, events = step(state, Resume())
    assert events == [FirmwareRolloutResumed()] and rollouts.decide(state, Resume(), NOW) == []
    state, events = step(state, Cancel())
    assert events == [FirmwareRolloutCancelled()] and rollouts.decide(state, Cancel(), NOW) == []
    for command in (Pause(), Resume(), Approve()):
        with pytest.raises(Conflict):
            rollouts.decide(state, command, NOW)
    assert rollouts.decide(state, Tick(), NOW + timedelta(days=1)) == []
    with pytest.raises(Conflict):
        rollouts.decide(draft(), Resume(), NOW)
    with pytest.raises(NotFound):
        rollouts.decide(None, Tick(), NOW)


def test_targeted_devices_are_skipped_for_a_pin_another_rollout_the_version_or_a_downgrade() -> (
    None
):
    facts = {
        dev(0): DeviceFacts(pin="1.4.1"),
        dev(1): DeviceFacts(pin="1.4.2"),  # pinned to the target: updated
        dev(2): DeviceFacts(busy=True),
        dev(3): DeviceFacts(running="1.4.2"),
        dev(4): DeviceFacts(running="2.0.0"),
        dev(5): DeviceFacts(running="1.3.0"),
        dev(6): DeviceFacts(running="garbage"),
    }
    state, _events = step(draft(), Start(devices=DEVICES[:7], facts=facts))
    assert state.skipped == (
        SkippedDevice(device_id=dev(0), reason=SkipReason.PINNED, version="1.4.1"),
        SkippedDevice(device_id=dev(2), reason=SkipReason.BUSY),
        SkippedDevice(device_id=dev(3), reason=SkipReason.ALREADY_INSTALLED, version="1.4.2"),
        SkippedDevice(device_id=dev(4), reason=SkipReason.DOWNGRADE, version="2.0.0"),
    )
    assert {d for p in state.plan for d in p} == {dev(1), dev(5), dev(6)}
    allowed, _ = step(draft(allow_downgrade=True), Start(devices=[dev(4)], facts=facts))
    assert allowed.skipped == () and dev(4) in {d for p in allowed.plan for d in p}


# --- phases, outcomes, abort ---------------------------------------------------------------------


def finish(
    state: Rollout, devices: list[UUID], status: ExecutionStatus, at: datetime
) -> tuple[Rollout, list[Event]]:
    all_events: list[Event] = []
    for d in devices:
        state, events = step(state, RecordOutcome(device_id=d, status=status, error="e"), at)
        all_events += events
    return state, all_events


def test_the_next_phase_starts_after_the_previous_completed_and_its_wait() -> None:
    state, _ = started()
    plan = state.plan
    t1 = NOW + timedelta(minutes=5)
    state, events = finish(state, list(plan[0]), S.SUCCEEDED, t1)
    assert FirmwareRolloutPhaseCompleted(phase=0, at=t1) in events
    # phase 0 has no wait: the next tick starts phase 1 and releases it
    state, events = step(state, Tick(), t1)
    assert events[0] == FirmwareRolloutPhaseStarted(phase=1, at=t1)
    assert released(events) == list(plan[1])
    t2 = t1 + timedelta(minutes=1)
    state, events = finish(state, list(plan[1]), S.SUCCEEDED, t2)
    assert events[-1] == FirmwareRolloutPhaseCompleted(phase=1, at=t2)
    assert rollouts.decide(state, Tick(), t2 + timedelta(seconds=599)) == []  # waiting 600 s
    assert [c.status for c in counts(state)] == ["COMPLETED", "WAITING", "PENDING"]
    state, events = step(state, Tick(), t2 + timedelta(seconds=600))
    assert events[0] == FirmwareRolloutPhaseStarted(phase=2, at=t2 + timedelta(seconds=600))
    assert released(events) == list(plan[2])
    t3 = t2 + timedelta(hours=1)
    state, events = finish(state, list(plan[2][:-1]), S.SUCCEEDED, t3)
    state, events = step(state, RecordOutcome(device_id=plan[2][-1], status=S.FAILED), t3)
    assert events[-2:] == [
        FirmwareRolloutPhaseCompleted(phase=2, at=t3),
        FirmwareRolloutSucceeded(succeeded=9, failed=1),
    ]
    assert state.status is R.SUCCEEDED
    assert [c.status for c in counts(state)] == ["COMPLETED"] * 3
    assert counts(state)[2].counts["FAILED"] == 1


def test_failures_beyond_the_criteria_abort_the_rollout_which_then_notifies_no_one() -> None:
    state, _ = started(phases=(Phase(count=5), Phase()))
    first = list(state.plan[0])
    state, events = finish(state, first[:1], S.FAILED, NOW)  # 1 of 1, below minExecuted 3
    assert state.status is R.RUNNING
    state, events = finish(state, first[1:3], S.SUCCEEDED, NOW)  # 1 of 3 = 33% > 20%
    assert state.status is R.ABORTED
    aborted = events[-1]
    assert isinstance(aborted, FirmwareRolloutAborted)
    assert (aborted.executed, aborted.failed) == (3, 1)
    assert aborted.failures == [ExecutionFailure(device_id=first[0], status=S.FAILED, error="e")]
    assert aborted.reason == "1 of 3 executions failed (33.3%), more than the 20% allowed"
    # outcomes still counted, nothing else happens
    state, events = finish(state, first[3:], S.SUCCEEDED, NOW)
    assert all(isinstance(e, FirmwareRolloutExecutionEnded) for e in events)
    assert rollouts.decide(state, Tick(), NOW + timedelta(days=1)) == []
    for command in (Resume(), Pause(), Approve()):
        with pytest.raises(Conflict):
            rollouts.decide(state, command, NOW)


def test_exactly_at_the_threshold_is_not_beyond_it_and_cancelled_ones_do_not_count() -> None:
    state, _ = started(
        phases=(Phase(count=10), Phase()),
        abort_criteria=AbortCriteria(failure_percent=25, min_executed=4),
    )
    devices = list(state.plan[0])
    state, _ = finish(state, devices[:1], S.TIMED_OUT, NOW)
    state, _ = finish(state, devices[1:4], S.SUCCEEDED, NOW)  # 1 of 4 = 25%: not beyond
    state, _ = finish(state, devices[4:8], S.CANCELLED, NOW)
    assert state.status is R.RUNNING
    state, _events = finish(state, devices[8:9], S.REJECTED, NOW)  # 2 of 5 = 40%
    assert state.status is R.ABORTED


def test_an_outcome_is_counted_once_and_only_for_the_rollouts_devices() -> None:
    state, _ = started()
    d = state.plan[0][0]
    state, _events = step(state, RecordOutcome(device_id=d, status=S.SUCCEEDED))
    assert rollouts.decide(state, RecordOutcome(device_id=d, status=S.FAILED), NOW) == []
    with pytest.raises(NotFound):
        rollouts.decide(state, RecordOutcome(device_id=dev(999), status=S.FAILED), NOW)
    with pytest.raises(ValidationFailed):
        rollouts.decide(state, RecordOutcome(device_id=state.plan[1][0], status=S.NOTIFIED), NOW)


def test_a_rollout_with_nothing_to_do_succeeds_when_it_starts() -> None:
    state, events = step(
        draft(), Start(devices=[dev(0)], facts={dev(0): DeviceFacts(running="1.4.2")})
    )
    assert state.status is R.SUCCEEDED
    assert events[-1] == FirmwareRolloutSucceeded(succeeded=0, failed=0)


# --- pacing and windows ------------------------------------------------------------------------


def test_max_per_minute_paces_releases_over_a_sliding_minute() -> None:
    state, events = started(phases=(Phase(),), max_per_minute=4)
    assert len(released(events)) == 4
    assert rollouts.decide(state, Tick(), NOW + timedelta(seconds=59)) == []
    state, events = step(state, Tick(), NOW + timedelta(seconds=60))
    assert len(released(events)) == 4
    state, events = step(state, Tick(), NOW + timedelta(seconds=120))
    assert len(released(events)) == 2
    assert len(set(released(events))) == 2 and len(state.released) == 10


def test_devices_are_released_only_inside_the_maintenance_window() -> None:
    window = MaintenanceWindow(
        days=[Weekday.TUE], start="02:00", end="04:00", timezone="Europe/Paris"
    )
    zone = ZoneInfo("Europe/Paris")
    state, events = step(draft(maintenance_window=window), Start(devices=DEVICES, zone=zone))
    assert released(events) == [] and state.status is R.RUNNING
    assert rollouts.decide(state, Tick(zone=zone), NOW + timedelta(hours=12)) == []
    tuesday_night = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 02:30 in Paris
    state, events = step(state, Tick(zone=zone), tuesday_night)
    assert released(events) == list(state.plan[0])
    with pytest.raises(ValueError, match="zone"):
        rollouts.decide(draft(maintenance_window=window), Start(devices=DEVICES), NOW)


# --- dynamic targets -----------------------------------------------------------------------------


def test_devices_joining_the_target_join_a_dynamic_rollout_in_its_last_phase() -> None:
    state, _ = started(dynamic=True)
    newcomer, pinned = dev(50), dev(51)
    facts = {pinned: DeviceFacts(pin="1.0.0")}
    state, events = step(state, AddDevices(devices=[DEVICES[0], newcomer, pinned], facts=facts))
    assert events == [
        FirmwareRolloutDevicesAdded(
            phase=2,
            device_ids=[newcomer],
            skipped=[SkippedDevice(device_id=pinned, reason=SkipReason.PINNED, version="1.0.0")],
        )
    ]
    assert newcomer in state.plan[2]
    assert rollouts.decide(state, AddDevices(devices=[newcomer, pinned], facts=facts), NOW) == []
    static, _ = started()
    assert rollouts.decide(static, AddDevices(devices=[newcomer]), NOW) == []


# --- properties ----------------------------------------------------------------------------------

ACTIONS = ["tick"] * 4 + ["outcome"] * 8 + ["pause", "resume", "add", "cancel"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.randoms(use_true_random=False),
    st.integers(0, 40),
    st.lists(
        st.one_of(
            st.builds(
                Phase, percent=st.integers(1, 33).map(float), wait_seconds=st.integers(0, 120)
            ),
            st.builds(Phase, count=st.integers(1, 8), wait_seconds=st.integers(0, 120)),
        ),
        max_size=3,
    ),
    st.one_of(st.none(), st.integers(1, 6)),
    st.integers(0, 60),
    st.floats(0, 0.5),  # the share of executions that fail
    st.booleans(),
)
def test_a_rollout_never_notifies_beyond_its_phase_twice_too_fast_or_after_it_stopped(
    rnd: Random,
    n: int,
    head: list[Phase],
    per_minute: int | None,
    failure_percent: int,
    failure_rate: float,
    dynamic: bool,
) -> None:
    devices = [dev(i) for i in range(n)]
    state, events = started(
        devices,
        phases=(*head, Phase(wait_seconds=0)),
        max_per_minute=per_minute,
        abort_criteria=AbortCriteria(failure_percent=failure_percent, min_executed=3),
        dynamic=dynamic,
    )
    history: list[tuple[datetime, Event, Rollout]] = [(NOW, e, state) for e in events]
    at = NOW
    extra = 0
    for _ in range(300):
        action = rnd.choice(ACTIONS)
        at += timedelta(seconds=rnd.randint(0, 60))
        in_flight = [d for d in state.released if d not in state.outcomes]
        command: Command
        if action == "tick":
            command = Tick()
        elif action == "outcome" and in_flight:
            failed = rnd.random() < failure_rate
            status = rnd.choice([S.FAILED, S.TIMED_OUT, S.REJECTED]) if failed else S.SUCCEEDED
            if rnd.random() < 0.05:
                status = S.CANCELLED
            command = RecordOutcome(device_id=rnd.choice(in_flight), status=status)
        elif action == "pause" and state.status is R.RUNNING and rnd.random() < 0.3:
            command = Pause()
        elif action == "resume" and state.status is R.PAUSED:
            command = Resume()
        elif action == "add":
            extra += 1
            command = AddDevices(devices=[dev(20_000 + extra)])
        elif action == "cancel" and rnd.random() < 0.02 and state.status in (R.RUNNING, R.PAUSED):
            command = Cancel()
        else:
            continue
        before = state
        events = rollouts.decide(state, command, at)
        for event in events:
            if isinstance(event, FirmwareRolloutDevicesReleased):
                # never beyond the current phase, never while stopped, never twice
                assert before.status is R.RUNNING
                assert event.phase == state.phase
                assert set(event.device_ids) <= set(state.plan[state.phase])
                assert not set(event.device_ids) & set(state.released)
                # every earlier phase completed
                assert all(p in state.completed for p in range(state.phase))
            if isinstance(event, FirmwareRolloutPhaseStarted):
                prev = event.phase - 1
                assert prev in state.completed
                wait = state.phases[prev].wait_seconds if state.plan[prev] else 0
                assert at >= state.completed[prev] + timedelta(seconds=wait)
            state = apply(state, [event])
            history.append((at, event, state))
    # an aborted (or cancelled, or succeeded) rollout never released anything after
    stopped_at = next(
        (
            i
            for i, (_, e, _) in enumerate(history)
            if isinstance(
                e, FirmwareRolloutAborted | FirmwareRolloutCancelled | FirmwareRolloutSucceeded
            )
        ),
        None,
    )
    if stopped_at is not None:
        assert not any(
            isinstance(e, FirmwareRolloutDevicesReleased) for _, e, _ in history[stopped_at:]
        )
    # pacing: no 60-second window holds more than maxPerMinute releases
    if per_minute is not None:
        times = [
            (t, len(e.device_ids))
            for t, e, _ in history
            if isinstance(e, FirmwareRolloutDevicesReleased)
        ]
        for t0, _ in times:
            assert sum(c for t, c in times if t0 <= t < t0 + timedelta(seconds=60)) <= per_minute
    # abort criteria: a running rollout is never beyond them
    if state.status in (R.RUNNING, R.PAUSED):
        assert not rollouts.should_abort(state)
    # a rollout succeeded only once every execution it planned had ended
    if state.status is R.SUCCEEDED:
        assert all(d in state.outcomes for phase in state.plan for d in phase)


def test_a_paused_rollout_counts_outcomes_and_completes_phases_but_starts_none() -> None:
    state, _ = started()
    state, _ = step(state, Pause())
    state, events = finish(state, list(state.plan[0]), S.SUCCEEDED, NOW)
    assert FirmwareRolloutPhaseCompleted(phase=0, at=NOW) in events
    assert rollouts.decide(state, Tick(), NOW + timedelta(hours=1)) == []
    state, _ = step(state, Resume(), NOW + timedelta(hours=1))
    state, events = step(state, Tick(), NOW + timedelta(hours=1))
    assert events[0] == FirmwareRolloutPhaseStarted(phase=1, at=NOW + timedelta(hours=1))
    assert released(events) == list(state.plan[1])
    assert [c.status for c in counts(state)] == ["COMPLETED", "RUNNING", "PENDING"]
    assert counts(state)[1].counts["NOTIFIED"] == len(state.plan[1])
    assert counts(state)[2].counts["QUEUED"] == len(state.plan[2])


def test_next_tick_is_when_the_scheduler_wakes_the_rollout() -> None:
    state, _ = started(phases=(Phase(count=6, wait_seconds=300), Phase()), max_per_minute=4)
    assert rollouts.next_tick(state, NOW) == NOW + timedelta(seconds=60)  # the pace
    state, _ = step(state, Tick(), NOW + timedelta(seconds=60))
    assert rollouts.next_tick(state, NOW + timedelta(seconds=61)) is None  # outcomes awaited
    t = NOW + timedelta(seconds=90)
    state, _ = finish(state, list(state.plan[0]), S.SUCCEEDED, t)
    assert rollouts.next_tick(state, t) == t + timedelta(seconds=300)  # the wait
    window = MaintenanceWindow(days=[Weekday.WED], start="01:00", end="02:00", timezone="UTC")
    closed, _ = step(draft(maintenance_window=window), Start(devices=DEVICES, zone=UTC))
    assert rollouts.next_tick(closed, NOW, UTC) == datetime(2026, 12, 9, 1, tzinfo=UTC)
    assert rollouts.next_tick(draft(), NOW) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.randoms(use_true_random=False),
    st.integers(1, 30),
    st.one_of(st.none(), st.integers(1, 5)),
    st.integers(0, 300),
    st.booleans(),
)
def test_a_tick_before_next_tick_does_nothing_and_one_at_it_does_something(
    rnd: Random, n: int, per_minute: int | None, wait: int, windowed: bool
) -> None:
    window = (
        MaintenanceWindow(days=[Weekday.MON, Weekday.THU], start="12:05", end="12:20")
        if windowed
        else None
    )
    state, _ = step(
        draft(
            phases=(Phase(percent=30, wait_seconds=wait), Phase()),
            max_per_minute=per_minute,
            maintenance_window=window,
        ),
        Start(devices=[dev(i) for i in range(n)], zone=UTC),
    )
    at = NOW
    for _ in range(200):
        at += timedelta(seconds=rnd.randint(1, 90))
        in_flight = [d for d in state.released if d not in state.outcomes]
        if in_flight and rnd.random() < 0.6:
            state, _ = step(
                state, RecordOutcome(device_id=rnd.choice(in_flight), status=S.SUCCEEDED), at
            )
            continue
        wake = rollouts.next_tick(state, at, UTC)
        if wake is None:
            assert rollouts.decide(state, Tick(zone=UTC), at) == []
            continue
        if wake > at:
            early = min(at + (wake - at) * rnd.random(), wake - timedelta(microseconds=1))
            assert rollouts.decide(state, Tick(zone=UTC), early) == []
            at = wake
        state, events = step(state, Tick(zone=UTC), at)
        assert events
