"""Alerting's fake unit of work, for the unit tests of the use cases for people (the kit's
``outpost_devkit.testing.fakes``, ADR 0089): ``FakeAlerting`` is the ``AlertingUnitOfWork``
port of ``app/ports.py`` held in memory, with the read models ``adapters/projections.py``
keeps of rules and alerts, evaluation's watches and the devices a scope names. The Postgres
adapter (``adapters/store.py``) is what the integration tests cover; the timeline is not
faked (it is covered there)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

import msgspec

from outpost_alerting.adapters.evaluation_store import SCOPE_COLUMNS
from outpost_alerting.app.ports import Pair
from outpost_alerting.domain.evaluation import Watch
from outpost_contracts import alerting as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
    update_row,
)


@dataclass(frozen=True)
class Device:
    org_id: UUID
    group_id: UUID | None = None
    site_id: UUID | None = None
    decommissioned: bool = False


@dataclass
class World(FakeWorld):
    rules: dict[UUID, tuple[UUID, api.AlertRuleView]] = field(default_factory=dict)
    alerts: dict[UUID, tuple[UUID, api.AlertView]] = field(default_factory=dict)
    watches: dict[tuple[UUID, UUID, UUID], Watch] = field(default_factory=dict)
    devices: dict[UUID, Device] = field(default_factory=dict)


def _rule_fields(data: api.AlertRuleCreated | api.AlertRuleUpdated) -> dict[str, object]:
    names = {f.name for f in msgspec.structs.fields(api.AlertRuleView)}
    return {
        f.name: getattr(data, f.name)
        for f in msgspec.structs.fields(data)
        if f.name in names and f.name not in ("id", "version")
    } | {"channel_ids": list(data.channel_ids)}


def _project(w: World, e: EventEnvelope) -> None:
    """What ``AlertingProjector`` does in SQL, on the world (the timeline aside)."""
    data, key, at, v = e.data, e.stream_id, e.occurred_at, e.version
    if isinstance(data, api.AlertRuleCreated):
        view = api.AlertRuleView(
            id=key, version=v, created_at=at, updated_at=at, **_rule_fields(data)
        )  # type: ignore[arg-type]
        w.rules[key] = (e.org_id, view)
    elif isinstance(data, api.AlertRuleUpdated):
        update_row(w.rules, key, version=v, updated_at=at, **_rule_fields(data))
    elif isinstance(data, api.AlertRuleDeleted):
        w.rules.pop(key, None)
    elif isinstance(data, api.AlertOpened):
        alert = api.AlertView(
            id=key,
            version=v,
            rule_id=data.rule_id,
            rule_version=data.rule_version,
            device_id=data.device_id,
            sensor=data.sensor,
            status=api.AlertStatus.OPEN,
            severity=data.severity,
            opened_at=at,
            trigger=data.trigger,
        )
        w.alerts[key] = (e.org_id, alert)
    elif isinstance(data, api.AlertAcknowledged):
        update_row(
            w.alerts, key, status=api.AlertStatus.ACKNOWLEDGED, acknowledged_at=at, version=v
        )
        update_row(w.alerts, key, acknowledged_by=data.by, acknowledge_comment=data.comment)
    elif isinstance(data, api.AlertResolved):
        update_row(w.alerts, key, status=api.AlertStatus.RESOLVED, resolved_at=at, version=v)
        update_row(w.alerts, key, resolved_by=data.by, resolve_comment=data.comment)
        update_row(w.alerts, key, resolution=data.resolution, clear_value=data.value)


class FakeTx(FakeUnitOfWork[World]):
    """One transaction of ``FakeAlerting``; ``tenant`` plays row-level security."""

    def project(self, envelope: EventEnvelope) -> None:
        _project(self.w, envelope)

    def _rules(self) -> list[api.AlertRuleView]:
        return [v for org, v in self.w.rules.values() if self.visible(org)]

    def _alerts(self) -> list[api.AlertView]:
        return [v for org, v in self.w.alerts.values() if self.visible(org)]

    async def rule(self, rule_id: UUID) -> api.AlertRuleView | None:
        return next((v for v in self._rules() if v.id == rule_id), None)

    async def rules(self, query: ListQuery) -> Page[api.AlertRuleView]:
        return first_page(self._rules(), query, key=lambda v: v.id)

    async def alert(self, alert_id: UUID) -> api.AlertView | None:
        return next((v for v in self._alerts() if v.id == alert_id), None)

    async def alerts(self, query: ListQuery) -> Page[api.AlertView]:
        return first_page(self._alerts(), query, key=lambda v: v.id)

    async def timeline(self, query: ListQuery) -> Page[api.TimelineEntry]:
        raise NotImplementedError

    async def unresolved_of_rule(self, rule_id: UUID) -> list[UUID]:
        return sorted(
            a.id
            for a in self._alerts()
            if a.rule_id == rule_id and a.status != api.AlertStatus.RESOLVED
        )

    async def devices_in_scope(
        self, scope_type: api.ScopeType, scope_id: UUID | None
    ) -> list[UUID]:
        column = SCOPE_COLUMNS[scope_type]
        return sorted(
            key
            for key, d in self.w.devices.items()
            if self.visible(d.org_id)
            and not d.decommissioned
            and (column is None or (key if column == "id" else getattr(d, column)) == scope_id)
        )

    async def lock_watches(self, org_id: UUID, pairs: list[Pair]) -> dict[Pair, Watch]:
        found = {pair: self.w.watches.get((org_id, *pair)) for pair in pairs}
        return {pair: watch for pair, watch in found.items() if watch is not None}

    async def save_watches(self, org_id: UUID, watches: Mapping[Pair, Watch]) -> None:
        for pair, watch in watches.items():
            self.w.watches[(org_id, *pair)] = watch

    async def forget_rule(self, rule_id: UUID) -> None:
        for key in [k for k in self.w.watches if k[1] == rule_id]:
            del self.w.watches[key]


class FakeAlerting(FakeUnitOfWorkFactory[World, FakeTx]):
    """The ``AlertingUnitOfWork`` of the unit tests: ``world`` is what Postgres would hold."""

    def __init__(self) -> None:
        super().__init__(World(), FakeTx)

    def watches(self, org_id: UUID) -> dict[Pair, Watch]:
        return {(r, d): w for (o, r, d), w in self.world.watches.items() if o == org_id}
