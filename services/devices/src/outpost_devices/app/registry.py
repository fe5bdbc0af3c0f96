"""Use cases of sites, device groups, components and sensors, and their handler table (merged
with the devices' one in entrypoints/rpc.py).

Every resource goes the same way: create (checks against the read model, then the decider),
get and list (the read model), update (JSON merge patch, ``If-Match``), delete. What differs
is in its ``Kind`` and the checks each use case passes in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from outpost_contracts import registry as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import Conflict, NotFound
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_devices.app import aggregates
from outpost_devices.app.handlers import Deps, Handler, _tenant
from outpost_devices.app.ports import DeviceRecords
from outpost_devices.app.references import require_device
from outpost_devices.domain import registry
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate, Taken

Check = Callable[[DeviceRecords], Awaitable[None]]  # given the transaction; raises to refuse


@dataclass(frozen=True)
class Kind:
    """One registry aggregate: as messages name it, and its pipeline (whose stream type also
    names its read model to the port)."""

    noun: str
    aggregate: Aggregate

    @property
    def key(self) -> str:
        return self.aggregate.stream_type

    async def execute(
        self,
        tx: DeviceRecords,
        ctx: RequestContext,
        stream_id: UUID,
        command: Any,
        expected_version: int | None = None,
    ) -> None:
        await self.aggregate.execute(
            tx,
            ctx,
            stream_id=stream_id,
            command=command,
            org_id=ctx.org_id,
            expected_version=expected_version,
        )

    def found(self, view: Any | None) -> Any:
        if view is None:
            raise NotFound(f"no such {self.noun}")
        return view

    async def require(self, tx: DeviceRecords, key: UUID) -> Any:
        """404 before anything else (If-Match included) for what this tenant cannot see."""
        state, _version = await self.aggregate.load(tx, key)
        if state is None or state.deleted:
            raise NotFound(f"no such {self.noun}")
        return state


SITE = Kind("site", aggregates.SITES)
GROUP = Kind("device group", aggregates.GROUPS)
COMPONENT = Kind("component", aggregates.COMPONENTS)
SENSOR = Kind("sensor", aggregates.SENSORS)


# --- the shared use cases ---------------------------------------------------------------


async def _create(
    kind: Kind, deps: Deps, ctx: RequestContext, cmd: Any, check: Check, taken: str
) -> Any:
    """``taken``: the conflict message when a unique index refuses a concurrent create."""
    _tenant(ctx)
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as tx:
        await check(tx)
        try:
            await kind.execute(tx, ctx, new_id, cmd)
        except Taken as exc:
            raise Conflict(taken) from exc
        view = kind.found(await tx.find(kind.key, new_id))
        await tx.commit()
    return view


async def _get(kind: Kind, deps: Deps, ctx: RequestContext, query: api.Get) -> Any:
    return kind.found(await deps.reads.find(ctx.org_id, kind.key, query.id))


async def _list(kind: Kind, deps: Deps, ctx: RequestContext, query: api.ListRegistry) -> Page[Any]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.page(kind.key, query.query)


async def _update(
    kind: Kind, deps: Deps, ctx: RequestContext, cmd: Any, check: Check, taken: str
) -> Any:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as tx:
        await kind.require(tx, cmd.id)
        await check(tx)
        try:
            await kind.execute(tx, ctx, cmd.id, cmd.patch, cmd.expected_version)
        except Taken as exc:
            raise Conflict(taken) from exc
        view = kind.found(await tx.find(kind.key, cmd.id))
        await tx.commit()
    return view


async def _delete(
    kind: Kind, deps: Deps, ctx: RequestContext, cmd: api.Delete, check: Check
) -> Empty:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as tx:
        await kind.require(tx, cmd.id)
        await check(tx)
        await kind.execute(tx, ctx, cmd.id, registry.Delete(), cmd.expected_version)
        await tx.commit()
    return Empty()


async def _nothing(_tx: DeviceRecords) -> None:
    return None


def _name_free(kind: Kind, name: Any, own_id: UUID | None = None) -> Check:
    async def check(tx: DeviceRecords) -> None:
        if isinstance(name, str) and await tx.name_taken(kind.key, name, own_id):
            raise Conflict(f"a {kind.noun} named '{name}' already exists")

    return check


def _unused(kind: Kind, key: UUID) -> Check:
    """Refuse to delete a site or group that a device (not decommissioned) refers to. The
    row is locked first so a device cannot start referring to it meanwhile."""

    async def check(tx: DeviceRecords) -> None:
        used = await tx.in_use(kind.key, key)
        if used:
            raise Conflict(
                f"the {kind.noun} is in use by {used} device(s): move them elsewhere first",
                details={"deviceCount": used},
            )

    return check


# --- sites ------------------------------------------------------------------------------


async def create_site(deps: Deps, ctx: RequestContext, cmd: api.CreateSite) -> api.SiteView:
    taken = f"a site named '{cmd.name}' already exists"
    check = _name_free(SITE, cmd.name)
    return await _create(SITE, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def get_site(deps: Deps, ctx: RequestContext, query: api.Get) -> api.SiteView:
    return await _get(SITE, deps, ctx, query)  # type: ignore[no-any-return]


async def list_sites(
    deps: Deps, ctx: RequestContext, query: api.ListRegistry
) -> Page[api.SiteView]:
    return await _list(SITE, deps, ctx, query)


async def update_site(deps: Deps, ctx: RequestContext, cmd: api.UpdateSite) -> api.SiteView:
    name = cmd.patch.name
    check = _name_free(SITE, name, cmd.id)
    taken = f"a site named '{name}' already exists"
    return await _update(SITE, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def delete_site(deps: Deps, ctx: RequestContext, cmd: api.Delete) -> Empty:
    return await _delete(SITE, deps, ctx, cmd, _unused(SITE, cmd.id))


# --- device groups ----------------------------------------------------------------------


async def create_group(
    deps: Deps, ctx: RequestContext, cmd: api.CreateDeviceGroup
) -> api.DeviceGroupView:
    taken = f"a device group named '{cmd.name}' already exists"
    check = _name_free(GROUP, cmd.name)
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
    check = _name_free(GROUP, name, cmd.id)
    taken = f"a device group named '{name}' already exists"
    return await _update(GROUP, deps, ctx, cmd, check, taken)  # type: ignore[no-any-return]


async def delete_group(deps: Deps, ctx: RequestContext, cmd: api.Delete) -> Empty:
    return await _delete(GROUP, deps, ctx, cmd, _unused(GROUP, cmd.id))


# --- components -------------------------------------------------------------------------


async def add_component(
    deps: Deps, ctx: RequestContext, cmd: api.AddComponent
) -> api.ComponentView:
    async def check(tx: DeviceRecords) -> None:
        await require_device(tx, cmd.device_id)

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

    async def check(tx: DeviceRecords) -> None:
        await require_device(tx, cmd.device_id)
        if await tx.sensor_declared(cmd.device_id, cmd.key):
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
