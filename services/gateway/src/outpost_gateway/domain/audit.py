"""Merging the audit log's per-service pages into one page.

Each service returns up to ``limit`` entries after the same ``after`` id in the same order;
the first ``limit`` of their merge by id (UUIDv7, so time order) is exactly the page a single
table would have given."""

from __future__ import annotations

from collections.abc import Sequence

from outpost_contracts.audit import AuditEntry
from outpost_contracts.query import ListQuery, Page


def merge_pages(pages: Sequence[Page[AuditEntry]], query: ListQuery) -> Page[AuditEntry]:
    entries = sorted(
        (entry for page in pages for entry in page.data),
        key=lambda e: e.id,
        reverse=query.order == "DESC",
    )
    more = len(entries) > query.limit or any(page.has_more for page in pages)
    total = sum(page.total_count or 0 for page in pages) if query.include_total else None
    return Page(
        data=entries[: query.limit],
        limit=query.limit,
        after=query.after,
        order=query.order,
        has_more=more,
        total_count=total,
    )
