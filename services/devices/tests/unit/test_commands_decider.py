"""The command lifecycle and desired-state deciders, the delta and reported-state merge,
and a command's expiry from a request. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from outpost_contracts import commands as api
from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.presence import AckStatus, CommandStatus
from outpost_devices.app.commands import CommandsConfig, expiry
from outpost_devices.domain import commands as domain

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
DEVICE = uuid4()
ID = uuid4()


def _state(*events: Any) -> domain.Command | None:
    state = None
    for event in events:
        state = domain.evolve_command(state, event, ID)
    return state


CREATED = api.CommandCreated(device_id=DEVICE, name="reboot", params={"a": 1}, expires_at=LATER)
SENT = api.CommandSent(device_id=DEVICE)
ACKED = api.CommandAcknowledged(device_id=DEVICE)


def _status(*events: Any) -> CommandStatus:
    state = _state(*events)
    assert state is not None
    return state.status


def test_create_is_pending_until_its_expiry() -> None:
    events = domain.decide_command(
        None,
        domain.Create(device_id=DEVICE, name="reboot", params={"a": 1}, expires_at=LATER),
        NOW,
    )
    assert events == [CREATED]
    assert _status(*events) is CommandStatus.PENDING
    with pytest.raises(ValidationFailed):
        domain.decide_command(
            None, domain.Create(device_id=DEVICE, name="x", params={}, expires_at=NOW), NOW
        )
    with pytest.raises(ValidationFailed):  # params too large
        domain.decide_command(
            None,
            domain.Create(device_id=DEVICE, name="x", params={"b": "x" * 20000}, expires_at=LATER),
            NOW,
        )


def test_a_command_that_does_not_exist_cannot_move() -> None:
    with pytest.raises(NotFound):
        domain.decide_command(None, domain.MarkSent(), NOW)


def test_the_happy_path_sent_acknowledged_succeeded() -> None:
    pending = _state(CREATED)
    assert domain.decide_command(pending, domain.MarkSent(), NOW) == [SENT]
    sent = _state(CREATED, SENT)
    ack = domain.Ack(status=AckStatus.ACKNOWLEDGED)
    assert domain.decide_command(sent, ack, NOW) == [ACKED]
    acked = _state(CREATED, SENT, ACKED)
    done = domain.decide_command(acked, domain.Ack(status=AckStatus.SUCCEEDED, result=7), NOW)
    assert done == [api.CommandSucceeded(device_id=DEVICE, result=7)]
    assert _status(CREATED, SENT, ACKED, *done) is CommandStatus.SUCCEEDED


def test_failure_carries_its_result() -> None:
    sent = _state(CREATED, SENT)
    failed = domain.decide_command(sent, domain.Ack(status=AckStatus.FAILED, result="no"), NOW)
    assert failed == [api.CommandFailed(device_id=DEVICE, result="no")]
    assert _status(CREATED, SENT, *failed) is CommandStatus.FAILED


def test_an_ack_before_the_delivery_was_recorded_marks_it_sent_first() -> None:
    pending = _state(CREATED)
    events = domain.decide_command(pending, domain.Ack(status=AckStatus.SUCCEEDED), NOW)
    assert events == [SENT, api.CommandSucceeded(device_id=DEVICE)]
    events = domain.decide_command(pending, domain.Ack(status=AckStatus.ACKNOWLEDGED), NOW)
    assert events == [SENT, ACKED]


def test_repeated_deliveries_and_acks_change_nothing() -> None:
    sent = _state(CREATED, SENT)
    assert domain.decide_command(sent, domain.MarkSent(), NOW) == []
    acked = _state(CREATED, SENT, ACKED)
    assert domain.decide_command(acked, domain.MarkSent(), NOW) == []
    assert domain.decide_command(acked, domain.Ack(status=AckStatus.ACKNOWLEDGED), NOW) == []


@pytest.mark.parametrize(
    "final",
    [
        api.CommandSucceeded(device_id=DEVICE, result=1),
        api.CommandFailed(device_id=DEVICE),
        api.CommandExpired(device_id=DEVICE),
    ],
)
def test_a_final_status_never_moves(final: Any) -> None:
    state = _state(CREATED, SENT, final)
    for command in (
        domain.MarkSent(),
        domain.Expire(),
        domain.Ack(status=AckStatus.ACKNOWLEDGED),
        domain.Ack(status=AckStatus.SUCCEEDED),
        domain.Ack(status=AckStatus.FAILED),
    ):
        assert domain.decide_command(state, command, NOW) == []
        assert domain.decide_command(state, command, LATER + timedelta(days=1)) == []


@pytest.mark.parametrize("events", [(CREATED,), (CREATED, SENT), (CREATED, SENT, ACKED)])
def test_every_open_status_expires_at_its_expiry_and_not_before(events: Any) -> None:
    state = _state(*events)
    assert domain.decide_command(state, domain.Expire(), NOW) == []
    expired = [api.CommandExpired(device_id=DEVICE)]
    assert domain.decide_command(state, domain.Expire(), LATER) == expired
    # A late ack or delivery after the expiry expires it instead of reviving it.
    late = domain.Ack(status=AckStatus.SUCCEEDED)
    assert domain.decide_command(state, late, LATER) == expired
    assert domain.decide_command(state, domain.MarkSent(), LATER) == expired
    assert _status(*events, *expired) is CommandStatus.EXPIRED


def test_a_result_too_large_is_refused() -> None:
    sent = _state(CREATED, SENT)
    with pytest.raises(ValidationFailed):
        domain.decide_command(sent, domain.Ack(status=AckStatus.SUCCEEDED, result="x" * 20000), NOW)


# --- desired state ----------------------------------------------------------------------


def _desired(desired: dict[str, Any]) -> domain.DesiredState:
    return domain.DesiredState(device_id=DEVICE, desired=desired, local=desired)


def test_desired_state_merges_a_patch_and_null_deletes() -> None:
    change = domain.ChangeDesired(device_id=DEVICE, desired={"fan": {"speed": 3}, "led": True})
    [first] = domain.decide_desired(None, change, NOW)
    assert first == api.DesiredStateChanged(
        device_id=DEVICE,
        desired={"fan": {"speed": 3}, "led": True},
        local={"fan": {"speed": 3}, "led": True},
    )
    state = domain.evolve_desired(None, first, uuid4())
    patch = domain.ChangeDesired(device_id=DEVICE, desired={"fan": {"mode": "eco"}, "led": None})
    [second] = domain.decide_desired(state, patch, NOW)
    assert isinstance(second, api.DesiredStateChanged)
    assert second.desired == {"fan": {"speed": 3, "mode": "eco"}}


def test_desired_state_replacement_and_no_op() -> None:
    state = _desired({"a": 1, "b": 2})
    put = domain.ChangeDesired(device_id=DEVICE, desired={"c": 3, "d": None}, replace=True)
    [event] = domain.decide_desired(state, put, NOW)
    assert isinstance(event, api.DesiredStateChanged) and event.desired == {"c": 3}
    same = domain.ChangeDesired(device_id=DEVICE, desired={"a": 1})
    assert domain.decide_desired(state, same, NOW) == []
    with pytest.raises(ValidationFailed):
        domain.decide_desired(
            state, domain.ChangeDesired(device_id=DEVICE, desired={"x": "y" * 20000}), NOW
        )


def test_delta_is_what_the_device_has_not_reported() -> None:
    desired = {"led": True, "fan": {"speed": 3, "mode": "eco"}, "name": "a"}
    reported = {"led": True, "fan": {"speed": 2, "mode": "eco"}, "extra": 1}
    assert domain.delta(desired, reported) == {"fan": {"speed": 3}, "name": "a"}
    assert domain.delta(desired, {**desired, "extra": 1}) == {}
    assert domain.delta({"a": 0}, {}) == {"a": 0}
    assert domain.delta({"a": {"b": 1}}, {"a": 5}) == {"a": {"b": 1}}


def test_a_report_merges_into_the_reported_state() -> None:
    assert domain.report({"a": 1, "b": {"c": 1}}, {"a": None, "b": {"d": 2}}) == {
        "b": {"c": 1, "d": 2}
    }
    with pytest.raises(ValidationFailed):
        domain.report({}, {"x": "y" * 20000})


# --- expiry from a request --------------------------------------------------------------


def test_expiry_defaults_and_limits() -> None:
    config = CommandsConfig(default_ttl=timedelta(minutes=5), max_ttl=timedelta(hours=2))
    assert expiry(config, api.CommandBody(name="x"), NOW) == NOW + timedelta(minutes=5)
    assert expiry(config, api.CommandBody(name="x", ttl_seconds=60), NOW) == NOW + timedelta(
        seconds=60
    )
    at = NOW + timedelta(hours=1)
    assert expiry(config, api.CommandBody(name="x", expires_at=at), NOW) == at
    for body in (
        api.CommandBody(name="x", ttl_seconds=3 * 3600),
        api.CommandBody(name="x", expires_at=NOW + timedelta(hours=3)),
        api.CommandBody(name="x", expires_at=NOW - timedelta(seconds=1)),
        api.CommandBody(name="x", expires_at=at, ttl_seconds=60),
    ):
        with pytest.raises(ValidationFailed):
            expiry(config, body, NOW)


def test_a_device_message_is_an_ack_or_a_state_report() -> None:
    from outpost_contracts.presence import CommandAck, StateReport
    from outpost_devices.app.commands import device_message

    ack = device_message(
        f'{{"id": "{ID}", "status": "SUCCEEDED", "result": {{"state": "on"}}}}'.encode()
    )
    assert isinstance(ack, CommandAck) and ack.id == ID and ack.result == {"state": "on"}
    report = device_message(b'{"state": {"reported": {"led": true}}}')
    assert isinstance(report, StateReport) and report.state.reported == {"led": True}
    for bad in (b'{"id": "x", "status": "DONE"}', b"[]", b'{"state": 1}'):
        with pytest.raises((ValueError, TypeError)):
            device_message(bad)
