"""Alert rules and the alert lifecycle as deciders. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec
import pytest

from outpost_alerting.domain import alerts, rules
from outpost_contracts import alerting as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULE_ID = uuid4()


def _create(**kw: object) -> api.CreateAlertRule:
    body: dict[str, object] = {
        "name": "hot",
        "scope": {"type": "GROUP", "id": str(uuid4())},
        "sensor": "temp",
        "condition": {"op": ">", "threshold": 30},
        "severity": "MAJOR",
    }
    body.update(kw)
    return msgspec.convert(body, api.CreateAlertRule)


def _fold(events: list[Event], state: rules.AlertRule | None = None) -> rules.AlertRule:
    for e in events:
        state = rules.evolve(state, e, RULE_ID)
    assert state is not None
    return state


def test_a_rule_is_created_at_version_one_and_each_change_is_a_whole_new_version() -> None:
    rule = _fold(rules.decide(None, _create(forSeconds=60)))
    assert (rule.version, rule.for_seconds, rule.enabled) == (1, 60, True)
    [updated] = rules.decide(
        rule, api.AlertRulePatch(severity=api.Severity.CRITICAL, enabled=False)
    )
    assert isinstance(updated, api.AlertRuleUpdated)
    assert updated.changed == ["severity", "enabled"]
    assert (updated.condition, updated.for_seconds) == (rule.condition, 60)  # whole
    rule = _fold([updated], rule)
    assert (rule.version, rule.severity, rule.enabled) == (2, api.Severity.CRITICAL, False)
    assert rules.decide(rule, api.AlertRulePatch(severity=api.Severity.CRITICAL)) == []


def test_a_change_is_checked_as_the_rule_it_makes() -> None:
    rule = _fold(rules.decide(None, _create(hysteresis=1.0)))
    with pytest.raises(ValidationFailed):  # hysteresis does not go with ==
        rules.decide(rule, api.AlertRulePatch(condition=api.Condition(op="==", threshold=1)))
    [ok] = rules.decide(
        rule, api.AlertRulePatch(condition=api.Condition(op="==", threshold=1), hysteresis=None)
    )
    assert isinstance(ok, api.AlertRuleUpdated) and ok.hysteresis is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": {"type": "ORGANIZATION", "id": str(uuid4())}}, "scope.id"),
        ({"scope": {"type": "DEVICE"}}, "scope.id"),
        ({"condition": {"op": "outside", "low": 3, "high": 1}}, "condition.high"),
        ({"channelIds": [str(UUID(int=1))] * 2}, "channelIds"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rules.decide(None, _create(**body))
    assert [f.name for f in caught.value.fields] == [field]


def test_a_deleted_rule_is_gone() -> None:
    rule = _fold(rules.decide(None, _create(scope={"type": "ORGANIZATION"})))
    rule = _fold(rules.decide(rule, rules.Delete()), rule)
    with pytest.raises(NotFound):
        rules.decide(rule, api.AlertRulePatch(name="x"))


def _alert(*commands: alerts.AlertCommand) -> alerts.Alert | None:
    state = None
    for command in commands:
        for e in alerts.decide(state, command):
            state = alerts.evolve(state, e, RULE_ID)
    return state


OPEN = alerts.Open(
    rule_id=RULE_ID,
    rule_version=3,
    device_id=uuid4(),
    sensor="temp",
    severity=api.Severity.MINOR,
    trigger=api.AlertTrigger(value=31, ts=T0, since=T0, condition="temp > 30", rule_version=3),
)


def test_open_acknowledge_resolve_by_hand() -> None:
    user = uuid4()
    state = _alert(OPEN, alerts.Acknowledge(by=user, comment="on it"))
    assert state is not None and state.status == api.AlertStatus.ACKNOWLEDGED
    [resolved] = alerts.decide(state, alerts.Resolve(by=user, comment="fixed"))
    assert resolved == api.AlertResolved(resolution=api.Resolution.MANUAL, by=user, comment="fixed")


def test_transitions_that_do_not_apply() -> None:
    acked = _alert(OPEN, alerts.Acknowledge(by=None))
    with pytest.raises(Conflict):
        alerts.decide(acked, alerts.Acknowledge(by=None))
    done = _alert(OPEN, alerts.Resolve(by=None))
    for command in (alerts.Acknowledge(by=None), alerts.Resolve(by=None)):
        with pytest.raises(Conflict):
            alerts.decide(done, command)
    assert alerts.decide(done, alerts.Cleared(value=1, ts=T0)) == []  # a repeat: nothing
    with pytest.raises(NotFound):
        alerts.decide(None, alerts.Resolve(by=None))


def test_clearing_resolves_an_open_or_acknowledged_alert_with_the_reading() -> None:
    for state in (_alert(OPEN), _alert(OPEN, alerts.Acknowledge(by=None))):
        [e] = alerts.decide(state, alerts.Cleared(value=20, ts=T0))
        assert e == api.AlertResolved(resolution=api.Resolution.CLEARED, value=20, ts=T0)
