"""A device's firmware execution: given events, when a command, then events (ADR 0094)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.firmware import (
    ExecutionStatus,
    FirmwareExecutionEnded,
    FirmwareExecutionInstallReported,
    FirmwareExecutionNotified,
    FirmwareExecutionProgressed,
    FirmwareExecutionQueued,
    FirmwareExecutionRetryScheduled,
    RetryPolicy,
)
from outpost_fleet.domain import executions
from outpost_fleet.domain.executions import (
    Cancel,
    CheckTimeout,
    Command,
    Execution,
    Notify,
    ObserveVersion,
    Queue,
    ReportProgress,
    backoff,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
S = ExecutionStatus
SIZE = 1000


def run(commands: list[tuple[Command, datetime]], state: Execution | None = None) -> Execution:
    for command, at in commands:
        for event in executions.decide(state, command, at):
            state = executions.evolve(state, event, state.id if state else uuid4())
    assert state is not None
    return state


def queued(retries: RetryPolicy | None = None) -> Execution:
    command = Queue(
        rollout_id=UUID(int=1),
        device_id=UUID(int=2),
        firmware_id=UUID(int=3),
        target="1.4.2",
        size_bytes=SIZE,
        timeout_seconds=600,
        retries=retries or RetryPolicy(),
    )
    return run([(command, NOW)])


def notified(retries: RetryPolicy | None = None) -> Execution:
    return run([(Notify(), NOW)], queued(retries))


def test_queue_then_notify_starts_an_attempt_with_a_deadline() -> None:
    state = queued()
    assert state.status is S.QUEUED and state.attempt == 0
    events = executions.decide(state, Notify(), NOW)
    assert events == [FirmwareExecutionNotified(attempt=1, deadline=NOW + timedelta(seconds=600))]
    state = run([(Notify(), NOW)], state)
    assert state.status is S.NOTIFIED
    assert executions.decide(state, Notify(), NOW) == []  # notified once per attempt


def test_queueing_twice_or_acting_on_nothing_is_refused() -> None:
    with pytest.raises(Conflict):
        executions.decide(
            queued(),
            Queue(
                rollout_id=UUID(int=1),
                device_id=UUID(int=2),
                firmware_id=UUID(int=3),
                target="1.4.2",
                size_bytes=1,
                timeout_seconds=1,
            ),
            NOW,
        )
    with pytest.raises(NotFound):
        executions.decide(None, Notify(), NOW)


def test_the_happy_path_succeeds_only_when_the_device_runs_the_version() -> None:
    state = notified()
    t = NOW + timedelta(seconds=10)
    assert executions.decide(
        state, ReportProgress(status=S.DOWNLOADING, bytes_downloaded=0), t
    ) == [FirmwareExecutionProgressed(status=S.DOWNLOADING, bytes_downloaded=0)]
    state = run(
        [
            (ReportProgress(status=S.DOWNLOADING, bytes_downloaded=0), t),
            (ReportProgress(status=S.DOWNLOADING, bytes_downloaded=SIZE), t),
            (ReportProgress(status=S.INSTALLING), t),
        ],
        state,
    )
    assert state.status is S.INSTALLING and state.bytes_downloaded == SIZE
    said = executions.decide(state, ReportProgress(status=S.SUCCEEDED), t)
    assert said == [FirmwareExecutionInstallReported()]
    state = run([(ReportProgress(status=S.SUCCEEDED), t)], state)
    assert state.status is S.INSTALLING  # its word is not a success
    assert executions.decide(state, ObserveVersion(version="1.4.2"), t) == [
        FirmwareExecutionEnded(status=S.SUCCEEDED, version="1.4.2")
    ]


def test_the_old_version_reported_after_installing_is_a_failure() -> None:
    state = run(
        [(ReportProgress(status=S.INSTALLING), NOW), (ReportProgress(status=S.SUCCEEDED), NOW)],
        notified(),
    )
    assert executions.decide(state, ObserveVersion(version="1.4.1"), NOW) == [
        FirmwareExecutionEnded(
            status=S.FAILED, error="the device runs 1.4.1 after installing 1.4.2"
        )
    ]
    # before it said it installed, the old version is simply what it still runs
    assert executions.decide(notified(), ObserveVersion(version="1.4.1"), NOW) == []


def test_build_metadata_must_match_too() -> None:
    assert executions.decide(notified(), ObserveVersion(version="1.4.2+other"), NOW) == []


def test_a_version_reported_before_any_notification_counts_for_nothing() -> None:
    assert executions.decide(queued(), ObserveVersion(version="1.4.2"), NOW) == []


def test_download_progress_is_recorded_in_steps_and_never_backwards() -> None:
    state = run([(ReportProgress(status=S.DOWNLOADING, bytes_downloaded=100), NOW)], notified())

    def report(n: int) -> list[Event]:
        return executions.decide(
            state, ReportProgress(status=S.DOWNLOADING, bytes_downloaded=n), NOW
        )

    assert report(120) == []  # less than 5% further
    assert report(150) == [FirmwareExecutionProgressed(status=S.DOWNLOADING, bytes_downloaded=150)]
    assert report(50) == []  # backwards
    installing = run([(ReportProgress(status=S.INSTALLING), NOW)], state)
    assert (
        executions.decide(
            installing, ReportProgress(status=S.DOWNLOADING, bytes_downloaded=900), NOW
        )
        == []
    )
    assert executions.decide(installing, ReportProgress(status=S.INSTALLING), NOW) == []


@pytest.mark.parametrize(
    "report",
    [
        ReportProgress(status=S.DOWNLOADING),
        ReportProgress(status=S.DOWNLOADING, bytes_downloaded=SIZE + 1),
        ReportProgress(status=S.DOWNLOADING, bytes_downloaded=-1),
        ReportProgress(status=S.TIMED_OUT),
        ReportProgress(status=S.QUEUED),
    ],
)
def test_an_impossible_report_is_a_validation_error(report: ReportProgress) -> None:
    with pytest.raises(ValidationFailed):
        executions.decide(notified(), report, NOW)


def test_a_rejection_ends_the_execution_and_is_never_retried() -> None:
    state = notified(RetryPolicy(max_attempts=3))
    assert executions.decide(
        state, ReportProgress(status=S.REJECTED, error="bad signature"), NOW
    ) == [FirmwareExecutionEnded(status=S.REJECTED, error="bad signature")]


def test_timeouts_come_at_the_deadline() -> None:
    state = notified()
    deadline = NOW + timedelta(seconds=600)
    assert executions.decide(state, CheckTimeout(), deadline - timedelta(seconds=1)) == []
    assert executions.decide(state, CheckTimeout(), deadline) == [
        FirmwareExecutionEnded(status=S.TIMED_OUT, error="no success within 600 s")
    ]


def test_failures_are_retried_with_backoff_then_end() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_seconds=60)
    state = notified(policy)
    fail = ReportProgress(status=S.FAILED, error="flash write error")
    assert executions.decide(state, fail, NOW) == [
        FirmwareExecutionRetryScheduled(
            attempt=1,
            status=S.FAILED,
            retry_at=NOW + timedelta(seconds=60),
            error="flash write error",
        )
    ]
    state = run([(fail, NOW)], state)
    assert state.status is S.QUEUED
    # late acks and timers of the failed attempt change nothing; nor does an early notify
    assert executions.decide(state, ReportProgress(status=S.INSTALLING), NOW) == []
    assert executions.decide(state, CheckTimeout(), NOW + timedelta(days=1)) == []
    assert executions.decide(state, Notify(), NOW + timedelta(seconds=59)) == []
    t2 = NOW + timedelta(seconds=60)
    state = run([(Notify(), t2)], state)
    assert state.attempt == 2 and state.status is S.NOTIFIED
    t3 = t2 + timedelta(seconds=600)
    assert executions.decide(state, CheckTimeout(), t3) == [
        FirmwareExecutionRetryScheduled(
            attempt=2,
            status=S.TIMED_OUT,
            retry_at=t3 + timedelta(seconds=120),
            error="no success within 600 s",
        )
    ]
    state = run([(CheckTimeout(), t3), (Notify(), t3 + timedelta(seconds=120))], state)
    assert state.attempt == 3
    assert executions.decide(state, fail, t3) == [
        FirmwareExecutionEnded(status=S.FAILED, error="flash write error")
    ]


def test_a_device_that_reports_the_version_while_waiting_for_a_retry_succeeded() -> None:
    state = run([(ReportProgress(status=S.FAILED), NOW)], notified(RetryPolicy(max_attempts=2)))
    assert state.status is S.QUEUED
    assert executions.decide(state, ObserveVersion(version="1.4.2"), NOW) == [
        FirmwareExecutionEnded(status=S.SUCCEEDED, version="1.4.2")
    ]


def test_backoff_doubles_and_is_capped_at_an_hour() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_seconds=600)
    assert [backoff(policy, a).total_seconds() for a in (1, 2, 3, 4)] == [600, 1200, 2400, 3600]


def test_cancel_ends_whatever_has_not_ended_and_an_ended_execution_stays_so() -> None:
    assert executions.decide(queued(), Cancel(reason="rollout cancelled"), NOW) == [
        FirmwareExecutionEnded(status=S.CANCELLED, error="rollout cancelled")
    ]
    done = run([(ObserveVersion(version="1.4.2"), NOW)], notified())
    assert done.status is S.SUCCEEDED and done.running == "1.4.2"
    for command in (Cancel(), Notify(), ReportProgress(status=S.FAILED), CheckTimeout()):
        assert executions.decide(done, command, NOW + timedelta(days=9)) == []


def test_a_long_error_is_cut() -> None:
    events = executions.decide(notified(), ReportProgress(status=S.REJECTED, error="x" * 5000), NOW)
    assert isinstance(events[0], FirmwareExecutionEnded) and len(events[0].error or "") == 1000


def test_the_queued_event_carries_the_policy() -> None:
    events = executions.decide(
        None,
        Queue(
            rollout_id=UUID(int=1),
            device_id=UUID(int=2),
            firmware_id=UUID(int=3),
            target="2.0.0-rc.1",
            size_bytes=5,
            timeout_seconds=60,
            retries=RetryPolicy(max_attempts=2),
        ),
        NOW,
    )
    assert events == [
        FirmwareExecutionQueued(
            rollout_id=UUID(int=1),
            device_id=UUID(int=2),
            firmware_id=UUID(int=3),
            version="2.0.0-rc.1",
            size_bytes=5,
            timeout_seconds=60,
            retries=RetryPolicy(max_attempts=2),
        )
    ]


# --- properties --------------------------------------------------------------------------------

commands = st.one_of(
    st.just(Notify()),
    st.just(CheckTimeout()),
    st.just(Cancel()),
    st.builds(
        ReportProgress,
        status=st.sampled_from([S.DOWNLOADING, S.INSTALLING, S.SUCCEEDED, S.FAILED, S.REJECTED]),
        bytes_downloaded=st.integers(0, SIZE),
    ),
    st.builds(ObserveVersion, version=st.sampled_from(["1.4.1", "1.4.2", "1.4.2+x"])),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(commands, st.integers(0, 900)), max_size=25),
    st.integers(1, 4),
)
def test_an_execution_ends_once_and_succeeds_only_on_the_target_version(
    steps: list[tuple[Command, int]], attempts: int
) -> None:
    state = queued(RetryPolicy(max_attempts=attempts, backoff_seconds=30))
    at = NOW
    ends: list[FirmwareExecutionEnded] = []
    for command, seconds in steps:
        at += timedelta(seconds=seconds)
        events = executions.decide(state, command, at)
        for event in events:
            state = executions.evolve(state, event, state.id)  # type: ignore[assignment]
            if isinstance(event, FirmwareExecutionEnded):
                ends.append(event)
            if isinstance(event, FirmwareExecutionNotified):
                assert event.attempt <= attempts
    assert len(ends) <= 1
    if ends and ends[0].status is S.SUCCEEDED:
        assert ends[0].version == "1.4.2" and state.attempt >= 1
    assert (state.status in {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.REJECTED, S.CANCELLED}) == bool(
        ends
    )
