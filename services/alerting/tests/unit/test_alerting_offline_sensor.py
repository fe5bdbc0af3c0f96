"""An ``offline`` rule needs no sensor (decision 71): validation on create and on a change
of op either way, and the rule and its events as they carry no sensor. No I/O."""

from __future__ import annotations

from uuid import uuid4

import msgspec
import pytest

from outpost_alerting.domain import deliveries, rules
from outpost_alerting.domain.conditions import describe
from outpost_contracts import alerting as api
from outpost_contracts.errors import ValidationFailed

pytestmark = pytest.mark.unit
RULE_ID = uuid4()
OFFLINE = {"op": "offline", "seconds": 60}


def _body(**kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "gone",
        "scope": {"type": "ORGANIZATION"},
        "condition": OFFLINE,
        "severity": "MINOR",
    }
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


def _create(**kw: object) -> api.CreateAlertRule:
    return msgspec.convert(_body(**kw), api.CreateAlertRule)


def _rule(**kw: object) -> rules.AlertRule:
    state = None
    for e in rules.decide(None, _create(**kw)):
        state = rules.evolve(state, e, RULE_ID)
    assert state is not None
    return state


def _refused(state: rules.AlertRule | None, command: rules.RuleCommand) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        rules.decide(state, command)
    return [f.name for f in caught.value.fields]


def test_an_offline_rule_is_created_without_a_sensor() -> None:
    [created] = rules.decide(None, _create())
    assert isinstance(created, api.AlertRuleCreated) and created.sensor is None
    # The event says so on the wire (null, present) and reads back the same.
    wire = msgspec.json.encode(created)
    assert b'"sensor":null' in wire
    assert msgspec.json.decode(wire, type=api.AlertRuleCreated) == created
    assert _rule().sensor is None


def test_a_sensor_given_with_offline_is_kept_as_given() -> None:
    [created] = rules.decide(None, _create(sensor="temp"))
    assert isinstance(created, api.AlertRuleCreated) and created.sensor == "temp"


@pytest.mark.parametrize(
    "condition",
    [
        {"op": ">", "threshold": 30},
        {"op": "!=", "threshold": 0},
        {"op": "outside", "low": 1, "high": 2},
        {"op": "nodata", "seconds": 60},
    ],
)
def test_every_other_op_still_requires_a_sensor(condition: dict[str, object]) -> None:
    assert _refused(None, _create(condition=condition)) == ["sensor"]
    with pytest.raises(ValidationFailed) as caught:
        rules.decide(None, _create(condition=condition))
    assert condition["op"] in caught.value.fields[0].message


def test_changing_the_op_away_from_offline_needs_a_sensor() -> None:
    rule = _rule()
    to_compare = api.Condition(op=">", threshold=30)
    assert _refused(rule, api.AlertRulePatch(condition=to_compare)) == ["sensor"]
    [updated] = rules.decide(rule, api.AlertRulePatch(condition=to_compare, sensor="temp"))
    assert isinstance(updated, api.AlertRuleUpdated)
    assert (updated.sensor, updated.changed) == ("temp", ["sensor", "condition"])


def test_changing_the_op_to_offline_may_drop_the_sensor_or_keep_it() -> None:
    rule = _rule(sensor="temp", condition={"op": ">", "threshold": 30})
    offline = api.Condition(op="offline", seconds=120)
    [kept] = rules.decide(rule, api.AlertRulePatch(condition=offline))
    assert isinstance(kept, api.AlertRuleUpdated) and kept.sensor == "temp"
    [dropped] = rules.decide(rule, api.AlertRulePatch(condition=offline, sensor=None))
    assert isinstance(dropped, api.AlertRuleUpdated) and dropped.sensor is None
    assert dropped.changed == ["sensor", "condition"]
    # A comparison rule cannot lose its sensor.
    assert _refused(rule, api.AlertRulePatch(sensor=None)) == ["sensor"]


def test_a_patch_reads_null_sensor_as_drop_and_absent_as_keep() -> None:
    patch = msgspec.json.decode(b'{"sensor": null}', type=api.AlertRulePatch)
    assert patch.sensor is None
    assert msgspec.json.decode(b"{}", type=api.AlertRulePatch).sensor is msgspec.UNSET


def test_the_condition_in_words_names_no_sensor_for_offline() -> None:
    assert describe(None, api.Condition(op="offline", seconds=60)) == "device offline for 60s"


def test_the_email_of_an_offline_alert_without_a_sensor_has_no_sensor_line() -> None:
    envelope = {
        "id": "e-2",
        "streamId": str(uuid4()),
        "occurredAt": "2026-12-01T12:00:00Z",
        "data": {
            "type": "alerting.AlertOpened.v1",
            "ruleId": str(RULE_ID),
            "ruleVersion": 1,
            "deviceId": str(uuid4()),
            "sensor": None,
            "severity": "MINOR",
            "trigger": {
                "value": None,
                "ts": "2026-12-01T11:59:00Z",
                "since": "2026-12-01T11:59:00Z",
                "condition": "device offline for 60s",
                "ruleVersion": 1,
            },
        },
    }
    subject, text = deliveries.email_text(envelope, rule_name="gone", device_name="pump-1")
    assert subject == "[Outpost] MINOR alert opened: gone on pump-1"
    assert "Condition: device offline for 60s" in text
    assert "Sensor" not in text and "None" not in text and "Value:" not in text
