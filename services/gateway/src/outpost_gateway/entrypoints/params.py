"""Query parameters every list route documents. The domain's parser reads them (and every
filter parameter) again from the raw query string; these declarations are for the OpenAPI
document and agree with it."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar.params import QueryParameter

from outpost_contracts.query import DEFAULT_LIMIT, MAX_LIMIT

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size, 1–{MAX_LIMIT}")]
After = Annotated[
    str | None, QueryParameter(description="The id of the last item of the previous page")
]
Order = Annotated[Literal["ASC", "DESC"], QueryParameter(description="Creation order")]
Include = Annotated[
    str | None, QueryParameter(description="`totalCount` to add the number of matching items")
]
DEFAULT = DEFAULT_LIMIT

# OData query options (docs/api.md, "Collections"); the Python names differ, the query keys do not.
Filter = Annotated[
    str | None,
    QueryParameter(name="$filter", description="OData filter, e.g. `name eq 'gw-1'`"),
]
Select = Annotated[
    str | None,
    QueryParameter(name="$select", description="Comma-separated fields to return (id always)"),
]
Expand = Annotated[
    str | None,
    QueryParameter(name="$expand", description="Relations to expand, e.g. `tags($select=key)`"),
]
OrderBy = Annotated[
    str | None,
    QueryParameter(name="$orderby", description="e.g. `name desc,createdAt`; pages with $skip"),
]
# $top, $skip and $count are declared as text so that the domain's parser, not the framework,
# checks them and names them as clients spell them.
Top = Annotated[
    str | None,
    QueryParameter(name="$top", description=f"Page size, 1–{MAX_LIMIT}, like limit"),
]
Skip = Annotated[str | None, QueryParameter(name="$skip", description="Items to skip (≥ 0)")]
Count = Annotated[str | None, QueryParameter(name="$count", description="`true` to add totalCount")]
