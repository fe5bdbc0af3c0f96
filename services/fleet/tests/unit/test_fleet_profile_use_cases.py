"""Fleet's profile and pack use cases over the fake unit of work (``fleet_profile_fakes.py``),
no Postgres: what a sensor profile's change does to the device profiles naming it, what
keeps a profile from going, the resolved profile devices apply, and a pack's whole life:
authored, exported, imported elsewhere, imported again, upgraded around a user's change,
uninstalled."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from fleet_profile_fakes import FakeProfiles

from outpost_contracts import fleet as api
from outpost_contracts.alerting import Condition, Severity
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_devkit.testing.fakes import api_key_context as _ctx
from outpost_fleet.app import packs as pack_app
from outpost_fleet.app import profiles as app
from outpost_fleet.domain import artefacts

pytestmark = pytest.mark.unit


def _no_problems(document: Any, schema: Any) -> tuple[str, ...]:
    return ()


@pytest.fixture
def fake() -> FakeProfiles:
    return FakeProfiles()


@pytest.fixture
def deps(fake: FakeProfiles) -> app.ProfileDeps:
    return app.ProfileDeps(uow=fake, schema_problems=_no_problems)


TEMP = api.CreateSensorProfile(name="Temperature", unit="Cel", min=-40, max=85, precision=1)
HUM = api.CreateSensorProfile(name="Humidity", unit="%", min=0, max=100)


def _device_profile(temp: uuid.UUID, hum: uuid.UUID, **fields: Any) -> api.CreateDeviceProfile:
    return api.CreateDeviceProfile(
        name="TH-1",
        components=[api.ProfileComponent(name="probe", kind="sht31")],
        sensors=[
            api.ProfileSensor(key="temp", sensor_profile_id=temp, component="probe"),
            api.ProfileSensor(key="hum", sensor_profile_id=hum),
        ],
        rule_templates=[
            api.RuleTemplate(
                name="hot",
                sensor="temp",
                condition=Condition(op=">", threshold=30),
                severity=Severity.MAJOR,
            )
        ],
        expected_interval_seconds=60,
        **fields,
    )


def _events(fake: FakeProfiles, stream: uuid.UUID) -> list[Any]:
    return [e.data for e in fake.world.streams.get(stream, [])]


async def test_a_sensor_profiles_change_is_a_change_of_the_device_profiles_naming_it(
    fake: FakeProfiles, deps: app.ProfileDeps
) -> None:
    ctx = _ctx(uuid.uuid4())
    temp = await app.create_sensor_profile(deps, ctx, TEMP)
    hum = await app.create_sensor_profile(deps, ctx, HUM)
    profile = await app.create_device_profile(deps, ctx, _device_profile(temp.id, hum.id))
    assert profile.version == 1 and [t.condition.op for t in profile.implied_rule_templates] == [
        "nodata",
        "nodata",
        "offline",
    ]
    changed = await app.update_sensor_profile(
        deps,
        ctx,
        api.UpdateSensorProfile(
            id=temp.id, patch=api.SensorProfilePatch(max=125), expected_version=1
        ),
    )
    assert changed.max == 125 and changed.version == 2
    last = _events(fake, profile.id)[-1]
    assert isinstance(last, api.DeviceProfileChanged)
    assert last.changed == ["sensorProfiles"] and last.profile_version == 2
    untouched = _events(fake, hum.id)
    assert len(untouched) == 1
    spec = await app.resolve_device_profile(deps, ctx, api.ResolveDeviceProfile(id=profile.id))
    assert spec.version == 2
    assert [(s.key, s.unit, s.valid_range and s.valid_range.max) for s in spec.sensors] == [
        ("temp", "Cel", 125),
        ("hum", "%", 100),
    ]


async def test_what_keeps_a_profile_and_what_another_organization_sees(
    fake: FakeProfiles, deps: app.ProfileDeps
) -> None:
    ctx, other = _ctx(uuid.uuid4()), _ctx(uuid.uuid4())
    temp = await app.create_sensor_profile(deps, ctx, TEMP)
    hum = await app.create_sensor_profile(deps, ctx, HUM)
    profile = await app.create_device_profile(deps, ctx, _device_profile(temp.id, hum.id))
    with pytest.raises(Conflict) as used:
        await app.delete_sensor_profile(deps, ctx, api.DeleteSensorProfile(id=temp.id))
    assert used.value.details == {"deviceProfileIds": [str(profile.id)]}
    fake.world.devices[profile.id] = 2
    with pytest.raises(Conflict):
        await app.delete_device_profile(deps, ctx, api.DeleteDeviceProfile(id=profile.id))
    # another organization sees none of it, and cannot name this one's sensor profiles
    with pytest.raises(NotFound):
        await app.get_device_profile(deps, other, api.GetDeviceProfile(id=profile.id))
    with pytest.raises(NotFound):
        await app.resolve_device_profile(deps, other, api.ResolveDeviceProfile(id=profile.id))
    with pytest.raises(ValidationFailed) as bad:
        await app.create_device_profile(deps, other, _device_profile(temp.id, hum.id))
    assert {f.name for f in bad.value.fields} == {
        "sensors[0].sensorProfileId",
        "sensors[1].sensorProfileId",
    }
    with pytest.raises(ValidationFailed) as no_artefact:
        await app.create_device_profile(
            deps, ctx, _device_profile(temp.id, hum.id, config_artefact_id=uuid.uuid4())
        )
    assert [f.name for f in no_artefact.value.fields] == ["configArtefactId"]
    fake.world.devices[profile.id] = 0
    await app.delete_device_profile(deps, ctx, api.DeleteDeviceProfile(id=profile.id))
    await app.delete_sensor_profile(deps, ctx, api.DeleteSensorProfile(id=temp.id))
    page = await app.list_sensor_profiles(deps, ctx, api.ListSensorProfiles())
    assert [p.name for p in page.data] == ["Humidity"]


async def _authored(deps: app.ProfileDeps, ctx: Any) -> tuple[api.PackView, dict[str, uuid.UUID]]:
    """Org A's TH-1 with its two sensor profiles and a config artefact, as pack 'climate'."""
    temp = await app.create_sensor_profile(deps, ctx, TEMP)
    hum = await app.create_sensor_profile(deps, ctx, HUM)
    artefact = uuid.uuid4()
    async with deps.uow(ctx.org_id) as uow:
        await app.ARTEFACTS.execute(
            uow,
            ctx,
            stream_id=artefact,
            command=artefacts.CreateArtefact(name="th-config", document={"interval": 60}),
            org_id=ctx.org_id,
        )
        await uow.commit()
    profile = await app.create_device_profile(
        deps, ctx, _device_profile(temp.id, hum.id, config_artefact_id=artefact)
    )
    pack = await pack_app.create_pack(
        deps,
        ctx,
        api.CreatePack(
            name="climate",
            version="1.0.0",
            items=[api.PackItemRef(kind=api.PackItemKind.DEVICE_PROFILE, id=profile.id)],
        ),
    )
    return pack, {"temp": temp.id, "hum": hum.id, "profile": profile.id, "artefact": artefact}


