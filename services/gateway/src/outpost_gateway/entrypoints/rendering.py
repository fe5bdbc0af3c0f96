"""How replies become HTTP bodies."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

import msgspec

from outpost_contracts.query import ListQuery, Page

T = TypeVar("T")


class ListOf(msgspec.Struct, Generic[T], kw_only=True, rename="camel"):
    """API.md's list shape, every key always present except ``totalCount``, which appears
    only when asked for with ``include=totalCount``."""

    object: Literal["list"] = "list"
    data: list[T]
    limit: int
    after: str | None
    order: Literal["ASC", "DESC"]
    has_more: bool
    total_count: int | msgspec.UnsetType = msgspec.UNSET


def render_page(page: Page[T], *, include_total: bool) -> ListOf[T]:
    total: int | msgspec.UnsetType = msgspec.UNSET
    if include_total and page.total_count is not None:
        total = page.total_count
    return ListOf(
        data=page.data,
        limit=page.limit,
        after=page.after,
        order=page.order,
        has_more=page.has_more,
        total_count=total,
    )


def render_list(page: Page[T], query: ListQuery) -> ListOf[T]:
    return render_page(page, include_total=query.include_total)
