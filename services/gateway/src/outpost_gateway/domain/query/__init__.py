"""Query string → ``ListQuery`` (docs/api.md, "Collections").

One module per query style, each compiling to the contracts' filter tree:
``field_filters`` (``field__op=value``) and ``odata`` (``$filter``, ``$select``...). Both may
be given at once: their filters are AND-ed. ``paging`` reads the parameters every list shares;
``shape`` applies ``$select``/``$expand`` to rendered resources.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from outpost_contracts.errors import validation_error
from outpost_contracts.query import And, ListQuery, Node
from outpost_gateway.domain.query.field_filters import compile_field_filters
from outpost_gateway.domain.query.odata import (
    FILTER,
    SINGLE_RESOURCE_PARAMS,
    TOP,
    check_size,
    parse_odata,
)
from outpost_gateway.domain.query.paging import PAGING_PARAMS, parse_paging
from outpost_gateway.domain.query.shape import Resource, Shape, check_shape

__all__ = [
    "PAGING_PARAMS",
    "Resource",
    "Shape",
    "parse_list_query",
    "parse_list_request",
    "parse_paging",
    "parse_single_request",
]


def _merge(a: Node | None, b: Node | None) -> Node | None:
    if a is None or b is None:
        return a or b
    items = [*(a.items if isinstance(a, And) else [a]), *(b.items if isinstance(b, And) else [b])]
    return check_size(And(items=items), FILTER)


def parse_list_request(
    params: Sequence[tuple[str, str]],
    resource: Resource | None = None,
    *,
    ignore: Collection[str] = (),
) -> tuple[ListQuery, Shape]:
    """Compile a list endpoint's query parameters, and the shape of its items. ``ignore``
    names parameters the route reads itself; ``resource`` (when given) checks ``$select`` and
    ``$expand``."""
    paging = parse_paging(params)
    odata = parse_odata(params)
    filters: list[tuple[str, str]] = []
    for name, value in params:
        if name in PAGING_PARAMS or name in ignore or name.startswith("$"):
            continue
        filters.append((name, value))
    if odata.top is not None and any(k == "limit" for k, _ in params):
        raise validation_error(TOP, "give limit or $top, not both")
    shape = (
        check_shape(odata.select, odata.expand, resource)
        if resource is not None
        else Shape(select=odata.select, expand=list(odata.expand or []))
    )
    query = ListQuery(
        filter=_merge(compile_field_filters(filters), odata.filter),
        limit=odata.top if odata.top is not None else paging.limit,
        after=paging.after,
        order=paging.order,
        order_by=odata.order_by,
        skip=odata.skip,
        select=odata.select,
        expand=[e.name for e in odata.expand] if odata.expand is not None else None,
        include_total=paging.include_total or odata.count,
    )
    return query, shape


def parse_list_query(
    params: Sequence[tuple[str, str]], *, ignore: Collection[str] = ()
) -> ListQuery:
    """``parse_list_request`` without the shape."""
    return parse_list_request(params, ignore=ignore)[0]


def parse_single_request(params: Sequence[tuple[str, str]], resource: Resource) -> Shape:
    """A single resource's query: only ``$select`` and ``$expand``."""
    odata = parse_odata(params, allowed=SINGLE_RESOURCE_PARAMS)
    for name, _ in params:
        if not name.startswith("$"):
            raise validation_error(name, "unknown query parameter")
    return check_shape(odata.select, odata.expand, resource)
