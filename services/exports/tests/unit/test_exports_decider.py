"""The export decider: given these events, when this command, then these events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from outpost_contracts import exports as api
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_exports.domain import exports as domain

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 3, 1, tzinfo=UTC)
LIMITS = domain.Limits(max_range=timedelta(days=31), artifact_ttl=timedelta(hours=1))
ID = UUID("01900000-0000-7000-8000-000000000001")


def spec(**overrides: object) -> api.CreateExport:
    base: dict[str, object] = {
        "scope_type": api.ScopeType.DEVICE,
        "scope_id": uuid4(),
        "from_": T0,
        "to": T0 + timedelta(days=1),
    }
    base.update(overrides)
    return api.CreateExport(**base)  # type: ignore[arg-type]


def given(*commands: domain.Command) -> domain.Export | None:
    state: domain.Export | None = None
    for command in commands:
        for event in domain.decide(state, command, NOW):
            state = domain.evolve(state, event, ID)
    return state


REQUEST = domain.Request(spec=spec(), requested_by=uuid4(), limits=LIMITS)
START = domain.Start(worker="w1", max_attempts=3)


def complete(attempt: int) -> domain.Complete:
    return domain.Complete(
        attempt=attempt,
        object_name=f"o/{attempt}.zip",
        size_bytes=10,
        sha256="ab",
        reading_count=5,
        annotation_count=1,
        ttl=timedelta(hours=1),
    )


def test_a_request_is_pending_with_defaults() -> None:
    [event] = domain.decide(None, REQUEST, NOW)
    assert isinstance(event, api.ExportRequested)
    assert event.includes == [api.Include.READINGS] and event.format == api.Format.CSV
    state = domain.evolve(None, event, ID)
    assert state.status == api.ExportStatus.PENDING and state.attempt == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scope_id": None}, "scopeId"),
        ({"scope_type": api.ScopeType.ORGANIZATION}, "scopeId"),
        ({"to": T0}, "from"),
        ({"to": T0 - timedelta(seconds=1)}, "from"),
        ({"to": T0 + timedelta(days=32)}, "to"),
        ({"includes": [api.Include.READINGS, api.Include.READINGS]}, "includes"),
        ({"includes": [api.Include.ALERTS, api.Include.ALERTS]}, "includes"),
    ],
)
def test_bad_requests_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        domain.decide(
            None, domain.Request(spec=spec(**overrides), requested_by=None, limits=LIMITS), NOW
        )
    assert caught.value.fields[0].name == field


def test_every_include_is_accepted() -> None:
    command = domain.Request(
        spec=spec(includes=list(api.Include)), requested_by=None, limits=LIMITS
    )
    [event] = domain.decide(None, command, NOW)
    assert event.includes == list(api.Include)  # type: ignore[attr-defined]


def test_an_organization_scope_needs_no_id() -> None:
    command = domain.Request(
        spec=spec(scope_type=api.ScopeType.ORGANIZATION, scope_id=None),
        requested_by=None,
        limits=LIMITS,
    )
    assert len(domain.decide(None, command, NOW)) == 1


def test_start_opens_the_next_attempt_and_only_it_may_complete() -> None:
    state = given(REQUEST, START)
    assert state is not None and state.status == api.ExportStatus.RUNNING and state.attempt == 1
    # A lost worker's job is started again by another: attempt 2.
    state = given(REQUEST, START, START)
    assert state is not None and state.attempt == 2
    with pytest.raises(domain.Stale):
        domain.decide(state, complete(1), NOW)
    [done] = domain.decide(state, complete(2), NOW)
    assert isinstance(done, api.ExportCompleted) and done.expires_at == NOW + timedelta(hours=1)
    ready = domain.evolve(state, done, ID)
    assert ready.status == api.ExportStatus.READY and ready.object_name == "o/2.zip"


def test_attempts_are_bounded() -> None:
    state = given(REQUEST, START, START, START)
    assert state is not None and state.attempt == 3
    [event] = domain.decide(state, START, NOW)
    assert isinstance(event, api.ExportFailed) and "3 attempts" in event.reason


def test_a_finished_job_is_not_started_completed_or_failed_again() -> None:
    ready = given(REQUEST, START, complete(1))
    for command in (START, complete(1), domain.Fail(attempt=1, reason="x")):
        with pytest.raises(domain.Stale):
            domain.decide(ready, command, NOW)
    assert isinstance(domain.Stale("x"), Conflict)


def test_delete_cancels_an_unfinished_job_and_deletes_a_finished_one() -> None:
    for prefix in ((REQUEST,), (REQUEST, START)):
        [event] = domain.decide(given(*prefix), domain.Cancel(by=None), NOW)
        assert isinstance(event, api.ExportCancelled)
    cancelled = given(REQUEST, START, domain.Cancel(by=None))
    assert cancelled is not None and cancelled.status == api.ExportStatus.CANCELLED
    # The cancelled attempt cannot complete afterwards.
    with pytest.raises(domain.Stale):
        domain.decide(cancelled, complete(1), NOW)
    for finished in (cancelled, given(REQUEST, START, complete(1))):
        [event] = domain.decide(finished, domain.Cancel(by=None), NOW)
        assert isinstance(event, api.ExportDeleted)
    gone = given(REQUEST, START, complete(1), domain.Cancel(by=None))
    assert gone is not None and gone.deleted
    with pytest.raises(NotFound):
        domain.decide(gone, domain.Cancel(by=None), NOW)
    with pytest.raises(NotFound):
        domain.decide(None, START, NOW)


def test_expiry_applies_to_ready_jobs_once() -> None:
    ready = given(REQUEST, START, complete(1))
    [event] = domain.decide(ready, domain.Expire(), NOW)
    assert isinstance(event, api.ExportExpired)
    expired = domain.evolve(ready, event, ID)
    assert expired.status == api.ExportStatus.EXPIRED and expired.object_name is None
    assert domain.decide(expired, domain.Expire(), NOW) == []
    assert domain.decide(given(REQUEST, START), domain.Expire(), NOW) == []


def test_object_names_are_per_job_and_attempt() -> None:
    org = uuid4()
    names = {domain.object_name(org, ID, a) for a in (1, 2)}
    assert len(names) == 2 and all(n.startswith(f"{org}/{ID}/") for n in names)
