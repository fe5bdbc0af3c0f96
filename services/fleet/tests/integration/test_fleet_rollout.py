"""The rollout against real Postgres and NATS (ADR 0093): the fleet's view of devices fed by
DEVICES events, effective states recomputed for exactly the devices a change affects,
delivered in batches of at most 500 to a devices stand-in answering over request/reply
(retried after a failure, resumed from Postgres), compliance counted from reported states
with a drift event, and a profile-change job applied in batches with progress.

The configuration (artefacts, versions, bindings) is written into fleet's read models and its
events published on the FLEET stream as fleet's outbox relay would: what the recompute
consumer reads, whatever wrote them."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from fleet_testkit import Env, fleet_env

from outpost_contracts import device_config, fleet, streams, subjects
from outpost_contracts import devices as dev
from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.errors import NotFound
from outpost_contracts.fleet import Target, TargetType
from outpost_fleet import bootstrap
from outpost_fleet.app import profile_application
from outpost_fleet.entrypoints import rollout as rollout_entry
from outpost_fleet.settings import FleetSettings
from outpost_kit import ids
from outpost_kit.messaging import MSG_ID, apply_streams

pytestmark = pytest.mark.integration

SETTINGS = FleetSettings(idle_seconds=0.05, delivery_pause_seconds=0.0)


async def until(probe: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


async def publish(
    env: Env,
    org: uuid.UUID,
    stream_id: uuid.UUID,
    version: int,
    data: Event,
    stream_type: str = "device",
) -> None:
    envelope = EventEnvelope(
        id=ids.new_id(),
        org_id=org,
        stream_id=stream_id,
        stream_type=stream_type,
        version=version,
        occurred_at=ids.now(),
        data=data,
    )
    await env.js.publish(
        subjects.event(envelope.type, org),
        msgspec.json.encode(envelope),
        headers={MSG_ID: str(envelope.id)},
    )


async def register(env: Env, org: uuid.UUID, count: int, **placement: Any) -> list[uuid.UUID]:
    devices = sorted(uuid.uuid4() for _ in range(count))
    for start in range(0, count, 500):
        await asyncio.gather(
            *(
                publish(env, org, d, 1, dev.DeviceRegistered(name=f"d-{d.hex[:8]}", **placement))
                for d in devices[start : start + 500]
            )
        )
    return devices


async def known(env: Env, org: uuid.UUID) -> int:
    rows = await env.rows(org, "SELECT count(*) AS n FROM fleet_devices WHERE NOT decommissioned")
    return int(rows[0].n)


async def artefact(env: Env, org: uuid.UUID, *documents: dict[str, Any]) -> uuid.UUID:
    """An artefact with these versions (1, 2, ...), as fleet's read models hold it."""
    artefact_id = ids.new_id()
    now = ids.now()
    async with env.uow(org) as u:
        await u.execute(
            "INSERT INTO config_artefacts (org_id, id, name, latest_version, version_count,"
            " created_at, updated_at, version) VALUES (:org, :id, :name, :n, :n, :now, :now, 1)",
            {
                "org": org,
                "id": artefact_id,
                "name": f"a-{artefact_id.hex}",
                "n": len(documents),
                "now": now,
            },
        )
        for n, document in enumerate(documents, start=1):
            await u.execute(
                "INSERT INTO config_artefact_versions (org_id, artefact_id, version, document,"
                " size_bytes, created_at) VALUES (:org, :id, :n, CAST(:doc AS jsonb),"
                " :size, :now)",
                {
                    "org": org,
                    "id": artefact_id,
                    "n": n,
                    "doc": msgspec.json.encode(document).decode(),
                    "size": len(msgspec.json.encode(document)),
                    "now": now,
                },
            )
        await u.commit()
    return artefact_id


