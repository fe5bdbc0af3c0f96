"""Sensor profiles, device profiles and packs against real Postgres and NATS, through the
fleet responder as the gateway calls it (ADR 0092): the read models the projector keeps, the
collection conventions, If-Match, tenancy, what keeps a profile, the resolved profile, the
events on the FLEET stream, and a pack with a config artefact from one organization installed,
re-installed, upgraded around a user's change and uninstalled in another."""

from __future__ import annotations

import uuid

import pytest
from fleet_testkit import fleet_env

from outpost_contracts import fleet as api
from outpost_contracts.alerting import Condition, Severity
from outpost_contracts.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from outpost_contracts.query import Cmp, ListQuery
from outpost_fleet.app.profiles import ARTEFACTS
from outpost_fleet.domain import artefacts
from outpost_kit import ids

pytestmark = pytest.mark.integration

TEMP = api.CreateSensorProfile(name="Temperature", unit="Cel", min=-40, max=85, precision=1)
HUM = api.CreateSensorProfile(name="Humidity", unit="%", min=0, max=100, display_name="RH")


def _profile(
    temp: uuid.UUID, hum: uuid.UUID, artefact: uuid.UUID | None = None
) -> api.CreateDeviceProfile:
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
        config_artefact_id=artefact,
        expected_interval_seconds=60,
        firmware_family="th",
    )


async def test_profiles_through_the_responder(postgres_dsn: str, nats_url: str) -> None:
    org, other = ids.new_id(), ids.new_id()
    async with fleet_env(postgres_dsn, nats_url) as env:
        temp = await env.call(api.CREATE_SENSOR_PROFILE, org, TEMP)
        hum = await env.call(api.CREATE_SENSOR_PROFILE, org, HUM)
        assert (temp.unit, temp.min, temp.max, temp.version) == ("Cel", -40, 85, 1)
        with pytest.raises(ValidationFailed):
            await env.call(
                api.CREATE_SENSOR_PROFILE, org, api.CreateSensorProfile(name="x", unit="degC")
            )
        found = await env.call(
            api.LIST_SENSOR_PROFILES,
            org,
            api.ListSensorProfiles(query=ListQuery(filter=Cmp(field="unit", op="eq", value="%"))),
        )
        assert [p.id for p in found.data] == [hum.id]
        profile = await env.call(api.CREATE_DEVICE_PROFILE, org, _profile(temp.id, hum.id))
        assert [t.condition.op for t in profile.implied_rule_templates] == [
            "nodata",
            "nodata",
            "offline",
        ]
        assert profile.rule_templates[0].condition.threshold == 30
        got = await env.call(api.GET_DEVICE_PROFILE, org, api.GetDeviceProfile(id=profile.id))
        assert got == profile

        with pytest.raises(Conflict):
            await env.call(api.DELETE_SENSOR_PROFILE, org, api.DeleteSensorProfile(id=temp.id))
        with pytest.raises(PreconditionFailed):
            await env.call(
                api.UPDATE_SENSOR_PROFILE,
                org,
                api.UpdateSensorProfile(
                    id=temp.id, patch=api.SensorProfilePatch(max=90), expected_version=7
                ),
            )
        changed = await env.call(
            api.UPDATE_SENSOR_PROFILE,
            org,
            api.UpdateSensorProfile(
                id=temp.id, patch=api.SensorProfilePatch(max=125), expected_version=1
            ),
        )
        assert changed.version == 2 and changed.max == 125
        touched = await env.call(api.GET_DEVICE_PROFILE, org, api.GetDeviceProfile(id=profile.id))
        assert touched.version == 2
        spec = await env.call(
            api.RESOLVE_DEVICE_PROFILE, org, api.ResolveDeviceProfile(id=profile.id)
        )
        assert spec.version == 2 and spec.firmware_family == "th"
        assert [
            (s.key, s.unit, s.valid_range.max if s.valid_range else None) for s in spec.sensors
        ] == [
            ("temp", "Cel", 125),
            ("hum", "%", 100),
        ]
        # the profile-change job's event: the new version, on the events table the relay publishes
        rows = await env.rows(
            org,
            "SELECT data FROM events WHERE stream_id = :id ORDER BY version",
            id=profile.id,
        )
        assert len(rows) == 2

        # another organization sees none of it
        for op, body in (
            (api.GET_SENSOR_PROFILE, api.GetSensorProfile(id=temp.id)),
            (api.GET_DEVICE_PROFILE, api.GetDeviceProfile(id=profile.id)),
            (api.RESOLVE_DEVICE_PROFILE, api.ResolveDeviceProfile(id=profile.id)),
            (api.DELETE_DEVICE_PROFILE, api.DeleteDeviceProfile(id=profile.id)),
        ):
            with pytest.raises(NotFound):
                await env.call(op, other, body)
        assert (
            await env.call(api.LIST_DEVICE_PROFILES, other, api.ListDeviceProfiles())
        ).data == []

        await env.call(api.DELETE_DEVICE_PROFILE, org, api.DeleteDeviceProfile(id=profile.id))
        await env.call(api.DELETE_SENSOR_PROFILE, org, api.DeleteSensorProfile(id=temp.id))
        left = await env.call(api.LIST_SENSOR_PROFILES, org, api.ListSensorProfiles())
        assert [p.id for p in left.data] == [hum.id]


