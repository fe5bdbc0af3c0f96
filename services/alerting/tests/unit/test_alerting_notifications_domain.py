"""Notification channels as a decider, and the delivery rules (signature, results, back-off
and retry budget, e-mail text). No I/O."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgspec
import pytest

from outpost_alerting.domain import channels, deliveries
from outpost_contracts import notifications as api
from outpost_contracts.errors import NotFound, ValidationFailed

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "a-very-secret-signing-key"


def _create(**kw: object) -> api.CreateNotificationChannel:
    body: dict[str, object] = {
        "type": "WEBHOOK",
        "name": "ops",
        "url": "https://hooks.example.com/x",
        "secret": SECRET,
    }
    body.update(kw)
    return msgspec.convert(body, api.CreateNotificationChannel)


def _state(cmd: api.CreateNotificationChannel) -> channels.Channel:
    cid = uuid4()
    state = None
    for event in channels.decide(None, cmd, T0):
        state = channels.evolve(state, event, cid)
    assert state is not None
    return state


def test_a_webhook_is_created_and_its_event_carries_no_secret() -> None:
    [event] = channels.decide(None, _create(), T0)
    assert isinstance(event, api.NotificationChannelCreated)
    assert event.channel_type is api.ChannelType.WEBHOOK and event.has_secret
    assert SECRET not in msgspec.json.encode(event).decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": None}, "url"),
        ({"secret": None}, "secret"),
        ({"addresses": ["a@example.com"]}, "addresses"),
        ({"type": "EMAIL", "url": None, "secret": None}, "addresses"),
        ({"type": "EMAIL", "secret": None, "addresses": ["a@example.com"]}, "url"),
        ({"type": "EMAIL", "url": None, "addresses": ["a@example.com"]}, "secret"),
    ],
)
def test_fields_of_the_other_type_are_refused(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        channels.decide(None, _create(**body), T0)
    assert info.value.fields[0].name == field


@pytest.mark.parametrize(
    "body",
    [
        {"secret": "short"},
        {"name": ""},
        {"type": "SMS"},
        {"type": "EMAIL", "url": None, "secret": None, "addresses": []},
        {"type": "EMAIL", "url": None, "secret": None, "addresses": ["not-an-address"]},
        {"type": "EMAIL", "url": None, "secret": None, "addresses": ["a@b.com\r\nBcc: x@y.z"]},
        {"type": "EMAIL", "url": None, "secret": None, "addresses": ["Eve <e@x.com>"]},
        {"unknown": 1},
    ],
)
def test_bad_bodies_are_refused_by_the_contract(body: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        _create(**body)


def test_email_addresses_are_kept_once_in_order() -> None:
    cmd = _create(
        type="EMAIL",
        url=None,
        secret=None,
        addresses=["b@example.com", "a@example.com", "B@example.com"],
    )
    [event] = channels.decide(None, cmd, T0)
    assert isinstance(event, api.NotificationChannelCreated)
    assert event.addresses == ["b@example.com", "a@example.com"]
    assert not event.has_secret


def test_patches_name_what_changed_and_never_the_secret_value() -> None:
    state = _state(_create())
    patch = api.NotificationChannelPatch(name="ops", enabled=False, secret="another-secret-123")
    [event] = channels.decide(state, patch, T0)
    assert isinstance(event, api.NotificationChannelUpdated)
    assert event.changed == ["enabled", "secret"]
    assert "another-secret-123" not in msgspec.json.encode(event).decode()
    after = channels.evolve(state, event, state.id)
    assert after is not None and not after.enabled and after.version == 2
    assert channels.decide(after, api.NotificationChannelPatch(name="ops"), T0) == []


def test_a_patch_may_not_cross_types() -> None:
    webhook = _state(_create())
    with pytest.raises(ValidationFailed, match="addresses"):
        channels.decide(webhook, api.NotificationChannelPatch(addresses=["a@example.com"]), T0)
    email = _state(_create(type="EMAIL", url=None, secret=None, addresses=["a@example.com"]))
    for patch in (
        api.NotificationChannelPatch(url="https://example.com/"),
        api.NotificationChannelPatch(secret="0123456789abcdef"),
    ):
        with pytest.raises(ValidationFailed):
            channels.decide(email, patch, T0)


def test_delete_and_then_nothing() -> None:
    state = _state(_create())
    [event] = channels.decide(state, channels.Delete(), T0)
    gone = channels.evolve(state, event, state.id)
    assert gone is not None and gone.deleted
    for command in (channels.Delete(), api.NotificationChannelPatch(name="x")):
        with pytest.raises(NotFound):
            channels.decide(gone, command, T0)
    with pytest.raises(NotFound):
        channels.decide(None, channels.Delete(), T0)


# --- delivery rules -----------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"id":"x","data":{"type":"alerting.AlertOpened.v1"}}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert deliveries.signature(SECRET, body) == f"sha256={expected}"
    assert deliveries.verify(SECRET, body, f"sha256={expected}")
    assert not deliveries.verify(SECRET, body + b" ", f"sha256={expected}")
    assert not deliveries.verify("another-secret-xx", body, f"sha256={expected}")


@pytest.mark.parametrize(
    ("status", "ok", "words"),
    [
        (200, True, None),
        (204, True, None),
        (299, True, None),
        (301, False, "redirects are not followed"),
        (302, False, "redirects are not followed"),
        (307, False, "redirects are not followed"),
        (400, False, "HTTP 400"),
        (429, False, "HTTP 429"),
        (500, False, "HTTP 500"),
        (503, False, "HTTP 503"),
    ],
)
def test_http_results(status: int, ok: bool, words: str | None) -> None:
    result = deliveries.http_result(status, 12.5)
    assert result.ok is ok and result.status_code == status and result.latency_ms == 12.5
    assert not result.permanent
    if words:
        assert result.error is not None and words in result.error


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    budget = deliveries.Budget(
        max_attempts=20,
        max_age=timedelta(days=1),
        backoff_min=timedelta(seconds=1),
        backoff_max=timedelta(seconds=60),
    )
    assert budget.backoff(1, 0.0) == timedelta(seconds=0.5)
    assert budget.backoff(1, 0.999) < timedelta(seconds=1)
    assert budget.backoff(2, 0.0) == timedelta(seconds=1)
    assert budget.backoff(4, 1.0) == timedelta(seconds=8)
    assert budget.backoff(30, 1.0) == timedelta(seconds=60)
    waits = [budget.backoff(5, j / 10) for j in range(10)]
    assert len(set(waits)) == 10 and min(waits) >= timedelta(seconds=8)


def test_the_retry_budget_counts_attempts_and_age() -> None:
    budget = deliveries.Budget(
        max_attempts=3,
        max_age=timedelta(seconds=10),
        backoff_min=timedelta(seconds=2),
        backoff_max=timedelta(seconds=60),
    )
    due = budget.next_attempt(1, T0, T0, 0.0)
    assert due == T0 + timedelta(seconds=1)
    assert budget.next_attempt(2, T0, T0 + timedelta(seconds=1), 1.0) == T0 + timedelta(seconds=5)
    assert budget.next_attempt(3, T0, T0 + timedelta(seconds=2), 0.0) is None  # attempts
    assert budget.next_attempt(2, T0, T0 + timedelta(seconds=7), 0.0) == T0 + timedelta(seconds=9)
    assert budget.next_attempt(2, T0, T0 + timedelta(seconds=8.5), 0.0) is None  # age


def test_outcomes() -> None:
    ok = deliveries.http_result(200, 1)
    bad = deliveries.http_result(500, 1)
    assert deliveries.outcome(ok, None) is api.DeliveryOutcome.SUCCEEDED
    assert deliveries.outcome(bad, T0) is api.DeliveryOutcome.FAILED
    assert deliveries.outcome(bad, None) is api.DeliveryOutcome.DEAD
    refused = deliveries.failed("refused", 0, permanent=True)
    assert deliveries.outcome(refused, T0) is api.DeliveryOutcome.DEAD
    assert len(deliveries.failed("x" * 5000, 0).error or "") == deliveries.MAX_ERROR


def test_the_email_text_of_an_opened_alert() -> None:
    rule, device, alert = uuid4(), uuid4(), uuid4()
    envelope = {
        "id": "e-1",
        "streamId": str(alert),
        "occurredAt": "2026-12-01T12:00:00Z",
        "data": {
            "type": "alerting.AlertOpened.v1",
            "ruleId": str(rule),
            "ruleVersion": 3,
            "deviceId": str(device),
            "sensor": "temperature",
            "severity": "CRITICAL",
            "trigger": {
                "value": 41.5,
                "ts": "2026-12-01T11:59:58Z",
                "since": "2026-12-01T11:59:00Z",
                "condition": "temperature > 40",
                "ruleVersion": 3,
            },
        },
    }
    subject, text = deliveries.email_text(envelope, rule_name="too hot", device_name="boiler-1")
    assert subject == "[Outpost] CRITICAL alert opened: too hot on boiler-1"
    for part in (
        f"The alert {alert} was opened.",
        f"Rule: too hot ({rule})",
        "Rule version: 3",
        f"Device: boiler-1 ({device})",
        "Sensor: temperature",
        "Condition: temperature > 40",
        "Value: 41.5",
        "Reading time: 2026-12-01T11:59:58Z",
    ):
        assert part in text
    subject, text = deliveries.email_text(
        {"data": {"type": "alerting.AlertResolved.v1", "resolution": "CLEARED", "value": 20.0}},
        rule_name=None,
        device_name=None,
    )
    assert subject == "[Outpost] alert resolved: an alert"
    assert "Resolution: CLEARED" in text and "Clearing value: 20.0" in text
