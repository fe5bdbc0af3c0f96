"""The Postgres adapter of ``app/ports.py`` (ADR 0089): the kit's ``UnitOfWork`` with the
statements of alerting's use cases for people, over the read models' collections
(``queries.py``) and evaluation's watches (``evaluation_store.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from outpost_alerting.adapters import evaluation_store, queries
from outpost_alerting.app.ports import Pair
from outpost_alerting.domain.evaluation import Watch
from outpost_contracts import alerting as api
from outpost_contracts.query import ListQuery, Page
from outpost_kit.db.listing import Collection, get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory


class PgAlertingTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with alerting's statements."""

    async def __aenter__(self) -> PgAlertingTx:
        await super().__aenter__()
        return self

    async def _one(self, collection: Collection, key: UUID) -> Mapping[str, Any] | None:
        return await get_one(self.conn, collection, key)

    async def rule(self, rule_id: UUID) -> api.AlertRuleView | None:
        row = await self._one(queries.RULES, rule_id)
        return None if row is None else queries.rule_view(row)

    async def rules(self, query: ListQuery) -> Page[api.AlertRuleView]:
        return await list_page(self.conn, queries.RULES, query, queries.rule_view)

    async def alert(self, alert_id: UUID) -> api.AlertView | None:
        row = await self._one(queries.ALERTS, alert_id)
        return None if row is None else queries.alert_view(row)

    async def alerts(self, query: ListQuery) -> Page[api.AlertView]:
        return await list_page(self.conn, queries.ALERTS, query, queries.alert_view)

    async def timeline(self, query: ListQuery) -> Page[api.TimelineEntry]:
        return await list_page(self.conn, queries.TIMELINE, query, queries.timeline_view)

    async def unresolved_of_rule(self, rule_id: UUID) -> list[UUID]:
        return await evaluation_store.unresolved_of_rule(self.conn, rule_id)

    async def devices_in_scope(
        self, scope_type: api.ScopeType, scope_id: UUID | None
    ) -> list[UUID]:
        return await evaluation_store.devices_in_scope(self.conn, scope_type, scope_id)

    async def lock_watches(self, org_id: UUID, pairs: list[Pair]) -> dict[Pair, Watch]:
        return await evaluation_store.lock_watches(self.conn, org_id, pairs)

    async def save_watches(self, org_id: UUID, watches: Mapping[Pair, Watch]) -> None:
        await evaluation_store.save_watches(self.conn, org_id, watches)

    async def forget_rule(self, rule_id: UUID) -> None:
        await evaluation_store.forget_rule(self.conn, rule_id)


class PgAlerting(UnitOfWorkFactory):
    """The ``AlertingUnitOfWork`` bootstrap hands to the use cases: the kit's factory, whose
    units of work carry alerting's statements (``PgAlerting.over(runtime.uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgAlertingTx:
        return PgAlertingTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