async def test_a_pack_exported_imported_again_upgraded_and_uninstalled(
    fake: FakeProfiles, deps: app.ProfileDeps
) -> None:
    a, b = _ctx(uuid.uuid4()), _ctx(uuid.uuid4())
    pack, made = await _authored(deps, a)
    assert pack.origin is api.PackOrigin.AUTHORED and pack.pack_version == "1.0.0"
    document = await pack_app.export_pack(deps, a, api.ExportPack(id=pack.id))
    # self-contained: the profile brought its sensor profiles and artefact, keyed by A's ids
    assert [(i.kind, i.key) for i in document.items] == [
        (api.PackItemKind.SENSOR_PROFILE, str(made["temp"])),
        (api.PackItemKind.SENSOR_PROFILE, str(made["hum"])),
        (api.PackItemKind.CONFIG_ARTEFACT, str(made["artefact"])),
        (api.PackItemKind.DEVICE_PROFILE, str(made["profile"])),
    ]
    profile_item = document.items[-1].content
    assert profile_item["sensors"][0]["sensorProfile"] == str(made["temp"])
    assert profile_item["configArtefact"] == str(made["artefact"])
    wire = msgspec.json.decode(msgspec.json.encode(document), type=api.PackDocument)

    first = await pack_app.import_pack(deps, b, api.ImportPack(document=wire))
    assert first.outcome == "INSTALLED" and first.pack.origin is api.PackOrigin.IMPORTED
    assert [s.action for s in first.steps] == ["CREATE"] * 4
    b_profiles = await app.list_device_profiles(deps, b, api.ListDeviceProfiles())
    (b_profile,) = b_profiles.data
    b_sensors = {s.key: s.sensor_profile_id for s in b_profile.sensors}
    assert b_profile.id != made["profile"] and set(b_sensors.values()).isdisjoint(made.values())
    streams_before = {k: len(v) for k, v in fake.world.streams.items()}

    again = await pack_app.import_pack(deps, b, api.ImportPack(document=wire))
    assert again.outcome == "UNCHANGED" and {s.action for s in again.steps} == {"UNCHANGED"}
    assert {k: len(v) for k, v in fake.world.streams.items()} == streams_before

    # A publishes 1.1.0: the temperature range grows and the profile gets a firmware family
    await app.update_sensor_profile(
        deps, a, api.UpdateSensorProfile(id=made["temp"], patch=api.SensorProfilePatch(max=150))
    )
    await app.update_device_profile(
        deps,
        a,
        api.UpdateDeviceProfile(
            id=made["profile"], patch=api.DeviceProfilePatch(firmware_family="th")
        ),
    )
    await pack_app.update_pack(
        deps, a, api.UpdatePack(id=pack.id, patch=api.PackPatch(version="1.1.0"))
    )
    newer = await pack_app.export_pack(deps, a, api.ExportPack(id=pack.id))
    # meanwhile B's user renamed the device profile
    await app.update_device_profile(
        deps, b, api.UpdateDeviceProfile(id=b_profile.id, patch=api.DeviceProfilePatch(name="mine"))
    )
    upgraded = await pack_app.import_pack(deps, b, api.ImportPack(document=newer))
    assert upgraded.outcome == "UPGRADED" and upgraded.pack.pack_version == "1.1.0"
    actions = {(s.kind, s.action) for s in upgraded.steps}
    assert (api.PackItemKind.SENSOR_PROFILE, "UPGRADE") in actions
    assert (api.PackItemKind.DEVICE_PROFILE, "CONFLICT") in actions
    assert [c.resource_id for c in upgraded.conflicts] == [b_profile.id]
    assert upgraded.pack.conflicts == [str(made["profile"])]
    kept = await app.get_device_profile(deps, b, api.GetDeviceProfile(id=b_profile.id))
    assert kept.name == "mine" and kept.firmware_family is None  # left as the user has it
    b_temp = await app.get_sensor_profile(deps, b, api.GetSensorProfile(id=b_sensors["temp"]))
    assert b_temp.max == 150

    # older versions are refused; the same version with other content too
    with pytest.raises(Conflict):
        await pack_app.import_pack(deps, b, api.ImportPack(document=wire))
    first_item = newer.items[0]
    other = msgspec.structs.replace(first_item, content={**first_item.content, "name": "T2"})
    tampered = msgspec.structs.replace(newer, items=[other, *newer.items[1:]])
    with pytest.raises(Conflict):
        await pack_app.import_pack(deps, b, api.ImportPack(document=tampered))

    # B's own sensor profile, beside the pack's, survives the uninstall
    own = await app.create_sensor_profile(
        deps, b, api.CreateSensorProfile(name="CO2", unit="[ppm]")
    )
    await pack_app.delete_pack(deps, b, api.DeletePack(id=upgraded.pack.id))
    left = await app.list_sensor_profiles(deps, b, api.ListSensorProfiles())
    assert [p.id for p in left.data] == [own.id]
    assert (await app.list_device_profiles(deps, b, api.ListDeviceProfiles())).data == []
    assert (await pack_app.list_packs(deps, b, api.ListPacks())).data == []
    # A's authored pack and items are A's alone
    assert len((await app.list_sensor_profiles(deps, a, api.ListSensorProfiles())).data) == 2


