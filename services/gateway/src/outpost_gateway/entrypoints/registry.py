"""Registry routes beside devices: sites, device groups (fleets), components and sensors.

Each resource has the same five routes as a device: create, list (docs/api.md "Collections"),
get (``$select``, ``ETag``), PATCH (JSON merge patch, ``If-Match``) and DELETE. They are
made by one function from a table (``RESOURCES``), so the four cannot drift apart; the
operation ids are those of hand-written handlers (``create_site``, ``list_sites``…)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from outpost_contracts.registry import (
    ADD_COMPONENT,
    CREATE_GROUP,
    CREATE_SITE,
    DECLARE_SENSOR,
    DELETE_GROUP,
    DELETE_SITE,
    GET_COMPONENT,
    GET_GROUP,
    GET_SENSOR,
    GET_SITE,
    LIST_COMPONENTS,
    LIST_GROUPS,
    LIST_SENSORS,
    LIST_SITES,
    REMOVE_COMPONENT,
    REMOVE_SENSOR,
    UPDATE_COMPONENT,
    UPDATE_GROUP,
    UPDATE_SENSOR,
    UPDATE_SITE,
    AddComponent,
    ComponentPatch,
    ComponentView,
    CreateDeviceGroup,
    CreateSite,
    DeclareSensor,
    Delete,
    DeviceGroupPatch,
    DeviceGroupView,
    Get,
    SensorPatch,
    SensorView,
    SitePatch,
    SiteView,
    UpdateComponent,
    UpdateDeviceGroup,
    UpdateSensor,
    UpdateSite,
)
from outpost_contracts.rpc import Operation
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.devices import IfMatch, parse_if_match
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]


@dataclass(frozen=True)
class RegistryResource:
    path: str  # the collection, e.g. /api/v1/sites
    one: str  # in operation ids and descriptions: site, device_group…
    many: str  # sites, device_groups…
    view: type[msgspec.Struct]
    create_body: type[msgspec.Struct]
    patch_body: type[msgspec.Struct]
    update_command: type[msgspec.Struct]  # (id, patch, expected_version)
    create: Operation[Any, Any]
    list: Operation[Any, Any]
    get: Operation[Any, Any]
    update: Operation[Any, Any]
    delete: Operation[Any, Any]
    delete_summary: str
    # The requests of GET and DELETE of one (``id``; ``id`` and ``expected_version``).
    get_request: type[msgspec.Struct] = Get
    delete_request: type[msgspec.Struct] = Delete


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _of(generic: Any, argument: type) -> Any:
    """``generic[argument]`` for an argument known only at run time."""
    return generic[argument]


def _named(fn: Any, name: str, annotations: dict[str, Any]) -> Any:
    """A handler as Litestar reads one: its name (the operation id) and its parameters."""
    fn.__name__ = fn.__qualname__ = name
    fn.__annotations__ = annotations
    return fn


def registry_routes(r: RegistryResource) -> list[HTTPRouteHandler]:
    """The five routes of one registry resource."""
    tag = r.path.rsplit("/", 1)[1]
    item = f"{r.path}/{{id:uuid}}"
    shape_of = resource_of(r.view)
    etag = [
        ResponseHeader(
            name="ETag",
            description=f"The {r.one.replace('_', ' ')}'s version",
            documentation_only=True,
        )
    ]

    async def create(data: Any, ctx: Any, backend: Any) -> Any:
        return await backend.call(r.create, ctx, data)

    async def list_(
        request: Req,
        ctx: Any,
        backend: Any,
        limit: int = DEFAULT,
        after: Any = None,
        order: Any = "ASC",
        include: Any = None,
    ) -> Any:
        params = list(request.query_params.multi_items())
        return await fetch_list(params, backend, ctx, r.list, shape_of)

    async def get_(id: UUID, request: Req, ctx: Any, backend: Any) -> Any:
        shape = parse_single_request(list(request.query_params.multi_items()), shape_of)
        view = await backend.call(r.get, ctx, r.get_request(id=id))
        return Response(render_one(view, shape), headers=_etag(view.version))

    async def update(id: UUID, data: Any, ctx: Any, backend: Any, if_match: Any = None) -> Any:
        cmd = r.update_command(id=id, patch=data, expected_version=parse_if_match(if_match))
        view = await backend.call(r.update, ctx, cmd)
        return Response(view, headers=_etag(view.version))

    async def delete_(id: UUID, ctx: Any, backend: Any, if_match: Any = None) -> None:
        cmd = r.delete_request(id=id, expected_version=parse_if_match(if_match))
        await backend.call(r.delete, ctx, cmd)

    deps = {"ctx": Ctx, "backend": BackendDep}
    one_id = {"id": FromPath[UUID]}
    return [
        post(r.path, tags=[tag])(
            _named(
                create,
                f"create_{r.one}",
                {"data": _of(JSONBody, r.create_body), **deps, "return": r.view},
            )
        ),
        get(r.path, tags=[tag])(
            _named(
                list_,
                f"list_{r.many}",
                {
                    "request": Req,
                    **deps,
                    "limit": Limit,
                    "after": After,
                    "order": Order,
                    "include": Include,
                    "return": _of(ListOf, r.view),
                },
            )
        ),
        get(item, tags=[tag], response_headers=etag)(
            _named(
                get_,
                f"get_{r.one}",
                {**one_id, "request": Req, **deps, "return": _of(Response, r.view)},
            )
        ),
        patch(item, tags=[tag], response_headers=etag)(
            _named(
                update,
                f"update_{r.one}",
                {
                    **one_id,
                    "data": _of(JSONBody, r.patch_body),
                    **deps,
                    "if_match": IfMatch,
                    "return": _of(Response, r.view),
                },
            )
        ),
        delete(item, tags=[tag], summary=r.delete_summary)(
            _named(
                delete_, f"delete_{r.one}", {**one_id, **deps, "if_match": IfMatch, "return": None}
            )
        ),
    ]


RESOURCES = (
    RegistryResource(
        path="/api/v1/sites",
        one="site",
        many="sites",
        view=SiteView,
        create_body=CreateSite,
        patch_body=SitePatch,
        update_command=UpdateSite,
        create=CREATE_SITE,
        list=LIST_SITES,
        get=GET_SITE,
        update=UPDATE_SITE,
        delete=DELETE_SITE,
        delete_summary="Delete a site no device uses",
    ),
    RegistryResource(
        path="/api/v1/device-groups",
        one="device_group",
        many="device_groups",
        view=DeviceGroupView,
        create_body=CreateDeviceGroup,
        patch_body=DeviceGroupPatch,
        update_command=UpdateDeviceGroup,
        create=CREATE_GROUP,
        list=LIST_GROUPS,
        get=GET_GROUP,
        update=UPDATE_GROUP,
        delete=DELETE_GROUP,
        delete_summary="Delete a device group no device is in",
    ),
    RegistryResource(
        path="/api/v1/components",
        one="component",
        many="components",
        view=ComponentView,
        create_body=AddComponent,
        patch_body=ComponentPatch,
        update_command=UpdateComponent,
        create=ADD_COMPONENT,
        list=LIST_COMPONENTS,
        get=GET_COMPONENT,
        update=UPDATE_COMPONENT,
        delete=REMOVE_COMPONENT,
        delete_summary="Remove a component",
    ),
    RegistryResource(
        path="/api/v1/sensors",
        one="sensor",
        many="sensors",
        view=SensorView,
        create_body=DeclareSensor,
        patch_body=SensorPatch,
        update_command=UpdateSensor,
        create=DECLARE_SENSOR,
        list=LIST_SENSORS,
        get=GET_SENSOR,
        update=UPDATE_SENSOR,
        delete=REMOVE_SENSOR,
        delete_summary="Remove a sensor",
    ),
)

ROUTES = [route for resource in RESOURCES for route in registry_routes(resource)]