async def bind(
    env: Env,
    org: uuid.UUID,
    artefact_id: uuid.UUID,
    target: Target,
    *,
    priority: int = 0,
    version: int | None = None,
) -> uuid.UUID:
    """A binding in the read model, and its event on the FLEET stream."""
    binding_id = ids.new_id()
    now = ids.now()
    async with env.uow(org) as u:
        await u.execute(
            "INSERT INTO desired_state_bindings (org_id, id, artefact_id, artefact_version,"
            " target_type, target_id, priority, created_at, updated_at, version)"
            " VALUES (:org, :id, :a, :v, :tt, :tid, :p, :now, :now, 1)",
            {
                "org": org,
                "id": binding_id,
                "a": artefact_id,
                "v": version,
                "tt": target.type.value,
                "tid": target.id,
                "p": priority,
                "now": now,
            },
        )
        await u.commit()
    created = fleet.DesiredStateBindingCreated(
        artefact_id=artefact_id, target=target, priority=priority, artefact_version=version
    )
    await publish(env, org, binding_id, 1, created, "desired_state_binding")
    return binding_id


def delivered(env: Env, org: uuid.UUID) -> dict[uuid.UUID, device_config.FleetDesiredState]:
    """The newest state the devices stand-in was given, per device of ``org``."""
    found: dict[uuid.UUID, device_config.FleetDesiredState] = {}
    for org_id, request in env.devices.states:
        if org_id == org:
            for item in request.items:
                found[item.device_id] = item
    return found


@contextlib.asynccontextmanager
async def rollout(
    postgres_dsn: str, nats_url: str, settings: FleetSettings = SETTINGS
) -> AsyncIterator[tuple[Env, asyncio.Event]]:
    """fleet_env with the rollout's consumers and workers running (as ``bootstrap`` runs
    them), on the DEVICES and FLEET streams."""
    async with fleet_env(postgres_dsn, nats_url, settings) as env:
        await apply_streams(
            env.js,
            (streams.stream("DEVICES"), *streams.streams_of("fleet")),
            streams.consumers_of("fleet"),
        )
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(job(stop))
            for job in bootstrap.rollout_jobs(env.uow, env.nc, settings, env.deps)
        ]
        try:
            yield env, stop
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_an_organization_binding_reaches_every_device_in_batches(
    postgres_dsn: str, nats_url: str
) -> None:
    org, other = ids.new_id(), ids.new_id()
    async with rollout(postgres_dsn, nats_url) as (env, _):
        devices = await register(env, org, 1200)
        others = await register(env, other, 3)
        await until(lambda: _eq(known(env, org), 1200), "1200 devices known")
        await until(lambda: _eq(known(env, other), 3), "the other organization's devices known")
        assert delivered(env, org) == {}  # no binding applies yet: nothing to deliver
        doc = {"sampling": {"interval": 60}, "led": True}
        binding = await bind(
            env, org, await artefact(env, org, doc), Target(type=TargetType.ORGANIZATION)
        )

        async def all_delivered() -> bool:  # given to devices, and recorded
            rows = await env.rows(
                org, "SELECT count(*) AS n FROM effective_states WHERE delivered_at IS NOT NULL"
            )
            return len(delivered(env, org)) == 1200 and int(rows[0].n) == 1200

        await until(all_delivered, "every device of the organization given its state")
        states = delivered(env, org)
        assert set(states) == set(devices)
        assert all(s.document == doc for s in states.values())
        item = states[devices[0]]
        assert item.sources["/sampling/interval"].binding_id == binding
        assert item.sources["/led"].target_type is TargetType.ORGANIZATION
        sizes = [len(q.items) for o, q in env.devices.states if o == org]
        assert max(sizes) <= device_config.MAX_BATCH
        assert sum(sizes) == 1200  # each device once: nothing delivered twice
        assert not any(i.device_id in others for _, q in env.devices.states for i in q.items)
        queued = await env.rows(None, "SELECT 1 FROM delivery_queue WHERE tenant_id = :t", t=org)
        assert queued == []


