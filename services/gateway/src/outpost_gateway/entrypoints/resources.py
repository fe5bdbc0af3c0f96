"""The handlers of the resource groups (``domain/resources.py``), made from their entries.

Each verb has one handler template below; ``handlers_of`` gives a copy of it the group's
types (Litestar reads a handler's name as its operation id and its annotations as its
parameters, body and answer, and documents them) and mounts it on the group's path. The
conventions are those of docs/api.md: a list compiles the collection options
(``rendering.fetch_list``), a get takes ``$select``/``$expand`` and answers an ``ETag``, a
PATCH is a JSON merge patch and it and DELETE honour ``If-Match``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.domain.resources import RESOURCE_GROUPS, ResourceGroup, Route
from outpost_gateway.entrypoints.params import IfMatch, Listing, etag, etag_header, parse_if_match
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, shape_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
DEPS = {"ctx": Ctx, "backend": BackendDep}
DECORATORS = {"POST": post, "GET": get, "PATCH": patch, "DELETE": delete}


def _typed(generic: Any, argument: Any) -> Any:
    """``generic[argument]`` for an argument known only at run time."""
    return generic[argument]


def _handler(group: ResourceGroup, route: Route) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The function serving ``route`` and the annotations Litestar reads of it."""
    op = route.operation
    shape = shape_of(group)
    one_id = {"id": FromPath[UUID]}

    if route.verb == "create":

        async def create(data: Any, ctx: Any, backend: Any) -> Any:
            return await backend.call(op, ctx, data)

        return create, {"data": _typed(JSONBody, op.request), **DEPS, "return": op.reply}

    if route.verb == "list":

        async def list_(ctx: Any, backend: Any, listing: Any) -> Any:
            return await fetch_list(listing, backend, ctx, op, shape)

        return list_, {**DEPS, "listing": Listing, "return": _typed(ListOf, group.view)}

    if route.verb == "get" and group.versioned:

        async def get_(id: UUID, request: Req, ctx: Any, backend: Any) -> Any:
            chosen = parse_single_request(list(request.query_params.multi_items()), shape)
            view = await backend.call(op, ctx, op.request(id=id))
            return Response(render_one(view, chosen), headers=etag(view.version))

        return get_, {**one_id, "request": Req, **DEPS, "return": _typed(Response, group.view)}

    if route.verb == "get":

        async def get_unversioned(id: UUID, request: Req, ctx: Any, backend: Any) -> Any:
            chosen = parse_single_request(list(request.query_params.multi_items()), shape)
            return render_one(await backend.call(op, ctx, op.request(id=id)), chosen)

        return get_unversioned, {**one_id, "request": Req, **DEPS, "return": group.view}

    if route.verb == "update":

        async def update(id: UUID, data: Any, ctx: Any, backend: Any, if_match: Any = None) -> Any:
            cmd = op.request(id=id, patch=data, expected_version=parse_if_match(if_match))
            view = await backend.call(op, ctx, cmd)
            return Response(view, headers=etag(view.version))

        return update, {
            **one_id,
            "data": _typed(JSONBody, group.patch_body),
            **DEPS,
            "if_match": IfMatch,
            "return": _typed(Response, group.view),
        }

    if group.delete_is_versioned:

        async def delete_(id: UUID, ctx: Any, backend: Any, if_match: Any = None) -> None:
            cmd = op.request(id=id, expected_version=parse_if_match(if_match))
            await backend.call(op, ctx, cmd)

        return delete_, {**one_id, **DEPS, "if_match": IfMatch, "return": None}

    async def delete_unversioned(id: UUID, ctx: Any, backend: Any) -> None:
        await backend.call(op, ctx, op.request(id=id))

    return delete_unversioned, {**one_id, **DEPS, "return": None}


def handlers_of(group: ResourceGroup) -> list[HTTPRouteHandler]:
    """The route handlers of one resource group, in the order of its verbs."""
    handlers = []
    for route in group.routes():
        fn, annotations = _handler(group, route)
        fn.__name__ = fn.__qualname__ = route.name  # the operation id
        fn.__annotations__ = annotations
        options: dict[str, Any] = {"tags": [group.openapi_tag]}
        if route.doc.summary is not None:
            options["summary"] = route.doc.summary
        if route.doc.description is not None:
            options["description"] = route.doc.description
        if route.verb == "update" or (route.verb == "get" and group.versioned):
            options["response_headers"] = etag_header(group.etag_description)
        path = route.path.replace("{id}", "{id:uuid}")
        handlers.append(DECORATORS[route.method](path, **options)(fn))
    return handlers


ROUTES = [handler for group in RESOURCE_GROUPS for handler in handlers_of(group)]
