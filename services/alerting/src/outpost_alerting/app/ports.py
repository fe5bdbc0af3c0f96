"""What alerting's use cases for people need of storage, as ports (ADR 0089, the shape of
devices' ADR 0085): a unit of work opened per tenant that carries the event stream (for the
kit's ``Aggregate``) and the reads and writes of the rules' and alerts' read models and of
evaluation's watches. Postgres implements them in ``adapters/store.py``; unit tests use the
fake in ``tests/unit/alerting_fakes.py``. No SQL and no driver type here.

Evaluation, the notification channels and the delivery worker still take the kit's unit of
work and call their adapters with its connection (ADR 0089 says why)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from outpost_alerting.domain.evaluation import Watch
from outpost_contracts import alerting as api
from outpost_contracts.query import ListQuery, Page
from outpost_kit.aggregate import EventStream

Pair = tuple[UUID, UUID]  # (rule, device): one watch


class AlertingTx(Protocol):
    """One transaction in one tenant; leaving it without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    # --- the read models ----------------------------------------------------------------

    async def rule(self, rule_id: UUID) -> api.AlertRuleView | None:
        """The rule as the read model holds it (None: none, deleted, or another tenant's)."""
        ...

    async def rules(self, query: ListQuery) -> Page[api.AlertRuleView]: ...

    async def alert(self, alert_id: UUID) -> api.AlertView | None: ...

    async def alerts(self, query: ListQuery) -> Page[api.AlertView]: ...

    async def timeline(self, query: ListQuery) -> Page[api.TimelineEntry]: ...

    async def unresolved_of_rule(self, rule_id: UUID) -> list[UUID]:
        """The ids of the rule's alerts not resolved yet, in id order."""
        ...

    # --- evaluation's watches -----------------------------------------------------------

    async def devices_in_scope(
        self, scope_type: api.ScopeType, scope_id: UUID | None
    ) -> list[UUID]:
        """The devices (not decommissioned) a rule of that scope watches."""
        ...

    async def lock_watches(self, org_id: UUID, pairs: list[Pair]) -> dict[Pair, Watch]:
        """The watches of ``pairs`` that exist, locked until the transaction ends."""
        ...

    async def save_watches(self, org_id: UUID, watches: Mapping[Pair, Watch]) -> None: ...

    async def forget_rule(self, rule_id: UUID) -> None:
        """A deleted rule's watches and timers."""
        ...


class AlertingUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[AlertingTx]: ...