async def test_precedence_and_exactly_the_affected_devices(
    postgres_dsn: str, nats_url: str
) -> None:
    org = ids.new_id()
    site, group = ids.new_id(), ids.new_id()
    async with rollout(postgres_dsn, nats_url) as (env, _):
        in_group = await register(env, org, 3, site_id=site, group_id=group)
        on_site = await register(env, org, 2, site_id=site)
        elsewhere = await register(env, org, 2)
        await until(lambda: _eq(known(env, org), 7), "7 devices known")
        base = await artefact(env, org, {"interval": 60, "unit": "s", "led": True})
        org_binding = await bind(env, org, base, Target(type=TargetType.ORGANIZATION))
        await until(lambda: _len_eq(delivered(env, org), 7), "the organization's binding delivered")
        calls_before = len(env.devices.states)
        fast = await artefact(env, org, {"interval": 10})
        group_binding = await bind(env, org, fast, Target(type=TargetType.GROUP, id=group))

        async def group_updated() -> bool:
            return all(delivered(env, org)[d].document["interval"] == 10 for d in in_group)

        await until(group_updated, "the group's devices given the group's interval")
        since = [i.device_id for _, q in env.devices.states[calls_before:] for i in q.items]
        assert sorted(since) == sorted(in_group)  # exactly the devices the change affects
        state = delivered(env, org)[in_group[0]]
        assert state.document == {"interval": 10, "unit": "s", "led": True}
        assert state.sources["/interval"].binding_id == group_binding
        assert state.sources["/unit"].binding_id == org_binding
        assert all(delivered(env, org)[d].document["interval"] == 60 for d in on_site + elsewhere)

        # A device moved into the group: its state follows, and only its.
        calls_before = len(env.devices.states)
        mover = elsewhere[0]
        await publish(env, org, mover, 2, dev.DeviceUpdated(changed=["groupId"], group_id=group))
        await until(
            lambda: _true(delivered(env, org)[mover].document["interval"] == 10), "the mover"
        )
        since = [i.device_id for _, q in env.devices.states[calls_before:] for i in q.items]
        assert since == [mover]

        # A new version of the group's artefact ("latest"): the group's devices again.
        async with env.uow(org) as u:
            await u.execute(
                "INSERT INTO config_artefact_versions (org_id, artefact_id, version, document,"
                " size_bytes, created_at) VALUES (:org, :id, 2, CAST(:doc AS jsonb),"
                " 15, now())",
                {"org": org, "id": fast, "doc": '{"interval": 5}'},
            )
            await u.commit()
        published = fleet.ConfigArtefactVersionPublished(version=2, document={"interval": 5})
        await publish(env, org, fast, 2, published, "config_artefact")

        async def five() -> bool:
            return all(delivered(env, org)[d].document["interval"] == 5 for d in [*in_group, mover])

        await until(five, "the new version delivered to the group")
        assert delivered(env, org)[mover].sources["/interval"].artefact_version == 2

        # The group's binding removed: its devices fall back to the organization's.
        async with env.uow(org) as u:
            await u.execute(
                "DELETE FROM desired_state_bindings WHERE id = :id", {"id": group_binding}
            )
            await u.commit()
        removed = fleet.DesiredStateBindingRemoved(artefact_id=fast)
        await publish(env, org, group_binding, 2, removed, "desired_state_binding")

        async def back() -> bool:
            return all(
                delivered(env, org)[d].document["interval"] == 60 for d in [*in_group, mover]
            )

        await until(back, "the organization's interval back on the group's devices")

        # Decommissioned: forgotten, never delivered again.
        await publish(env, org, on_site[0], 2, dev.DeviceDecommissioned())
        await until(lambda: _eq(known(env, org), 6), "the decommissioned device forgotten")
        assert (
            await env.rows(org, "SELECT 1 FROM effective_states WHERE device_id = :d", d=on_site[0])
            == []
        )