async def test_an_uninstall_that_would_break_a_users_profile_is_refused(
    fake: FakeProfiles, deps: app.ProfileDeps
) -> None:
    a, b = _ctx(uuid.uuid4()), _ctx(uuid.uuid4())
    pack, made = await _authored(deps, a)
    document = await pack_app.export_pack(deps, a, api.ExportPack(id=pack.id))
    installed = await pack_app.import_pack(deps, b, api.ImportPack(document=document))
    temp = next(s.resource_id for s in installed.steps if s.key == str(made["temp"]))
    assert temp is not None
    await app.create_device_profile(
        deps,
        b,
        api.CreateDeviceProfile(
            name="own", sensors=[api.ProfileSensor(key="t", sensor_profile_id=temp)]
        ),
    )
    with pytest.raises(Conflict):
        await pack_app.delete_pack(deps, b, api.DeletePack(id=installed.pack.id))
    assert len((await app.list_device_profiles(deps, b, api.ListDeviceProfiles())).data) == 2


async def test_pack_documents_and_authoring_are_checked(
    fake: FakeProfiles, deps: app.ProfileDeps
) -> None:
    a = _ctx(uuid.uuid4())
    pack, made = await _authored(deps, a)
    with pytest.raises(Conflict):  # a name once per organization
        await pack_app.create_pack(
            deps,
            a,
            api.CreatePack(
                name="climate",
                version="1.0.0",
                items=[api.PackItemRef(kind=api.PackItemKind.SENSOR_PROFILE, id=made["temp"])],
            ),
        )
    with pytest.raises(ValidationFailed):  # another's or no item
        await pack_app.create_pack(
            deps,
            a,
            api.CreatePack(
                name="x",
                version="1.0.0",
                items=[api.PackItemRef(kind=api.PackItemKind.SENSOR_PROFILE, id=uuid.uuid4())],
            ),
        )
    with pytest.raises(ValidationFailed):  # versions only grow
        await pack_app.update_pack(
            deps, a, api.UpdatePack(id=pack.id, patch=api.PackPatch(version="0.9.0"))
        )
    document = await pack_app.export_pack(deps, a, api.ExportPack(id=pack.id))
    with pytest.raises(Conflict):  # importing one's own authored pack
        await pack_app.import_pack(deps, a, api.ImportPack(document=document))
    b = _ctx(uuid.uuid4())
    installed = await pack_app.import_pack(deps, b, api.ImportPack(document=document))
    with pytest.raises(Conflict):  # an imported pack changes by importing a newer version
        await pack_app.update_pack(
            deps, b, api.UpdatePack(id=installed.pack.id, patch=api.PackPatch(version="9.0.0"))
        )
    exported = await pack_app.export_pack(deps, b, api.ExportPack(id=installed.pack.id))
    assert exported == document  # what it was installed from
    b = _ctx(uuid.uuid4())
    dangling = msgspec.structs.replace(document, items=document.items[1:])
    with pytest.raises(ValidationFailed) as bad:
        await pack_app.import_pack(deps, b, api.ImportPack(document=dangling))
    assert bad.value.fields[0].name.endswith("sensorProfile")
    wrong = api.PackDocument(
        name="w",
        version="1.0.0",
        items=[
            api.PackDocumentItem(
                kind=api.PackItemKind.SENSOR_PROFILE, key="k", content={"name": "t", "unit": "°C"}
            )
        ],
    )
    with pytest.raises(ValidationFailed):
        await pack_app.import_pack(deps, b, api.ImportPack(document=wrong))
    assert (await pack_app.list_packs(deps, b, api.ListPacks())).data == []
