"""Alerting's use cases for people over the fake unit of work (``alerting_fakes.py``), no
Postgres: what a rule's creation, change and deletion do to evaluation's watches and to the
rule's alerts, what resolving by hand tells the watch, and what a refusal leaves behind."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import pytest
from alerting_fakes import Device, FakeAlerting

from outpost_alerting.app import handlers
from outpost_alerting.domain import evaluation
from outpost_contracts import alerting as api
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound, PreconditionFailed
from outpost_kit import ids

pytestmark = pytest.mark.unit

USER = uuid.uuid4()


def _ctx(org: uuid.UUID) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.USER, id=USER, org_id=org, role="admin"),
    )


@pytest.fixture
def fake() -> FakeAlerting:
    return FakeAlerting()


@pytest.fixture
def deps(fake: FakeAlerting) -> handlers.Deps:
    return handlers.Deps(uow=fake)


def _rule(
    scope: api.RuleScope, condition: api.Condition, *, enabled: bool = True
) -> api.CreateAlertRule:
    return api.CreateAlertRule(
        name="temp watch",
        scope=scope,
        sensor="temp",
        condition=condition,
        severity=api.Severity.WARNING,
        enabled=enabled,
    )


def _nodata(scope: api.RuleScope, *, enabled: bool = True) -> api.CreateAlertRule:
    return _rule(scope, api.Condition(op="nodata", seconds=60), enabled=enabled)


def _above(scope: api.RuleScope) -> api.CreateAlertRule:
    return _rule(scope, api.Condition(op=">", threshold=30))


async def _open_alert(
    fake: FakeAlerting, org: uuid.UUID, rule: api.AlertRuleView, device: uuid.UUID
) -> uuid.UUID:
    """An alert as evaluation opens it, its watch firing."""
    alert_id = ids.new_id()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    trigger = api.AlertTrigger(
        value=31.0, ts=now, since=now, condition="temp > 30", rule_version=rule.version
    )
    opened = api.AlertOpened(
        rule_id=rule.id,
        rule_version=rule.version,
        device_id=device,
        sensor="temp",
        severity=rule.severity,
        trigger=trigger,
    )
    async with fake(org) as tx:
        await tx.events.append(
            org_id=org,
            stream_id=alert_id,
            stream_type=handlers.ALERTS.stream_type,
            expected_version=0,
            events=[opened],
        )
        watch = evaluation.Watch(rule_version=rule.version, firing=True, since=now)
        await tx.save_watches(org, {(rule.id, device): watch})
        await tx.commit()
    return alert_id


async def test_a_nodata_rule_watches_every_device_of_its_scope_from_its_creation(
    fake: FakeAlerting, deps: handlers.Deps
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    group = uuid.uuid4()
    in_group, elsewhere, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fake.world.devices = {
        in_group: Device(org, group_id=group),
        elsewhere: Device(org),
        gone: Device(org, group_id=group, decommissioned=True),
        uuid.uuid4(): Device(other, group_id=group),
    }
    scope = api.RuleScope(type=api.ScopeType.GROUP, id=group)
    rule = await handlers.create_rule(deps, _ctx(org), _nodata(scope))
    assert set(fake.watches(org)) == {(rule.id, in_group)}
    assert fake.watches(org)[(rule.id, in_group)].due_at is not None
    assert fake.watches(other) == {}
    # A threshold rule waits for readings, and a disabled one watches nothing yet.
    await handlers.create_rule(deps, _ctx(org), _above(scope))
    await handlers.create_rule(deps, _ctx(org), _nodata(scope, enabled=False))
    assert set(fake.watches(org)) == {(rule.id, in_group)}


async def test_deleting_a_rule_clears_its_open_alerts_and_forgets_its_watches(
    fake: FakeAlerting, deps: handlers.Deps
) -> None:
    org = uuid.uuid4()
    ctx = _ctx(org)
    scope = api.RuleScope(type=api.ScopeType.ORGANIZATION)
    doomed = await handlers.create_rule(deps, ctx, _above(scope))
    kept = await handlers.create_rule(deps, ctx, _above(scope))
    device = uuid.uuid4()
    first = await _open_alert(fake, org, doomed, device)
    survivor = await _open_alert(fake, org, kept, device)
    await handlers.delete_rule(deps, ctx, api.DeleteById(id=doomed.id))
    cleared = await handlers.get_alert(deps, ctx, api.ById(id=first))
    assert cleared.status == api.AlertStatus.RESOLVED
    assert cleared.resolution == api.Resolution.CLEARED and cleared.clear_value is None
    assert (await handlers.get_alert(deps, ctx, api.ById(id=survivor))).status == (
        api.AlertStatus.OPEN
    )
    assert set(fake.watches(org)) == {(kept.id, device)}
    with pytest.raises(NotFound):
        await handlers.get_rule(deps, ctx, api.ById(id=doomed.id))


async def test_resolving_by_hand_disarms_the_watch_in_the_same_transaction(
    fake: FakeAlerting, deps: handlers.Deps
) -> None:
    org = uuid.uuid4()
    ctx = _ctx(org)
    rule = await handlers.create_rule(
        deps, ctx, _above(api.RuleScope(type=api.ScopeType.ORGANIZATION))
    )
    device = uuid.uuid4()
    alert_id = await _open_alert(fake, org, rule, device)
    view = await handlers.resolve_alert(deps, ctx, api.AlertAction(id=alert_id, comment="fixed"))
    assert view.status == api.AlertStatus.RESOLVED and view.resolution == api.Resolution.MANUAL
    assert view.resolved_by == USER and view.resolve_comment == "fixed"
    watch = fake.watches(org)[(rule.id, device)]
    assert not watch.firing and not watch.armed


async def test_another_organizations_rule_and_alert_are_not_found_and_a_refusal_leaves_nothing(
    fake: FakeAlerting, deps: handlers.Deps
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    rule = await handlers.create_rule(
        deps, _ctx(org), _above(api.RuleScope(type=api.ScopeType.ORGANIZATION))
    )
    alert_id = await _open_alert(fake, org, rule, uuid.uuid4())
    with pytest.raises(NotFound):
        await handlers.get_rule(deps, _ctx(other), api.ById(id=rule.id))
    with pytest.raises(NotFound):
        await handlers.delete_rule(deps, _ctx(other), api.DeleteById(id=rule.id))
    with pytest.raises(NotFound):
        await handlers.acknowledge_alert(deps, _ctx(other), api.AlertAction(id=alert_id))
    # A stale If-Match on the delete: nothing of it stays (its alerts stay open, its watch).
    with pytest.raises(PreconditionFailed):
        await handlers.delete_rule(
            deps, _ctx(org), api.DeleteById(id=rule.id, expected_version=rule.version + 1)
        )
    assert (await handlers.get_rule(deps, _ctx(org), api.ById(id=rule.id))).version == rule.version
    assert (await handlers.get_alert(deps, _ctx(org), api.ById(id=alert_id))).status == (
        api.AlertStatus.OPEN
    )
    assert len(fake.watches(org)) == 1