async def test_a_failed_delivery_is_retried_and_a_restart_resumes(
    postgres_dsn: str, nats_url: str
) -> None:
    org = ids.new_id()
    failures = {"left": 2}

    async with rollout(postgres_dsn, nats_url) as (env, _):
        devices = await register(env, org, 600)
        await until(lambda: _eq(known(env, org), 600), "600 devices known")

        async def flaky(ctx: Any, q: device_config.SetFleetDesiredStates) -> Any:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise RuntimeError("devices are restarting")
            ids = [i.device_id for i in q.items]
            return device_config.SetFleetDesiredStatesResult(
                changed=[d for d in ids if d != devices[0]],
                unchanged=[],
                missing=[],
                too_large=[d for d in ids if d == devices[0]],
            )

        env.devices.set_states = flaky
        await bind(
            env, org, await artefact(env, org, {"a": 1}), Target(type=TargetType.ORGANIZATION)
        )

        async def done() -> bool:
            rows = await env.rows(
                org, "SELECT count(*) AS n FROM effective_states WHERE delivery IS NOT NULL"
            )
            return int(rows[0].n) == 600

        await until(done, "every state delivered after the failures")
        assert failures["left"] == 0
        too_large = await env.rows(
            org, "SELECT count(*) AS n FROM effective_states WHERE delivery = 'TOO_LARGE'"
        )
        assert too_large[0].n == 1  # as devices answered for it
        assert set(delivered(env, org)) == set(devices)

    # A worker that died holding a batch: its lease lapses and the next worker delivers it.
    async with env.uow(org) as u:
        await u.execute(
            "INSERT INTO delivery_queue (device_id, tenant_id, digest, due_at, leased_until)"
            " SELECT device_id, org_id, digest, now(), now() + interval '1 second'"
            " FROM effective_states WHERE org_id = :org",
            {"org": org},
        )
        await u.commit()
    async with rollout(postgres_dsn, nats_url) as (env2, _):

        async def redelivered() -> bool:
            queued = await env2.rows(
                None, "SELECT 1 FROM delivery_queue WHERE tenant_id = :t", t=org
            )
            return len(delivered(env2, org)) == 600 and not queued

        await until(redelivered, "the lapsed batch delivered by a new worker")
        queued = await env2.rows(None, "SELECT 1 FROM delivery_queue WHERE tenant_id = :t", t=org)
        assert queued == []


