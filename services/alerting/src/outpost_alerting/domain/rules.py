"""Alert rules as a decider: create, change (a new version, whole), delete. No I/O, no clock,
no ids made here. What needs the read model (a scope's group, site or device exists, the
channels exist) is checked by the handlers in the same transaction."""

from __future__ import annotations

from uuid import UUID

import msgspec

from outpost_alerting.domain.conditions import check_rule
from outpost_contracts import alerting as api
from outpost_contracts.base import Event
from outpost_contracts.errors import NotFound, validation_error

ALERT_RULE = "alert_rule"

# API name → attribute, in the order ``AlertRuleUpdated.changed`` lists them.
FIELDS = {
    "name": "name",
    "scope": "scope",
    "sensor": "sensor",
    "condition": "condition",
    "severity": "severity",
    "forSeconds": "for_seconds",
    "clear": "clear",
    "hysteresis": "hysteresis",
    "enabled": "enabled",
    "channelIds": "channel_ids",
    "description": "description",
}


class AlertRule(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    name: str
    scope: api.RuleScope
    sensor: str | None  # None: an ``offline`` rule without one
    condition: api.Condition
    severity: api.Severity
    for_seconds: int = 0
    clear: api.Condition | None = None
    hysteresis: float | None = None
    enabled: bool = True
    channel_ids: list[UUID] = msgspec.field(default_factory=list)
    description: str | None = None
    deleted: bool = False


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    """Delete the rule (DELETE)."""


RuleCommand = api.CreateAlertRule | api.AlertRulePatch | Delete


def check_scope(scope: api.RuleScope) -> None:
    if scope.type == api.ScopeType.ORGANIZATION:
        if scope.id is not None:
            raise validation_error("scope.id", "not allowed with ORGANIZATION")
    elif scope.id is None:
        raise validation_error("scope.id", f"required with {scope.type.value}")


def check_sensor(sensor: str | None, condition: api.Condition) -> None:
    """Every op judges a sensor's readings but ``offline``, which follows the device's
    presence: a sensor is required for the others and optional (kept as given, never
    matched by readings) for ``offline``."""
    if sensor is None and condition.op != "offline":
        raise validation_error("sensor", f"required with condition.op {condition.op!r}")


def _check(rule: api.CreateAlertRule | AlertRule) -> None:
    check_scope(rule.scope)
    check_sensor(rule.sensor, rule.condition)
    check_rule(rule.condition, rule.clear, rule.hysteresis, rule.for_seconds)
    if len(set(rule.channel_ids)) != len(rule.channel_ids):
        raise validation_error("channelIds", "lists a channel twice")


def _body(rule: api.CreateAlertRule | AlertRule) -> dict[str, object]:
    return {attr: getattr(rule, attr) for attr in FIELDS.values()}


def decide(state: AlertRule | None, command: RuleCommand) -> list[Event]:
    if isinstance(command, api.CreateAlertRule):
        _check(command)
        return [api.AlertRuleCreated(**_body(command))]  # type: ignore[arg-type]
    if state is None or state.deleted:
        raise NotFound("no such alert rule")
    if isinstance(command, Delete):
        return [api.AlertRuleDeleted()]
    changes = {
        attr: value
        for attr in FIELDS.values()
        if (value := getattr(command, attr)) is not msgspec.UNSET and value != getattr(state, attr)
    }
    if not changes:
        return []
    new = msgspec.structs.replace(state, **changes)
    _check(new)
    changed = [name for name, attr in FIELDS.items() if attr in changes]
    return [api.AlertRuleUpdated(changed=changed, **_body(new))]  # type: ignore[arg-type]


def evolve(state: AlertRule | None, event: Event, aggregate_id: UUID) -> AlertRule:
    if isinstance(event, api.AlertRuleCreated):
        return AlertRule(id=aggregate_id, version=1, **_body(event))  # type: ignore[arg-type]
    assert state is not None
    if isinstance(event, api.AlertRuleUpdated):
        return msgspec.structs.replace(state, version=state.version + 1, **_body(event))  # type: ignore[arg-type]
    if isinstance(event, api.AlertRuleDeleted):
        return msgspec.structs.replace(state, version=state.version + 1, deleted=True)
    return state
