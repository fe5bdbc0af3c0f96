"""Use cases of sites, device groups, components and sensors, and their handler table (merged
with the devices' one in entrypoints/rpc.py).

Every resource goes the same way: create (checks against the read model, then the decider),
get and list (the read model), update (JSON merge patch, ``If-Match``), delete. What differs
is in its ``Kind`` and the checks each use case passes in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from outpost_contracts import registry as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import Conflict, NotFound
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_devices.adapters import registry_queries as q
from outpost_devices.app.handlers import Deps, Handler, _tenant
from outpost_devices.app.references import require_device
from outpost_devices.domain import registry
from outpost_kit import aggregate, ids
from outpost_kit.db.listing import Collection, list_page

Check = Callable[[Any], Awaitable[None]]  # given the unit of work; raises to refuse


@dataclass(frozen=True)
class Kind:
    noun: str  # as messages say it
    stream_type: str
    decide: aggregate.Decide
    evolve: aggregate.Evolve
    collection: Collection
    view: Callable[[Mapping[str, Any]], Any]

    async def execute(
        self,
        uow: Any,
        ctx: RequestContext,
        stream_id: UUID,
        command: Any,
        expected_version: int | None = None,
    ) -> None:
        await aggregate.execute(
            uow,
            ctx,
            stream_id=stream_id,
            stream_type=self.stream_type,
            decide=self.decide,
            evolve=self.evolve,
            command=command,
            org_id=ctx.org_id,
            expected_version=expected_version,
        )

    async def row(self, uow: Any, key: UUID) -> Any:
        sql = f"SELECT {self.collection.columns} FROM {self.collection.table} WHERE id = :id"
        row = (await uow.execute(sql, {"id": key})).first()
        if row is None:
            raise NotFound(f"no such {self.noun}")
        return self.view(row._mapping)

    async def require(self, uow: Any, key: UUID) -> Any:
        """404 before anything else (If-Match included) for what this tenant cannot see."""
        state, _version = await aggregate.load(uow, self.evolve, key)
        if state is None or state.deleted:
            raise NotFound(f"no such {self.noun}")
        return state


SITE = Kind("site", registry.SITE, registry.decide_site, registry.evolve_site, q.SITES, q.site_view)
GROUP = Kind(
    "device group",
    registry.DEVICE_GROUP,
    registry.decide_group,
    registry.evolve_group,
    q.DEVICE_GROUPS,
    q.group_view,
)
COMPONENT = Kind(
    "component",
    registry.COMPONENT,
    registry.decide_component,
    registry.evolve_component,
    q.COMPONENTS,
    q.component_view,
)
SENSOR = Kind(
    "sensor",
    registry.SENSOR,
    registry.decide_sensor,
    registry.evolve_sensor,
    q.SENSORS,
    q.sensor_view,
)


# --- the shared use cases ---------------------------------------------------------------


async def _create(
    kind: Kind, deps: Deps, ctx: RequestContext, cmd: Any, check: Check, taken: str
) -> Any:
    """``taken``: the conflict message when a unique index refuses a concurrent create."""
    _tenant(ctx)
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        await check(uow)
        try:
            await kind.execute(uow, ctx, new_id, cmd)
        except IntegrityError as exc:
            raise Conflict(taken) from exc
        view = await kind.row(uow, new_id)
        await uow.commit()
    return view


async def _get(kind: Kind, deps: Deps, ctx: RequestContext, query: api.Get) -> Any:
    async with deps.reads(ctx.org_id) as conn:
        row = await conn.fetchrow(q.select_by_id(kind.collection), query.id)
    if row is None:
        raise NotFound(f"no such {kind.noun}")
    return kind.view(row)


async def _list(kind: Kind, deps: Deps, ctx: RequestContext, query: api.ListRegistry) -> Page[Any]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, kind.collection, query.query, kind.view)


async def _update(
    kind: Kind, deps: Deps, ctx: RequestContext, cmd: Any, check: Check, taken: str
) -> Any:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await kind.require(uow, cmd.id)
        await check(uow)
        try:
            await kind.execute(uow, ctx, cmd.id, cmd.patch, cmd.expected_version)
        except IntegrityError as exc:
            raise Conflict(taken) from exc
        view = await kind.row(uow, cmd.id)
        await uow.commit()
    return view


async def _delete(
    kind: Kind, deps: Deps, ctx: RequestContext, cmd: api.Delete, check: Check
) -> Empty:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await kind.require(uow, cmd.id)
        await check(uow)
        await kind.execute(uow, ctx, cmd.id, registry.Delete(), cmd.expected_version)
        await uow.commit()
    return Empty()


async def _nothing(_uow: Any) -> None:
    return None


def _name_free(table: str, noun: str, name: Any, own_id: UUID | None = None) -> Check:
    async def check(uow: Any) -> None:
        if not isinstance(name, str):
            return
        sql = f"SELECT 1 FROM {table} WHERE name = :n AND id IS DISTINCT FROM :id"
        if (await uow.execute(sql, {"n": name, "id": own_id})).first() is not None:
            raise Conflict(f"a {noun} named '{name}' already exists")

    return check


def _unused(column: str, noun: str, key: UUID) -> Check:
    """Refuse to delete a site or group that a device (not decommissioned) refers to. The
    row is locked first so a device cannot start referring to it meanwhile."""

    async def check(uow: Any) -> None:
        table = "sites" if column == "site_id" else "device_groups"
        await uow.execute(f"SELECT 1 FROM {table} WHERE id = :id FOR UPDATE", {"id": key})
        used = (
            await uow.execute(
                f"SELECT count(*) FROM devices WHERE {column} = :id AND status <> 'DECOMMISSIONED'",
                {"id": key},
            )
        ).scalar_one()
        if used:
            raise Conflict(
                f"the {noun} is in use by {used} device(s): move them elsewhere first",
                details={"deviceCount": used},
            )

    return check


# --- sites ------------------------------------------------------------------------------


async def create_site(deps: Deps, ctx: RequestContext, cmd: api.CreateSite) -> api.SiteView:
    taken = f"a site named '{cmd.name}' already exists"
    check = _name_free("sites", "site", cmd.name)
    return await _create(SITE, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def get_site(deps: Deps, ctx: RequestContext, query: api.Get) -> api.SiteView:
    return await _get(SITE, deps, ctx, query)  # type: ignore[no-any-return]


async def list_sites(
    deps: Deps, ctx: RequestContext, query: api.ListRegistry
) -> Page[api.SiteView]:
    return await _list(SITE, deps, ctx, query)


async def update_site(deps: Deps, ctx: RequestContext, cmd: api.UpdateSite) -> api.SiteView:
    name = cmd.patch.name
    check = _name_free("sites", "site", name, cmd.id)
    taken = f"a site named '{name}' already exists"
    return await _update(SITE, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def delete_site(deps: Deps, ctx: RequestContext, cmd: api.Delete) -> Empty:
    return await _delete(SITE, deps, ctx, cmd, _unused("site_id", "site", cmd.id))


# --- device groups ----------------------------------------------------------------------


async def create_group(
    deps: Deps, ctx: RequestContext, cmd: api.CreateDeviceGroup
) -> api.DeviceGroupView:
    taken = f"a device group named '{cmd.name}' already exists"
    check = _name_free("device_groups", "device group", cmd.name)
    return await _create(GROUP, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def get_group(deps: Deps, ctx: RequestContext, query: api.Get) -> api.DeviceGroupView:
    return await _get(GROUP, deps, ctx, query)  # type: ignore[no-any-return]


async def list_groups(
    deps: Deps, ctx: RequestContext, query: api.ListRegistry
) -> Page[api.DeviceGroupView]:
    return await _list(GROUP, deps, ctx, query)


async def update_group(
    deps: Deps, ctx: RequestContext, cmd: api.UpdateDeviceGroup
) -> api.DeviceGroupView:
    name = cmd.patch.name
    check = _name_free("device_groups", "device group", name, cmd.id)
    taken = f"a device group named '{name}' already exists"
    return await _update(GROUP, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def delete_group(deps: Deps, ctx: RequestContext, cmd: api.Delete) -> Empty:
    return await _delete(GROUP, deps, ctx, cmd, _unused("group_id", "device group", cmd.id))


# --- components -------------------------------------------------------------------------


async def add_component(
    deps: Deps, ctx: RequestContext, cmd: api.AddComponent
) -> api.ComponentView:
    async def check(uow: Any) -> None:
        await require_device(uow, cmd.device_id)

    taken = "the component already exists"
    return await _create(COMPONENT, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def get_component(deps: Deps, ctx: RequestContext, query: api.Get) -> api.ComponentView:
    return await _get(COMPONENT, deps, ctx, query)  # type: ignore[no-any-return]


async def list_components(
    deps: Deps, ctx: RequestContext, query: api.ListRegistry
) -> Page[api.ComponentView]:
    return await _list(COMPONENT, deps, ctx, query)


async def update_component(
    deps: Deps, ctx: RequestContext, cmd: api.UpdateComponent
) -> api.ComponentView:
    taken = "the component was changed concurrently"
    return await _update(COMPONENT, deps, ctx, cmd, _nothing, taken)  # type: ignore[no-any-return]


async def remove_component(deps: Deps, ctx: RequestContext, cmd: api.Delete) -> Empty:
    return await _delete(COMPONENT, deps, ctx, cmd, _nothing)


# --- sensors ----------------------------------------------------------------------------


async def declare_sensor(deps: Deps, ctx: RequestContext, cmd: api.DeclareSensor) -> api.SensorView:
    taken = f"device {cmd.device_id} already has a sensor '{cmd.key}'"

    async def check(uow: Any) -> None:
        await require_device(uow, cmd.device_id)
        sql = "SELECT 1 FROM sensors WHERE device_id = :d AND key = :k"
        if (await uow.execute(sql, {"d": cmd.device_id, "k": cmd.key})).first() is not None:
            raise Conflict(taken)

    return await _create(SENSOR, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def get_sensor(deps: Deps, ctx: RequestContext, query: api.Get) -> api.SensorView:
    return await _get(SENSOR, deps, ctx, query)  # type: ignore[no-any-return]


async def list_sensors(
    deps: Deps, ctx: RequestContext, query: api.ListRegistry
) -> Page[api.SensorView]:
    return await _list(SENSOR, deps, ctx, query)


async def update_sensor(deps: Deps, ctx: RequestContext, cmd: api.UpdateSensor) -> api.SensorView:
    taken = "the sensor was changed concurrently"
    return await _update(SENSOR, deps, ctx, cmd, _nothing, taken)  # type: ignore[no-any-return]


async def remove_sensor(deps: Deps, ctx: RequestContext, cmd: api.Delete) -> Empty:
    return await _delete(SENSOR, deps, ctx, cmd, _nothing)


HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_SITE: create_site,
    api.GET_SITE: get_site,
    api.LIST_SITES: list_sites,
    api.UPDATE_SITE: update_site,
    api.DELETE_SITE: delete_site,
    api.CREATE_GROUP: create_group,
    api.GET_GROUP: get_group,
    api.LIST_GROUPS: list_groups,
    api.UPDATE_GROUP: update_group,
    api.DELETE_GROUP: delete_group,
    api.ADD_COMPONENT: add_component,
    api.GET_COMPONENT: get_component,
    api.LIST_COMPONENTS: list_components,
    api.UPDATE_COMPONENT: update_component,
    api.REMOVE_COMPONENT: remove_component,
    api.DECLARE_SENSOR: declare_sensor,
    api.GET_SENSOR: get_sensor,
    api.LIST_SENSORS: list_sensors,
    api.UPDATE_SENSOR: update_sensor,
    api.REMOVE_SENSOR: remove_sensor,
}