async def test_compliance_counts_and_a_drift(postgres_dsn: str, nats_url: str) -> None:
    org = ids.new_id()
    async with rollout(postgres_dsn, nats_url) as (env, _):
        devices = await register(env, org, 4)
        await until(lambda: _eq(known(env, org), 4), "4 devices known")
        base = await artefact(env, org, {"interval": 60, "led": True})
        binding = await bind(env, org, base, Target(type=TargetType.ORGANIZATION))
        override = await artefact(env, org, {"led": False})
        device_binding = await bind(
            env, org, override, Target(type=TargetType.DEVICE, id=devices[3])
        )

        async def delivered_all() -> bool:
            rows = await env.rows(
                org,
                "SELECT count(*) AS n FROM effective_states WHERE delivered_at IS NOT NULL"
                " AND digest = delivered_digest",
            )
            return (
                len(delivered(env, org)) == 4
                and int(rows[0].n) == 4
                and (delivered(env, org)[devices[3]].document == {"interval": 60, "led": False})
            )

        await until(delivered_all, "every state delivered")
        status = await env.call(fleet.GET_BINDING_STATUS, org, fleet.GetBindingStatus(id=binding))
        assert (status.targeted, status.in_sync, status.drifted, status.pending) == (4, 0, 0, 4)

        async def report(device: uuid.UUID, version: int, reported: dict[str, Any]) -> None:
            event = device_config.ReportedStateChanged(
                device_id=device, reported=reported, reported_at=ids.now() + timedelta(seconds=1)
            )
            await publish(env, org, device, version, event)

        await report(devices[0], 2, {"interval": 60, "led": True, "extra": 1})
        await report(devices[1], 2, {"interval": 30, "led": True})
        # devices[3]: led is the device binding's key, not the organization's: in sync for it
        await report(devices[3], 2, {"interval": 60, "led": False})

        async def counted() -> bool:
            s = await env.call(fleet.GET_BINDING_STATUS, org, fleet.GetBindingStatus(id=binding))
            return (s.targeted, s.in_sync, s.drifted, s.pending) == (4, 2, 1, 1)

        await until(counted, "2 in sync, 1 drifted, 1 pending")
        own = await env.call(
            fleet.GET_BINDING_STATUS, org, fleet.GetBindingStatus(id=device_binding)
        )
        assert (own.targeted, own.in_sync) == (1, 1)
        by_version = await env.call(
            fleet.GET_ARTEFACT_VERSION_STATUS,
            org,
            fleet.GetArtefactVersionStatus(id=base, version=1),
        )
        assert (by_version.targeted, by_version.in_sync, by_version.drifted) == (4, 2, 1)

        # In sync, then something else: a drift event on the FLEET stream.
        sub = await env.nc.subscribe(subjects.event_filter("fleet", "DeviceConfigDrifted"))
        await report(devices[0], 3, {"interval": 15, "led": True})
        msg = await sub.next_msg(timeout=30)
        drift = msgspec.json.decode(msg.data)
        assert drift["orgId"] == str(org)
        assert drift["data"]["deviceId"] == str(devices[0])
        assert drift["data"]["pointers"] == ["/interval"]
        await sub.unsubscribe()

        # Tenancy: another organization's binding is not found.
        with pytest.raises(NotFound):
            await env.call(
                fleet.GET_BINDING_STATUS, ids.new_id(), fleet.GetBindingStatus(id=binding)
            )


async def test_a_profile_change_is_applied_in_batches_with_progress(
    postgres_dsn: str, nats_url: str
) -> None:
    org = ids.new_id()
    profile = ids.new_id()
    async with fleet_env(postgres_dsn, nats_url, SETTINGS) as env:
        await apply_streams(
            env.js,
            (streams.stream("DEVICES"), *streams.streams_of("fleet")),
            streams.consumers_of("fleet"),
        )
        # Only the devices consumer: the test runs the job worker's steps itself.
        stop = asyncio.Event()
        devices_job = bootstrap.rollout_jobs(env.uow, env.nc, SETTINGS, env.deps)[0]
        consumer = asyncio.create_task(devices_job(stop))
        users = await register(env, org, 1100, profile_id=profile)
        await register(env, org, 5)
        await until(lambda: _eq(known(env, org), 1105), "1105 devices known")
        stop.set()
        await asyncio.wait_for(consumer, 30)
        spec = fleet.DeviceProfileSpec(id=profile, version=2, name="sensor-v2")

        async def resolve(org_id: uuid.UUID, profile_id: uuid.UUID) -> fleet.DeviceProfileSpec:
            return spec

        job = await profile_application.request_application(
            env.deps.rollout, org, profile, 2, ids.now
        )
        assert (job.status, job.total, job.done) == (fleet.ApplicationStatus.PENDING, 1100, 0)
        options = profile_application.JobOptions()
        apply = rollout_entry.apply_via(env.nc)
        assert await profile_application.run_once(
            env.deps.rollout, resolve, apply, ids.now, options
        )
        view = await env.call(
            fleet.GET_PROFILE_APPLICATION, org, fleet.GetProfileApplication(id=profile)
        )
        assert (view.status, view.done, view.total) == (fleet.ApplicationStatus.RUNNING, 500, 1100)
        while await profile_application.run_once(
            env.deps.rollout, resolve, apply, ids.now, options
        ):
            pass
        view = await env.call(
            fleet.GET_PROFILE_APPLICATION, org, fleet.GetProfileApplication(id=profile)
        )
        assert (view.status, view.done, view.total) == (
            fleet.ApplicationStatus.COMPLETED,
            1100,
            1100,
        )
        applied = [d for o, q in env.devices.applied if o == org for d in q.device_ids]
        assert sorted(applied) == users  # each device once, in id order, batches of 500
        assert [len(q.device_ids) for o, q in env.devices.applied if o == org] == [500, 500, 100]
        assert all(q.profile == spec for _, q in env.devices.applied)
        with pytest.raises(NotFound):
            await env.call(
                fleet.GET_PROFILE_APPLICATION, org, fleet.GetProfileApplication(id=ids.new_id())
            )


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _len_eq(value: dict[Any, Any], expected: int) -> bool:
    return len(value) == expected


