"""The parameters and headers routes share, declared once: the paging parameters of every
collection GET (``Listing``), ``If-Match`` and the ``ETag`` a versioned answer carries.

``Listing`` is a dependency: a handler that names it documents ``limit``, ``after``,
``order`` and ``include`` (Litestar documents a dependency's parameters as the route's) and
has them checked, and gets the raw query, which the domain's parser reads whole (every
filter parameter too) in ``rendering.fetch_list``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter, SkipValidation

from outpost_contracts.errors import validation_error
from outpost_contracts.query import DEFAULT_LIMIT, MAX_LIMIT
from outpost_gateway.app.ports import Backend

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size, 1–{MAX_LIMIT}")]
After = Annotated[
    str | None, QueryParameter(description="The id of the last item of the previous page")
]
Order = Annotated[Literal["ASC", "DESC"], QueryParameter(description="Creation order")]
Include = Annotated[
    str | None, QueryParameter(description="`totalCount` to add the number of matching items")
]
DEFAULT = DEFAULT_LIMIT
Explain = Annotated[
    bool,
    QueryParameter(
        description="`true` adds `explain`: the source of each key of the desired state"
    ),
]

QueryItems = list[tuple[str, str]]


def provide_listing(
    request: Request[Any, Any, Any],
    backend: NamedDependency[SkipValidation[Backend]],
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> QueryItems:
    """The dependency ``listing``: the request's query parameters, in order. ``backend`` is
    not used: naming it makes Litestar resolve this provider after the others, not
    concurrently with them (see ``security.provide_backend``)."""
    return list(request.query_params.multi_items())


Listing = NamedDependency[SkipValidation[QueryItems]]

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='`"<version>"` from the ETag: the change applies only to that version',
    ),
]


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true of '²', which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` names (``"3"``, ``W/"3"``); None for no header or ``*``."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not is_number(text):
        raise validation_error("If-Match", 'must be an ETag of this resource, e.g. "3"')
    return int(text)


def etag(version: int) -> dict[str, str]:
    """The headers of an answer carrying an object at ``version``."""
    return {"ETag": f'"{version}"'}


def etag_header(description: str) -> list[ResponseHeader]:
    """The ``ETag`` response header, as a route documents it."""
    return [ResponseHeader(name="ETag", description=description, documentation_only=True)]


# The OData filter of a bulk change (devices); on collection GETs every OData option is
# documented by ``openapi._query_options``.
Filter = Annotated[
    str | None,
    QueryParameter(name="$filter", description="OData filter, e.g. `name eq 'gw-1'`"),
]
