"""Alerting's use cases for people: alert rules (create, get, list, change, delete), alerts
(get, list, acknowledge, resolve) and the organization's timeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_alerting.app.ports import AlertingTx, AlertingUnitOfWork
from outpost_alerting.domain import alerts, evaluation, rules
from outpost_contracts import alerting as api
from outpost_contracts.base import Empty, Event
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import NotFound, ValidationFailed, validation_error
from outpost_contracts.query import Page
from outpost_kit import aggregate, ids
from outpost_kit.aggregate import HasEvents

# Whether a DEVICE, GROUP or SITE scope's id names one of the organization's (the devices
# service answers: alerting keeps only devices locally).
ScopeExists = Callable[[RequestContext, api.RuleScope], Awaitable[bool]]


async def _any_scope(_ctx: RequestContext, _scope: api.RuleScope) -> bool:
    return True


@dataclass(frozen=True)
class Deps:
    uow: AlertingUnitOfWork
    scope_exists: ScopeExists = _any_scope


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("alerting belongs to an organization: name it with X-Organization")


def _decide_rule(state: Any, command: Any, _now: datetime) -> list[Event]:
    return rules.decide(state, command)


def _decide_alert(state: Any, command: Any, _now: datetime) -> list[Event]:
    return alerts.decide(state, command)


ALERT_RULES = aggregate.Aggregate(rules.ALERT_RULE, _decide_rule, rules.evolve)
ALERTS = aggregate.Aggregate(alerts.ALERT, _decide_alert, alerts.evolve)


async def execute_rule(
    uow: HasEvents,
    ctx: RequestContext | None,
    org_id: UUID,
    rule_id: UUID,
    command: rules.RuleCommand,
    expected_version: int | None = None,
) -> tuple[rules.AlertRule | None, list[Any]]:
    return await ALERT_RULES.execute(
        uow,
        ctx,
        stream_id=rule_id,
        command=command,
        org_id=org_id,
        expected_version=expected_version,
    )


async def execute_alert(
    uow: HasEvents,
    ctx: RequestContext | None,
    org_id: UUID,
    alert_id: UUID,
    command: alerts.AlertCommand,
    expected_version: int | None = None,
) -> list[Any]:
    _state, envelopes = await ALERTS.execute(
        uow,
        ctx,
        stream_id=alert_id,
        command=command,
        org_id=org_id,
        expected_version=expected_version,
    )
    return envelopes


async def _rule(uow: AlertingTx, rule_id: UUID) -> api.AlertRuleView:
    view = await uow.rule(rule_id)
    if view is None:
        raise NotFound("no such alert rule")
    return view


async def _alert(uow: AlertingTx, alert_id: UUID) -> api.AlertView:
    view = await uow.alert(alert_id)
    if view is None:
        raise NotFound("no such alert")
    return view


async def _check_scope(deps: Deps, ctx: RequestContext, scope: api.RuleScope) -> None:
    if scope.type != api.ScopeType.ORGANIZATION and not await deps.scope_exists(ctx, scope):
        raise validation_error("scope.id", f"no such {scope.type.value.lower()}")


# --- rules ------------------------------------------------------------------------------


async def create_rule(
    deps: Deps, ctx: RequestContext, cmd: api.CreateAlertRule
) -> api.AlertRuleView:
    _tenant(ctx)
    rules.check_scope(cmd.scope)
    await _check_scope(deps, ctx, cmd.scope)
    rule_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        state, _ = await execute_rule(uow, ctx, ctx.org_id, rule_id, cmd)
        assert state is not None
        await _watch_new_scope(uow, ctx.org_id, state)
        view = await _rule(uow, rule_id)
        await uow.commit()
    return view


async def _watch_new_scope(uow: AlertingTx, org_id: UUID, state: rules.AlertRule) -> None:
    """A ``nodata`` rule watches every device of its scope from now on, readings or not
    (a device that never reports is the case it is for)."""
    if state.condition.op != "nodata" or not state.enabled:
        return
    assert state.sensor is not None  # the domain requires one for nodata
    rule = evaluation.Rule(
        id=state.id,
        version=state.version,
        sensor=state.sensor,
        condition=state.condition,
        enabled=state.enabled,
    )
    now = ids.now()
    devices = await uow.devices_in_scope(state.scope.type, state.scope.id)
    pairs = [(state.id, d) for d in devices]
    current = await uow.lock_watches(org_id, pairs)
    fresh = {
        pair: evaluation.rule_changed(rule, current[pair], now)
        if pair in current
        else evaluation.start(rule, now)
        for pair in pairs
    }
    await uow.save_watches(org_id, fresh)


async def get_rule(deps: Deps, ctx: RequestContext, q: api.ById) -> api.AlertRuleView:
    async with deps.uow(ctx.org_id) as uow:
        return await _rule(uow, q.id)


async def list_rules(deps: Deps, ctx: RequestContext, q: api.ListOf) -> Page[api.AlertRuleView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.rules(q.query)


async def update_rule(
    deps: Deps, ctx: RequestContext, cmd: api.UpdateAlertRule
) -> api.AlertRuleView:
    _tenant(ctx)
    if isinstance(cmd.patch.scope, api.RuleScope):
        rules.check_scope(cmd.patch.scope)
        await _check_scope(deps, ctx, cmd.patch.scope)
    async with deps.uow(ctx.org_id) as uow:
        await _require_rule(uow, cmd.id)
        state, envelopes = await execute_rule(
            uow, ctx, ctx.org_id, cmd.id, cmd.patch, cmd.expected_version
        )
        if envelopes and state is not None:
            await _watch_new_scope(uow, ctx.org_id, state)
        view = await _rule(uow, cmd.id)
        await uow.commit()
    return view


async def delete_rule(deps: Deps, ctx: RequestContext, cmd: api.DeleteById) -> Empty:
    """The rule goes, and with it its watches; its alerts that are not resolved are
    resolved (CLEARED, no value: nothing watches them any more)."""
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await _require_rule(uow, cmd.id)
        await execute_rule(uow, ctx, ctx.org_id, cmd.id, rules.Delete(), cmd.expected_version)
        for alert_id in await uow.unresolved_of_rule(cmd.id):
            await execute_alert(uow, ctx, ctx.org_id, alert_id, alerts.Cleared())
        await uow.forget_rule(cmd.id)
        await uow.commit()
    return Empty()


async def _require_rule(uow: AlertingTx, rule_id: UUID) -> None:
    """404 before anything else (If-Match included) for what this tenant cannot see."""
    state, _version = await ALERT_RULES.load(uow, rule_id)
    if state is None or state.deleted:
        raise NotFound("no such alert rule")


# --- alerts -----------------------------------------------------------------------------


async def get_alert(deps: Deps, ctx: RequestContext, q: api.ById) -> api.AlertView:
    async with deps.uow(ctx.org_id) as uow:
        return await _alert(uow, q.id)


async def list_alerts(deps: Deps, ctx: RequestContext, q: api.ListOf) -> Page[api.AlertView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.alerts(q.query)


async def acknowledge_alert(deps: Deps, ctx: RequestContext, cmd: api.AlertAction) -> api.AlertView:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await _alert(uow, cmd.id)
        command = alerts.Acknowledge(by=ctx.principal.id, comment=cmd.comment)
        await execute_alert(uow, ctx, ctx.org_id, cmd.id, command, cmd.expected_version)
        view = await _alert(uow, cmd.id)
        await uow.commit()
    return view


async def resolve_alert(deps: Deps, ctx: RequestContext, cmd: api.AlertAction) -> api.AlertView:
    """Resolved by hand: the rule fires again for this device only once the value has
    cleared (evaluation's watch is told in the same transaction)."""
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        found = await _alert(uow, cmd.id)
        pair = (found.rule_id, found.device_id)
        watches = await uow.lock_watches(ctx.org_id, [pair])
        command = alerts.Resolve(by=ctx.principal.id, comment=cmd.comment)
        await execute_alert(uow, ctx, ctx.org_id, cmd.id, command, cmd.expected_version)
        if pair in watches:
            await uow.save_watches(ctx.org_id, {pair: evaluation.resolved_by_hand(watches[pair])})
        view = await _alert(uow, cmd.id)
        await uow.commit()
    return view


# --- the timeline -----------------------------------------------------------------------


async def list_events(deps: Deps, ctx: RequestContext, q: api.ListOf) -> Page[api.TimelineEntry]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.timeline(q.query)


HANDLERS: dict[Any, Any] = {
    api.CREATE_RULE: create_rule,
    api.GET_RULE: get_rule,
    api.LIST_RULES: list_rules,
    api.UPDATE_RULE: update_rule,
    api.DELETE_RULE: delete_rule,
    api.GET_ALERT: get_alert,
    api.LIST_ALERTS: list_alerts,
    api.ACKNOWLEDGE_ALERT: acknowledge_alert,
    api.RESOLVE_ALERT: resolve_alert,
    api.LIST_EVENTS: list_events,
}