async def _true(value: bool) -> bool:
    return value


async def test_a_device_profile_changed_is_applied_and_its_default_configuration_bound(
    postgres_dsn: str, nats_url: str
) -> None:
    """Through the service's own operations: a device profile with a default config artefact
    (an implicit binding on the profile, below the bindings made on it), changed: its job
    applies the new version to every device that has it, with progress."""
    org = ids.new_id()
    async with rollout(postgres_dsn, nats_url) as (env, _):
        defaults = await artefact(env, org, {"sampling": {"interval": 30}, "led": True})
        profile = await env.call(
            fleet.CREATE_DEVICE_PROFILE, org, fleet.CreateDeviceProfile(name="meter")
        )
        # The artefact is only in the read models here (see the module's docstring), which
        # the profile's use case does not take for an artefact: its default is set there too.
        async with env.uow(org) as u:
            await u.execute(
                "UPDATE device_profiles SET config_artefact_id = :a WHERE id = :id",
                {"a": defaults, "id": profile.id},
            )
            await u.commit()
        users = await register(env, org, 700, profile_id=profile.id)
        others = await register(env, org, 2)
        await until(lambda: _eq(known(env, org), 702), "702 devices known")

        async def defaults_delivered() -> bool:
            got = delivered(env, org)
            return len(got) == 700 and all(
                got[d].document == {"sampling": {"interval": 30}, "led": True} for d in users
            )

        await until(defaults_delivered, "the profile's default configuration delivered")
        assert not set(others) & set(delivered(env, org))
        source = delivered(env, org)[users[0]].sources["/led"]
        assert (source.binding_id, source.target_type) == (profile.id, TargetType.PROFILE)
        # A binding made on the profile wins over its default.
        override = await artefact(env, org, {"led": False})
        await bind(env, org, override, Target(type=TargetType.PROFILE, id=profile.id))
        await until(
            lambda: _true(all(delivered(env, org)[d].document["led"] is False for d in users)),
            "the profile binding over the default",
        )

        changed = await env.call(
            fleet.UPDATE_DEVICE_PROFILE,
            org,
            fleet.UpdateDeviceProfile(
                id=profile.id, patch=fleet.DeviceProfilePatch(firmware_family="meter-fw")
            ),
        )

        async def applied() -> bool:
            try:
                view = await env.call(
                    fleet.GET_PROFILE_APPLICATION,
                    org,
                    fleet.GetProfileApplication(id=profile.id),
                )
            except NotFound:
                return False
            return bool(view.status is fleet.ApplicationStatus.COMPLETED)

        await until(applied, "the profile's change applied to its devices")
        view = await env.call(
            fleet.GET_PROFILE_APPLICATION, org, fleet.GetProfileApplication(id=profile.id)
        )
        assert (view.profile_version, view.total, view.done) == (changed.version, 700, 700)
        batches = [q for o, q in env.devices.applied if o == org]
        assert [len(q.device_ids) for q in batches] == [500, 200]
        assert sorted(d for q in batches for d in q.device_ids) == users
        assert all(q.profile.firmware_family == "meter-fw" for q in batches)
        assert all(q.profile.version == changed.version for q in batches)
