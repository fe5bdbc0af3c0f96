"""How replies become HTTP bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

import msgspec

from outpost_contracts.envelope import RequestContext
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation
from outpost_gateway.app.ports import Backend
from outpost_gateway.domain.query import Resource, Shape, parse_list_request
from outpost_gateway.domain.query.shape import prune
from outpost_gateway.domain.resources import ResourceGroup

T = TypeVar("T")


class ListOf(msgspec.Struct, Generic[T], kw_only=True, rename="camel"):
    """docs/api.md's list shape, every key always present except ``totalCount``, which appears
    only when asked for with ``include=totalCount`` (or ``$count=true``)."""

    object: Literal["list"] = "list"
    data: list[T]
    limit: int
    after: str | None
    order: Literal["ASC", "DESC"]
    has_more: bool
    total_count: int | msgspec.UnsetType = msgspec.UNSET


def resource_of(
    view: type[msgspec.Struct], relations: Mapping[str, Resource] | None = None
) -> Resource:
    """A view's fields as clients see them in JSON, for ``$select``/``$expand``."""
    names = frozenset(f.encode_name for f in msgspec.structs.fields(view))
    return Resource(fields=names, relations=dict(relations or {}))


def shape_of(group: ResourceGroup) -> Resource:
    """What ``$select``/``$expand`` may name on a resource group's items."""
    return resource_of(group.view, {k: resource_of(v) for k, v in group.relations.items()})


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


def render_one(item: Any, shape: Shape | None) -> Any:
    """An item as JSON-ready data, restricted by ``$select``/``$expand``."""
    if shape is None or shape.is_full:
        return item
    return prune(msgspec.to_builtins(item), shape)


def render_list(page: Page[T], query: ListQuery, shape: Shape | None = None) -> ListOf[Any]:
    listed = render_page(page, include_total=query.include_total)
    if shape is None or shape.is_full:
        return listed
    return msgspec.structs.replace(listed, data=[render_one(d, shape) for d in listed.data])


async def fetch_list(
    params: list[tuple[str, str]],
    backend: Backend,
    ctx: RequestContext,
    op: Operation[Any, Page[Any]],
    resource: Resource,
    **fields: Any,
) -> ListOf[Any]:
    """A collection GET from start to end: the query parameters compiled (docs/api.md
    "Collections"), ``op``'s request with that query (and ``fields``), the page shaped by
    ``$select``/``$expand``."""
    query, shape = parse_list_request(params, resource)
    page = await backend.call(op, ctx, op.request(query=query, **fields))
    return render_list(page, query, shape)
