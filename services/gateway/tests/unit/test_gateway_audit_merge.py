"""Merging per-service audit pages: the result equals one table's page."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from uuid import UUID

import pytest

from outpost_contracts.audit import AuditEntry
from outpost_contracts.query import ListQuery, Page
from outpost_gateway.domain.audit import merge_pages

pytestmark = pytest.mark.unit


def _entry(i: int, service: str) -> AuditEntry:
    return AuditEntry(
        id=UUID(int=i),
        service=service,
        type=f"{service}.X.v1",
        stream_type="x",
        stream_id=UUID(int=1),
        version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _page_of(entries: list[AuditEntry], q: ListQuery) -> Page[AuditEntry]:
    """What one service answers: its entries after ``after`` in order, ``limit`` of them."""
    ordered = sorted(entries, key=lambda e: e.id, reverse=q.order == "DESC")
    if q.after is not None:
        a = UUID(q.after)
        ordered = [e for e in ordered if (e.id > a if q.order == "ASC" else e.id < a)]
    return Page(
        data=ordered[: q.limit],
        limit=q.limit,
        after=q.after,
        order=q.order,
        has_more=len(ordered) > q.limit,
        total_count=len(entries),
    )


@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_paging_the_merge_visits_every_entry_once_in_order(order: str) -> None:
    rng = random.Random(3)
    services = ["identity", "devices", "readings"]
    shards = {s: [] for s in services}  # type: dict[str, list[AuditEntry]]
    for i in rng.sample(range(1, 1000), 37):
        s = rng.choice(services)
        shards[s].append(_entry(i, s))
    everything = sorted(
        (e for es in shards.values() for e in es), key=lambda e: e.id, reverse=order == "DESC"
    )
    seen: list[AuditEntry] = []
    after = None
    while True:
        q = ListQuery(limit=5, after=after, order=order, include_total=True)  # type: ignore[arg-type]
        page = merge_pages([_page_of(shards[s], q) for s in services], q)
        assert page.total_count == 37
        seen.extend(page.data)
        if not page.has_more:
            break
        after = str(page.data[-1].id)
    assert seen == everything
