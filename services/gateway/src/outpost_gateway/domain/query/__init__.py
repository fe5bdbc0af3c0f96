"""Query string → ``ListQuery`` (API.md, "Collections").

One module per query style, each compiling to the contracts' filter tree:
``field_filters`` (``field__op=value``) now; ``odata`` (``$filter``, ``$select``...) beside it
later. ``paging`` reads the parameters every list shares.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from outpost_contracts.errors import validation_error
from outpost_contracts.query import ListQuery
from outpost_gateway.domain.query.field_filters import compile_field_filters
from outpost_gateway.domain.query.paging import PAGING_PARAMS, parse_paging

__all__ = ["PAGING_PARAMS", "parse_list_query", "parse_paging"]


def parse_list_query(
    params: Sequence[tuple[str, str]], *, ignore: Collection[str] = ()
) -> ListQuery:
    """Compile a list endpoint's query parameters. ``ignore`` names parameters the route reads
    itself."""
    paging = parse_paging(params)
    filters: list[tuple[str, str]] = []
    for name, value in params:
        if name in PAGING_PARAMS or name in ignore:
            continue
        if name.startswith("$"):
            raise validation_error(name, "OData query options are not supported yet")
        filters.append((name, value))
    return ListQuery(
        filter=compile_field_filters(filters),
        limit=paging.limit,
        after=paging.after,
        order=paging.order,
        include_total=paging.include_total,
    )
