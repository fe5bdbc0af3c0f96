"""Use cases of sensor profiles and device profiles, ``RESOLVE_DEVICE_PROFILE``, and their
handler table (ADR 0092).

Every change goes load -> decide -> append through the kit's ``Aggregate``: the events go to
the FLEET stream through the outbox and into the audit log, the read models are written in
the same transaction (``adapters/profile_store.py``). A sensor profile's change is a change of
every device profile that names it (``DeviceProfileChanged`` with ``changed:
["sensorProfiles"]`` and its new version), so the profile-change job has one event to follow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from outpost_contracts import fleet as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_fleet.app.profile_ports import ProfilesTx, ProfilesUnitOfWork, SchemaProblems
from outpost_fleet.domain import artefacts
from outpost_fleet.domain import profiles as domain
from outpost_kit import aggregate, ids


@dataclass(frozen=True)
class ProfileDeps:
    uow: ProfilesUnitOfWork
    # A config artefact's document against its schema (packs create artefacts).
    schema_problems: SchemaProblems


SENSOR_PROFILES = aggregate.Aggregate(
    domain.SENSOR_PROFILE, domain.decide_sensor_profile, domain.evolve_sensor_profile
)
DEVICE_PROFILES = aggregate.Aggregate(
    domain.DEVICE_PROFILE, domain.decide_device_profile, domain.evolve_device_profile
)
ARTEFACTS = aggregate.Aggregate(artefacts.STREAM_TYPE, artefacts.decide, artefacts.evolve)


async def live(uow: ProfilesTx, kind: aggregate.Aggregate, key: UUID, noun: str) -> Any:
    """The aggregate's state; 404 before anything else (If-Match included) for what this
    tenant cannot see or was deleted."""
    state, _version = await kind.load(uow, key)
    if state is None or state.deleted:
        raise NotFound(f"no such {noun}")
    return state


async def artefact_exists(uow: ProfilesTx, artefact_id: UUID | None) -> bool:
    if artefact_id is None:
        return True
    state, _version = await ARTEFACTS.load(uow, artefact_id)
    return state is not None and not state.deleted


# --- sensor profiles ----------------------------------------------------------------------


async def create_sensor_profile(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.CreateSensorProfile
) -> api.SensorProfileView:
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        await SENSOR_PROFILES.execute(uow, ctx, stream_id=new_id, command=cmd, org_id=ctx.org_id)
        view = await uow.sensor_profile(new_id)
        await uow.commit()
    assert view is not None
    return view


async def get_sensor_profile(
    deps: ProfileDeps, ctx: RequestContext, q: api.GetSensorProfile
) -> api.SensorProfileView:
    async with deps.uow(ctx.org_id) as uow:
        view = await uow.sensor_profile(q.id)
    if view is None:
        raise NotFound("no such sensor profile")
    return view


async def list_sensor_profiles(
    deps: ProfileDeps, ctx: RequestContext, q: api.ListSensorProfiles
) -> Page[api.SensorProfileView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.sensor_profiles(q.query)


async def touch_device_profiles(
    uow: ProfilesTx, ctx: RequestContext | None, org_id: UUID, sensor_profile_id: UUID
) -> None:
    """Every device profile naming the sensor profile resolves differently now."""
    for profile_id in await uow.device_profiles_using(sensor_profile_id):
        await DEVICE_PROFILES.execute(
            uow,
            ctx,
            stream_id=profile_id,
            command=domain.SensorProfilesChanged(),
            org_id=org_id,
        )


async def change_sensor_profile(
    uow: ProfilesTx,
    ctx: RequestContext,
    profile_id: UUID,
    patch: api.SensorProfilePatch,
    expected_version: int | None = None,
) -> None:
    _state, envelopes = await SENSOR_PROFILES.execute(
        uow,
        ctx,
        stream_id=profile_id,
        command=patch,
        org_id=ctx.org_id,
        expected_version=expected_version,
    )
    if envelopes:
        await touch_device_profiles(uow, ctx, ctx.org_id, profile_id)


async def update_sensor_profile(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.UpdateSensorProfile
) -> api.SensorProfileView:
    async with deps.uow(ctx.org_id) as uow:
        await live(uow, SENSOR_PROFILES, cmd.id, "sensor profile")
        await change_sensor_profile(uow, ctx, cmd.id, cmd.patch, cmd.expected_version)
        view = await uow.sensor_profile(cmd.id)
        await uow.commit()
    assert view is not None
    return view


async def remove_sensor_profile(
    uow: ProfilesTx, ctx: RequestContext, profile_id: UUID, expected_version: int | None = None
) -> None:
    """Refused with 409 while a device profile names it (locked first, so none starts to)."""
    await uow.lock_sensor_profile(profile_id)
    used_by = tuple(await uow.device_profiles_using(profile_id))
    await SENSOR_PROFILES.execute(
        uow,
        ctx,
        stream_id=profile_id,
        command=domain.DeleteSensorProfile(used_by=used_by),
        org_id=ctx.org_id,
        expected_version=expected_version,
    )


async def delete_sensor_profile(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.DeleteSensorProfile
) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        await live(uow, SENSOR_PROFILES, cmd.id, "sensor profile")
        await remove_sensor_profile(uow, ctx, cmd.id, cmd.expected_version)
        await uow.commit()
    return Empty()


# --- device profiles ----------------------------------------------------------------------


def _named(sensors: Iterable[api.ProfileSensor]) -> set[UUID]:
    return {s.sensor_profile_id for s in sensors}


async def add_device_profile(
    uow: ProfilesTx, ctx: RequestContext, profile_id: UUID, spec: api.CreateDeviceProfile
) -> None:
    command = domain.CreateDeviceProfile(
        spec=spec,
        sensor_profiles=await uow.share_sensor_profiles(_named(spec.sensors)),
        artefact_exists=await artefact_exists(uow, spec.config_artefact_id),
    )
    await DEVICE_PROFILES.execute(
        uow, ctx, stream_id=profile_id, command=command, org_id=ctx.org_id
    )


async def change_device_profile(
    uow: ProfilesTx,
    ctx: RequestContext,
    profile_id: UUID,
    patch: api.DeviceProfilePatch,
    expected_version: int | None = None,
) -> None:
    state: domain.DeviceProfile = await live(uow, DEVICE_PROFILES, profile_id, "device profile")
    sensors = patch.sensors if isinstance(patch.sensors, list) else state.sensors
    artefact = patch.config_artefact_id
    command = domain.ChangeDeviceProfile(
        patch=patch,
        sensor_profiles=await uow.share_sensor_profiles({s.sensor_profile_id for s in sensors}),
        artefact_exists=await artefact_exists(
            uow, artefact if isinstance(artefact, UUID) else None
        ),
    )
    await DEVICE_PROFILES.execute(
        uow,
        ctx,
        stream_id=profile_id,
        command=command,
        org_id=ctx.org_id,
        expected_version=expected_version,
    )


async def remove_device_profile(
    uow: ProfilesTx, ctx: RequestContext, profile_id: UUID, expected_version: int | None = None
) -> None:
    """Refused with 409 while a device has it."""
    devices = await uow.devices_with_profile(profile_id)
    await DEVICE_PROFILES.execute(
        uow,
        ctx,
        stream_id=profile_id,
        command=domain.DeleteDeviceProfile(devices=devices),
        org_id=ctx.org_id,
        expected_version=expected_version,
    )


async def create_device_profile(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.CreateDeviceProfile
) -> api.DeviceProfileView:
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        await add_device_profile(uow, ctx, new_id, cmd)
        view = await uow.device_profile(new_id)
        await uow.commit()
    assert view is not None
    return view


async def get_device_profile(
    deps: ProfileDeps, ctx: RequestContext, q: api.GetDeviceProfile
) -> api.DeviceProfileView:
    async with deps.uow(ctx.org_id) as uow:
        view = await uow.device_profile(q.id)
    if view is None:
        raise NotFound("no such device profile")
    return view


async def list_device_profiles(
    deps: ProfileDeps, ctx: RequestContext, q: api.ListDeviceProfiles
) -> Page[api.DeviceProfileView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.device_profiles(q.query)


async def update_device_profile(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.UpdateDeviceProfile
) -> api.DeviceProfileView:
    async with deps.uow(ctx.org_id) as uow:
        await change_device_profile(uow, ctx, cmd.id, cmd.patch, cmd.expected_version)
        view = await uow.device_profile(cmd.id)
        await uow.commit()
    assert view is not None
    return view


async def delete_device_profile(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.DeleteDeviceProfile
) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        await live(uow, DEVICE_PROFILES, cmd.id, "device profile")
        await remove_device_profile(uow, ctx, cmd.id, cmd.expected_version)
        await uow.commit()
    return Empty()


async def resolve_device_profile(
    deps: ProfileDeps, ctx: RequestContext, q: api.ResolveDeviceProfile
) -> api.DeviceProfileSpec:
    """What devices apply when a device's ``profileId`` is set (devices call it)."""
    async with deps.uow(ctx.org_id) as uow:
        profile: domain.DeviceProfile = await live(uow, DEVICE_PROFILES, q.id, "device profile")
        kinds: dict[UUID, domain.SensorProfile] = {}
        for sensor_profile_id in sorted({s.sensor_profile_id for s in profile.sensors}):
            kinds[sensor_profile_id] = await live(
                uow, SENSOR_PROFILES, sensor_profile_id, "sensor profile"
            )
    return domain.resolve(profile, kinds)


Handler = Callable[[ProfileDeps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_SENSOR_PROFILE: create_sensor_profile,
    api.LIST_SENSOR_PROFILES: list_sensor_profiles,
    api.GET_SENSOR_PROFILE: get_sensor_profile,
    api.UPDATE_SENSOR_PROFILE: update_sensor_profile,
    api.DELETE_SENSOR_PROFILE: delete_sensor_profile,
    api.CREATE_DEVICE_PROFILE: create_device_profile,
    api.LIST_DEVICE_PROFILES: list_device_profiles,
    api.GET_DEVICE_PROFILE: get_device_profile,
    api.UPDATE_DEVICE_PROFILE: update_device_profile,
    api.DELETE_DEVICE_PROFILE: delete_device_profile,
    api.RESOLVE_DEVICE_PROFILE: resolve_device_profile,
}
