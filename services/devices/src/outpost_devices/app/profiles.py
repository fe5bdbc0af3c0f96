"""A device's device profile (issue 21, ADR 0091): resolving the profile a PATCH names
(fleet's ``ResolveDeviceProfile``), giving devices what their profile lists and they lack,
for fleet's ``ApplyDeviceProfile`` too (a batch of at most 500 devices, one transaction:
``handlers.apply_device_profile``).

What a device gets is planned by the pure ``domain/profiles.plan_assignment``; carrying the
plan out goes through the component and sensor aggregates like a user's change would, in the
transaction of the device's own change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from outpost_contracts import devices as api
from outpost_contracts import registry as registry_api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound, ServiceUnavailable, validation_error
from outpost_contracts.fleet import DeviceProfileSpec
from outpost_devices.app.aggregates import COMPONENTS, DEVICES, SENSORS
from outpost_devices.app.ports import DeviceParts, DeviceRecords
from outpost_devices.domain import profiles
from outpost_kit import ids

# The device profile ``id`` of the caller's organization, resolved (fleet's
# ``RESOLVE_DEVICE_PROFILE``); ``NotFound`` when it has none.
ResolveProfile = Callable[[RequestContext, UUID], Awaitable[DeviceProfileSpec]]


async def resolve(
    resolver: ResolveProfile | None, ctx: RequestContext, profile_id: UUID
) -> DeviceProfileSpec:
    """The profile a change names, before its transaction opens: a profile the organization
    does not have is the request's mistake (``profileId``), not a missing device."""
    if resolver is None:
        raise ServiceUnavailable("device profiles are not available")
    try:
        return await resolver(ctx, profile_id)
    except NotFound as exc:
        raise validation_error("profileId", "no such device profile") from exc


async def carry_out(
    tx: DeviceRecords,
    ctx: RequestContext,
    device_id: UUID,
    parts: DeviceParts,
    profile: DeviceProfileSpec,
) -> bool:
    """Give the device what ``profile`` lists and it lacks; whether anything changed."""
    plan = profiles.plan_assignment(profile, parts.components, parts.sensors)
    # New components and sensors are new streams: nothing to load (state None, version 0).
    for component in plan.add_components:
        await COMPONENTS.execute_on(
            tx,
            ctx,
            stream_id=ids.new_id(),
            state=None,
            version=0,
            command=registry_api.AddComponent(
                device_id=device_id, name=component.name, kind=component.kind
            ),
            org_id=ctx.org_id,
        )
    for sensor in plan.declare_sensors:
        await SENSORS.execute_on(
            tx,
            ctx,
            stream_id=ids.new_id(),
            state=None,
            version=0,
            command=registry_api.DeclareSensor(
                device_id=device_id,
                key=sensor.key,
                value_type=sensor.value_type,
                unit=sensor.unit,
                valid_range=sensor.valid_range,
            ),
            org_id=ctx.org_id,
        )
    for sensor in plan.update_sensors:
        await SENSORS.execute(
            tx,
            ctx,
            stream_id=parts.sensor_ids[sensor.key],
            command=registry_api.SensorPatch(
                unit=sensor.unit, value_type=sensor.value_type, valid_range=sensor.valid_range
            ),
            org_id=ctx.org_id,
        )
    return not plan.empty


async def carry_out_all(
    tx: DeviceRecords,
    ctx: RequestContext,
    device_ids: Sequence[UUID],
    profile: DeviceProfileSpec,
    *,
    set_profile: bool,
) -> list[UUID]:
    """Each live device of ``device_ids`` gets ``profile`` (its ``profileId`` set first when
    ``set_profile``); the ids of the live ones, in the order given."""
    parts = await tx.device_parts(device_ids)
    done: list[UUID] = []
    for device_id in dict.fromkeys(device_ids):
        found = parts.get(device_id)
        if found is None:
            continue
        if set_profile and found.profile_id != profile.id:
            await DEVICES.execute(
                tx,
                ctx,
                stream_id=device_id,
                command=api.DevicePatch(profile_id=profile.id),
                org_id=ctx.org_id,
            )
        await carry_out(tx, ctx, device_id, found, profile)
        done.append(device_id)
    return done