async def test_a_pack_with_an_artefact_between_two_organizations(
    postgres_dsn: str, nats_url: str
) -> None:
    a, b = ids.new_id(), ids.new_id()
    async with fleet_env(postgres_dsn, nats_url) as env:
        temp = await env.call(api.CREATE_SENSOR_PROFILE, a, TEMP)
        hum = await env.call(api.CREATE_SENSOR_PROFILE, a, HUM)
        artefact = ids.new_id()
        async with env.deps.profiles.uow(a) as uow:
            await ARTEFACTS.execute(
                uow,
                None,
                stream_id=artefact,
                command=artefacts.CreateArtefact(name="th", document={"interval": 60, "led": None}),
                org_id=a,
            )
            await uow.commit()
        profile = await env.call(api.CREATE_DEVICE_PROFILE, a, _profile(temp.id, hum.id, artefact))
        ref = api.PackItemRef(kind=api.PackItemKind.DEVICE_PROFILE, id=profile.id)
        pack = await env.call(
            api.CREATE_PACK, a, api.CreatePack(name="climate", version="1.0.0", items=[ref])
        )
        with pytest.raises(Conflict):
            await env.call(
                api.CREATE_PACK, a, api.CreatePack(name="climate", version="2.0.0", items=[ref])
            )
        document = await env.call(api.EXPORT_PACK, a, api.ExportPack(id=pack.id))
        assert [i.kind for i in document.items] == [
            api.PackItemKind.SENSOR_PROFILE,
            api.PackItemKind.SENSOR_PROFILE,
            api.PackItemKind.CONFIG_ARTEFACT,
            api.PackItemKind.DEVICE_PROFILE,
        ]
        assert document.items[2].content == {
            "name": "th",
            "document": {"interval": 60, "led": None},
        }

        installed = await env.call(api.IMPORT_PACK, b, api.ImportPack(document=document))
        assert installed.outcome == "INSTALLED"
        b_artefact = next(
            s.resource_id for s in installed.steps if s.kind is api.PackItemKind.CONFIG_ARTEFACT
        )
        rows = await env.rows(
            b, "SELECT name, latest_version FROM config_artefacts WHERE id = :id", id=b_artefact
        )
        assert [(r.name, r.latest_version) for r in rows] == [("th", 1)]
        (b_profile,) = (await env.call(api.LIST_DEVICE_PROFILES, b, api.ListDeviceProfiles())).data
        assert b_profile.config_artefact_id == b_artefact

        again = await env.call(api.IMPORT_PACK, b, api.ImportPack(document=document))
        assert again.outcome == "UNCHANGED" and again.pack.version == installed.pack.version

        # 1.1.0: the artefact's document and the humidity range change; B's user changed the
        # humidity profile meanwhile
        async with env.deps.profiles.uow(a) as uow:
            await ARTEFACTS.execute(
                uow,
                None,
                stream_id=artefact,
                command=artefacts.PublishVersion(document={"interval": 30}),
                org_id=a,
            )
            await uow.commit()
        await env.call(
            api.UPDATE_SENSOR_PROFILE,
            a,
            api.UpdateSensorProfile(id=hum.id, patch=api.SensorProfilePatch(max=110)),
        )
        await env.call(
            api.UPDATE_PACK, a, api.UpdatePack(id=pack.id, patch=api.PackPatch(version="1.1.0"))
        )
        newer = await env.call(api.EXPORT_PACK, a, api.ExportPack(id=pack.id))
        b_hum = next(s.sensor_profile_id for s in b_profile.sensors if s.key == "hum")
        await env.call(
            api.UPDATE_SENSOR_PROFILE,
            b,
            api.UpdateSensorProfile(
                id=b_hum, patch=api.SensorProfilePatch(display_name="Humidity %")
            ),
        )
        upgraded = await env.call(api.IMPORT_PACK, b, api.ImportPack(document=newer))
        assert upgraded.outcome == "UPGRADED"
        assert {(s.kind, s.action) for s in upgraded.steps} >= {
            (api.PackItemKind.CONFIG_ARTEFACT, "UPGRADE"),
            (api.PackItemKind.SENSOR_PROFILE, "CONFLICT"),
        }
        assert [c.resource_id for c in upgraded.conflicts] == [b_hum]
        rows = await env.rows(
            b, "SELECT latest_version FROM config_artefacts WHERE id = :id", id=b_artefact
        )
        assert [r.latest_version for r in rows] == [2]
        kept = await env.call(api.GET_SENSOR_PROFILE, b, api.GetSensorProfile(id=b_hum))
        assert (kept.display_name, kept.max) == ("Humidity %", 100)
        got = await env.call(api.GET_PACK, b, api.GetPack(id=upgraded.pack.id))
        assert got.pack_version == "1.1.0" and got.conflicts == [str(hum.id)]
        exported = await env.call(api.EXPORT_PACK, b, api.ExportPack(id=got.id))
        assert exported == newer  # an imported pack exports what it was installed from

        await env.call(api.DELETE_PACK, b, api.DeletePack(id=got.id))
        assert (await env.call(api.LIST_SENSOR_PROFILES, b, api.ListSensorProfiles())).data == []
        assert await env.rows(b, "SELECT id FROM config_artefacts") == []
        assert (await env.call(api.LIST_PACKS, b, api.ListPacks())).data == []
        # A keeps everything
        assert (
            len((await env.call(api.LIST_SENSOR_PROFILES, a, api.ListSensorProfiles())).data) == 2
        )
        assert [p.id for p in (await env.call(api.LIST_PACKS, a, api.ListPacks())).data] == [
            pack.id
        ]
