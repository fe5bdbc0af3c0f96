"""Streaming evaluation against real nats-server and Postgres: each condition kind through
the real telemetry loop, ``forSeconds`` across a restart, ``nodata`` from the timer,
redelivery and two evaluators at once giving one alert, auto-resolve and manual transitions,
scopes, the timeline and tenant isolation."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy.exc import IntegrityError

from outpost_alerting import bootstrap
from outpost_alerting.adapters import evaluation_store as store
from outpost_alerting.adapters.projections import AlertingProjector
from outpost_alerting.adapters.store import PgAlerting
from outpost_alerting.app import evaluation, handlers
from outpost_alerting.app.handlers import execute_alert
from outpost_alerting.domain import alerts
from outpost_alerting.domain import evaluation as eval_domain
from outpost_alerting.entrypoints import telemetry
from outpost_contracts import alerting as api
from outpost_contracts import streams, subjects
from outpost_contracts.devices import DeviceDecommissioned, DeviceRegistered, DeviceUpdated
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.identity import OrganizationReinstated, OrganizationSuspended
from outpost_contracts.presence import DeviceConnected, DeviceDisconnected, Protocol
from outpost_contracts.query import Cmp, ListQuery
from outpost_contracts.readings import TelemetryReading
from outpost_contracts.streams import ConsumerSpec
from outpost_devkit.testing.suspensions import record_organization_event
from outpost_kit import ids, messaging
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
USER = uuid.UUID(int=7)


def ctx(org: uuid.UUID) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(4),
        org_id=org,
        principal=Principal(kind=PrincipalKind.USER, id=USER, org_id=org, role="admin"),
    )


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class Env:
    def __init__(self, uow: UnitOfWorkFactory, nc: NATS) -> None:
        self.uow = uow
        self.nc = nc
        self.deps = handlers.Deps(uow=PgAlerting.over(uow))
        self.js = nc.jetstream()
        self.org = ids.new_id()

    async def device(
        self, *, group: uuid.UUID | None = None, org: uuid.UUID | None = None
    ) -> uuid.UUID:
        device = ids.new_id()
        await self.device_event(
            device, 1, DeviceRegistered(name=f"d-{device}", group_id=group), org
        )
        return device

    async def device_event(
        self, device: uuid.UUID, version: int, data: Any, org: uuid.UUID | None = None
    ) -> None:
        org = org or self.org
        envelope = EventEnvelope(
            id=ids.new_id(),
            org_id=org,
            stream_id=device,
            stream_type="device",
            version=version,
            occurred_at=ids.now(),
            data=data,
        )
        async with self.uow(org) as uow:
            await evaluation.on_device_event(uow, envelope)
            await uow.commit()

    async def rule(self, org: uuid.UUID | None = None, **body: Any) -> api.AlertRuleView:
        fields = {
            "name": "hot",
            "scope": {"type": "ORGANIZATION"},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 30},
            "severity": "MAJOR",
            **body,
        }
        cmd = msgspec.convert(fields, api.CreateAlertRule)
        return await handlers.create_rule(self.deps, ctx(org or self.org), cmd)

    async def consumer(self) -> ConsumerSpec:
        """A durable consumer of this organization's telemetry, like alerting-telemetry."""
        spec = ConsumerSpec(
            stream="TELEMETRY",
            name=f"test-{secrets.token_hex(6)}",
            owner="alerting",
            filter_subjects=(f"{subjects.PREFIX}.tel.{self.org}.>",),
            max_deliver=5,
        )
        await messaging.apply_streams(self.js, [streams.stream("TELEMETRY")], [spec])
        return spec

    async def publish(self, device: uuid.UUID, *readings: tuple[str, Any, str]) -> None:
        body = {"seq": 1, "readings": [{"sensor": s, "value": v, "ts": t} for s, v, t in readings]}
        await self.js.publish(subjects.telemetry(self.org, device), msgspec.json.encode(body))

    async def drain(self, spec: ConsumerSpec, *, loops: int = 1) -> None:
        """Run the real evaluation loop(s) until nothing is left to deliver or ack."""
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(telemetry.run(self.uow, self.nc, spec, 100, stop))
            for _ in range(loops)
        ]
        try:
            for _ in range(1200):  # up to a minute: the CI machine can be several times slower
                info = await self.js.consumer_info(spec.stream, spec.name)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{info.num_pending + info.num_ack_pending} messages left")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

    async def alerts(self, org: uuid.UUID | None = None, **filters: Any) -> list[api.AlertView]:
        page = await handlers.list_alerts(self.deps, ctx(org or self.org), api.ListOf())
        return [a for a in page.data if all(getattr(a, k) == v for k, v in filters.items())]


@pytest.fixture
async def env(postgres_dsn: str, nats_url: str) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "alerting", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "alerting", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "alerting", pool_size=4)
    nc = await nats.connect(nats_url)
    codec = EventCodec((*api.EVENT_TYPES, *evaluation.DEVICE_EVENTS))
    try:
        yield Env(UnitOfWorkFactory(engine, codec, (AlertingProjector(),)), nc)
    finally:
        await nc.close()
        await engine.dispose()


async def test_a_threshold_fires_once_with_its_trigger_and_clears_by_itself(env: Env) -> None:
    device = await env.device()
    rule = await env.rule()
    spec = await env.consumer()
    await env.publish(device, ("temp", 20, at(0)), ("humidity", 99, at(0)))
    await env.publish(device, ("temp", 31.5, at(1)))
    await env.publish(device, ("temp", 35, at(2)), ("temp", 40, at(3)))
    await env.drain(spec)
    [alert] = await env.alerts()
    assert (alert.rule_id, alert.device_id, alert.status) == (rule.id, device, api.AlertStatus.OPEN)
    assert alert.severity == api.Severity.MAJOR and alert.rule_version == 1
    t = alert.trigger
    assert (t.value, t.ts, t.condition, t.rule_version) == (
        31.5,
        NOW + timedelta(seconds=1),
        "temp > 30",
        1,
    )
    await env.publish(device, ("temp", 29, at(4)))
    await env.drain(spec)
    [resolved] = await env.alerts()
    assert resolved.status == api.AlertStatus.RESOLVED
    assert (resolved.resolution, resolved.clear_value) == (api.Resolution.CLEARED, 29)
    assert resolved.resolved_by is None


async def test_outside_and_a_text_value_that_changes_nothing(env: Env) -> None:
    device = await env.device()
    await env.rule(condition={"op": "outside", "low": 10, "high": 20})
    spec = await env.consumer()
    await env.publish(device, ("temp", 15, at(0)), ("temp", "broken", at(1)), ("temp", 21, at(2)))
    await env.drain(spec)
    [alert] = await env.alerts()
    assert alert.trigger.value == 21 and alert.trigger.condition == "temp outside [10, 20]"


async def test_for_seconds_fires_after_the_window_and_survives_a_restart(env: Env) -> None:
    device = await env.device()
    await env.rule(forSeconds=60)
    spec = await env.consumer()
    await env.publish(device, ("temp", 31, at(0)), ("temp", 32, at(30)))
    await env.drain(spec)
    assert await env.alerts() == []
    # The evaluator "restarts": a new loop (and pool) later; the window is in Postgres.
    await env.publish(device, ("temp", 33, at(59)))
    await env.drain(spec)
    assert await env.alerts() == []
    await env.publish(device, ("temp", 34, at(60)))
    await env.drain(spec)
    [alert] = await env.alerts()
    assert alert.trigger.since == NOW and alert.trigger.first is not None
    assert alert.trigger.first.value == 31 and alert.trigger.condition == "temp > 30 for 60s"


async def test_a_pending_window_fires_from_the_timer(env: Env) -> None:
    device = await env.device()
    await env.rule(forSeconds=30)
    spec = await env.consumer()
    await env.publish(device, ("temp", 31, at(0)))
    await env.drain(spec)
    early = await evaluation.fire_due(
        env.uow, ids.now() + timedelta(seconds=5), timedelta(seconds=30), 1000
    )
    assert await env.alerts() == [] and early.fired == 0
    await evaluation.fire_due(
        env.uow, ids.now() + timedelta(seconds=31), timedelta(seconds=30), 1000
    )
    [alert] = await env.alerts()
    assert alert.trigger.value == 31


async def test_nodata_fires_from_the_timer_and_clears_when_data_comes_back(env: Env) -> None:
    quiet = await env.device()
    await env.rule(condition={"op": "nodata", "seconds": 60}, severity="CRITICAL")
    joined = await env.device()  # registered after the rule: watched too
    later = ids.now() + timedelta(seconds=61)
    await evaluation.fire_due(env.uow, later, timedelta(seconds=30), 1000)
    alerts = await env.alerts()
    assert {a.device_id for a in alerts} == {quiet, joined}
    assert all(
        a.trigger.value is None and a.trigger.condition == "no temp reading for 60s" for a in alerts
    )
    await evaluation.fire_due(env.uow, later + timedelta(seconds=5), timedelta(seconds=30), 1000)
    assert len(await env.alerts()) == 2  # fired once
    spec = await env.consumer()
    await env.publish(quiet, ("temp", 1, at(0)))
    await env.drain(spec)
    assert [a.status for a in await env.alerts(device_id=quiet)] == [api.AlertStatus.RESOLVED]


async def test_redelivery_and_two_evaluators_at_once_give_one_alert(env: Env) -> None:
    devices = [await env.device() for _ in range(5)]
    await env.rule()
    batch = [
        evaluation.Incoming(
            org_id=env.org,
            device_id=d,
            arrival=ids.now(),
            points=[
                evaluation.Point(sensor="temp", value=float(31 + i), ts=NOW + timedelta(seconds=i))
                for i in range(3)
            ],
        )
        for d in devices
    ]
    outcomes = await asyncio.gather(
        *(evaluation.evaluate(env.uow, batch, ids.now()) for _ in range(4))
    )
    assert sum(o.fired for o in outcomes) == 5
    await evaluation.evaluate(env.uow, batch, ids.now())  # a redelivery later
    alerts = await env.alerts()
    assert sorted(a.device_id for a in alerts) == sorted(devices)
    # Through the broker: the same readings published twice, two loops on one consumer.
    spec = await env.consumer()
    for _ in range(2):
        for d in devices:
            await env.publish(d, ("temp", 50, at(10)), ("temp", 51, at(11)))
    await env.drain(spec, loops=2)
    assert len(await env.alerts()) == 5


async def test_the_database_refuses_a_second_unresolved_alert(env: Env) -> None:
    device = await env.device()
    rule = await env.rule()
    await evaluation.evaluate(
        env.uow,
        [
            evaluation.Incoming(
                org_id=env.org,
                device_id=device,
                arrival=ids.now(),
                points=[evaluation.Point(sensor="temp", value=40.0, ts=NOW)],
            )
        ],
        ids.now(),
    )
    # Watches lost (an operator wiped them): evaluation would fire again; the index says no.
    async with env.uow(env.org) as uow:
        await uow.execute("DELETE FROM watches WHERE rule_id = :r", {"r": rule.id})
        await uow.commit()
    outcome = await evaluation.evaluate(
        env.uow,
        [
            evaluation.Incoming(
                org_id=env.org,
                device_id=device,
                arrival=ids.now(),
                points=[evaluation.Point(sensor="temp", value=41.0, ts=NOW + timedelta(seconds=1))],
            )
        ],
        ids.now(),
    )
    assert outcome.fired == 0 and len(await env.alerts()) == 1
    # Evaluation checks before it opens; the database refuses a second one even without.
    [alert] = await env.alerts()
    with pytest.raises(IntegrityError):
        async with env.uow(env.org) as uow:
            await uow.events.append(
                org_id=env.org,
                stream_id=ids.new_id(),
                stream_type=alerts.ALERT,
                expected_version=0,
                events=[
                    api.AlertOpened(
                        rule_id=rule.id,
                        rule_version=rule.version,
                        device_id=device,
                        sensor="temp",
                        severity=api.Severity.MAJOR,
                        trigger=alert.trigger,
                    )
                ],
            )
    assert len(await env.alerts()) == 1


def _one(device: uuid.UUID, org: uuid.UUID, *values: tuple[float, int]) -> evaluation.Incoming:
    return evaluation.Incoming(
        org_id=org,
        device_id=device,
        arrival=ids.now(),
        points=[
            evaluation.Point(sensor="temp", value=v, ts=NOW + timedelta(seconds=s))
            for v, s in values
        ],
    )


async def _blocked_on_a_lock(uow: UnitOfWorkFactory) -> None:
    """Until some other session waits for a row lock (evaluation, on a watch)."""
    for _ in range(3000):  # at least 30 s: a loaded machine
        async with uow(None) as u:
            waiting = (
                await u.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            ).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("evaluation never waited for the watch")


async def test_a_fire_right_after_a_resolution_by_hand_that_it_waited_for(env: Env) -> None:
    """Evaluation reads each pair's unresolved alert with the watch's lock, as of the
    statement's start. Here it waits for the lock while someone resolves the alert by hand:
    it sees the watch as the resolution left it but the alert still open, then its readings
    clear and fire again. It must look again and open a new alert, not drop the fire."""
    device = await env.device()
    await env.rule()
    await evaluation.evaluate(env.uow, [_one(device, env.org, (40.0, 0))], ids.now())
    [first] = await env.alerts()
    rule_id = first.rule_id
    async with env.uow(env.org) as manual:  # handlers.resolve_alert, held open
        watches = await store.lock_watches(manual.conn, env.org, [(rule_id, device)])
        racing = asyncio.create_task(
            evaluation.evaluate(env.uow, [_one(device, env.org, (20.0, 1), (45.0, 2))], ids.now())
        )
        await _blocked_on_a_lock(env.uow)
        await execute_alert(manual, None, env.org, first.id, alerts.Resolve(by=USER))
        await store.save_watches(
            manual.conn,
            env.org,
            {(rule_id, device): eval_domain.resolved_by_hand(watches[(rule_id, device)])},
        )
        await manual.commit()
    outcome = await racing
    assert outcome.fired == 1
    found = {a.id: a.status for a in await env.alerts()}
    assert found[first.id] == api.AlertStatus.RESOLVED
    [second] = [a for a in await env.alerts() if a.id != first.id]
    assert second.status == api.AlertStatus.OPEN and second.trigger.value == 45.0


async def test_acknowledge_and_resolve_by_hand_then_fire_again_only_after_clearing(
    env: Env,
) -> None:
    device = await env.device()
    await env.rule()
    spec = await env.consumer()
    await env.publish(device, ("temp", 40, at(0)))
    await env.drain(spec)
    [alert] = await env.alerts()
    acked = await handlers.acknowledge_alert(
        env.deps, ctx(env.org), api.AlertAction(id=alert.id, comment="looking")
    )
    assert (acked.status, acked.acknowledged_by, acked.acknowledge_comment) == (
        api.AlertStatus.ACKNOWLEDGED,
        USER,
        "looking",
    )
    with pytest.raises(Conflict):
        await handlers.acknowledge_alert(env.deps, ctx(env.org), api.AlertAction(id=alert.id))
    done = await handlers.resolve_alert(
        env.deps, ctx(env.org), api.AlertAction(id=alert.id, comment="fan fixed")
    )
    assert (done.status, done.resolution, done.resolved_by) == (
        api.AlertStatus.RESOLVED,
        api.Resolution.MANUAL,
        USER,
    )
    await env.publish(device, ("temp", 41, at(1)))  # still hot: no new alert
    await env.drain(spec)
    assert len(await env.alerts()) == 1
    await env.publish(device, ("temp", 20, at(2)), ("temp", 45, at(3)))  # cleared, then hot
    await env.drain(spec)
    assert [a.status for a in await env.alerts()] == [
        api.AlertStatus.RESOLVED,
        api.AlertStatus.OPEN,
    ]


async def test_group_scope_covers_the_group_and_a_device_moved_into_it(env: Env) -> None:
    group = ids.new_id()
    inside = await env.device(group=group)
    outside = await env.device()
    await env.rule(scope={"type": "GROUP", "id": str(group)})
    spec = await env.consumer()
    await env.publish(inside, ("temp", 40, at(0)))
    await env.publish(outside, ("temp", 40, at(0)))
    await env.drain(spec)
    assert [a.device_id for a in await env.alerts()] == [inside]
    await env.device_event(outside, 2, DeviceUpdated(changed=["groupId"], group_id=group))
    await env.publish(outside, ("temp", 40, at(1)))
    await env.drain(spec)
    assert sorted(a.device_id for a in await env.alerts()) == sorted([inside, outside])
    await env.device_event(outside, 3, DeviceDecommissioned())
    await env.publish(outside, ("temp", 10, at(2)), ("temp", 40, at(3)))
    await env.drain(spec)
    assert len(await env.alerts()) == 2  # a decommissioned device is not evaluated


async def test_one_batch_finds_each_devices_rules_by_scope_and_sensor(env: Env) -> None:
    """A batch's devices and the rules that may cover them are read in one statement:
    organization, device, group and site scopes, the sensor, a device not known yet."""
    site, group, elsewhere = ids.new_id(), ids.new_id(), ids.new_id()
    in_site, in_group, named, other_site, unknown = (ids.new_id() for _ in range(5))
    for device, data in (
        (in_site, DeviceRegistered(name="s", site_id=site)),
        (in_group, DeviceRegistered(name="g", group_id=group)),
        (named, DeviceRegistered(name="n")),
        (other_site, DeviceRegistered(name="o", site_id=elsewhere, group_id=ids.new_id())),
    ):
        await env.device_event(device, 1, data)
    by_scope = {
        "site": await env.rule(scope={"type": "SITE", "id": str(site)}),
        "group": await env.rule(scope={"type": "GROUP", "id": str(group)}),
        "named": await env.rule(scope={"type": "DEVICE", "id": str(named)}),
        "unknown": await env.rule(scope={"type": "DEVICE", "id": str(unknown)}),
        "humidity": await env.rule(sensor="hum"),  # the organization's, another sensor
    }
    batch = [_one(d, env.org, (40.0, 0)) for d in (in_site, in_group, named, other_site, unknown)]
    outcome = await evaluation.evaluate(env.uow, batch, ids.now())
    fired = {(a.rule_id, a.device_id) for a in await env.alerts()}
    assert fired == {
        (by_scope["site"].id, in_site),
        (by_scope["group"].id, in_group),
        (by_scope["named"].id, named),
    }
    assert outcome.fired == 3
    assert outcome.unknown == {(env.org, unknown)}  # judged later, once it is known here


async def test_readings_are_judged_in_timestamp_order_whatever_order_they_came_in(
    env: Env,
) -> None:
    """Within a message and across a batch's messages, readings are folded in timestamp
    order (no timestamp: the message's arrival), per sensor."""
    device, other = await env.device(), await env.device()
    hot = await env.rule()
    humid = await env.rule(sensor="hum", condition={"op": ">", "threshold": 90})
    arrival = NOW + timedelta(seconds=30)
    batch = [
        evaluation.Incoming(
            org_id=env.org,
            device_id=device,
            arrival=arrival,
            points=[
                TelemetryReading(sensor="temp", value=20, ts=NOW + timedelta(seconds=2)),
                TelemetryReading(sensor="hum", value=True, ts=NOW),  # a boolean: 1.0
                TelemetryReading(sensor="temp", value=40, ts=NOW + timedelta(seconds=1)),
                TelemetryReading(sensor="hum", value=95.5),  # no ts: the arrival
            ],
        ),
        # An earlier message of the other device, later in the batch: its own order.
        _one(other, env.org, (41.0, 5)),
        _one(other, env.org, (42.0, 3)),
    ]
    outcome = await evaluation.evaluate(env.uow, batch, ids.now())
    assert (outcome.fired, outcome.cleared) == (3, 1)
    [opened_then_cleared] = await env.alerts(rule_id=hot.id, device_id=device)
    assert opened_then_cleared.status == api.AlertStatus.RESOLVED
    assert opened_then_cleared.trigger.value == 40 and opened_then_cleared.clear_value == 20
    [humidity] = await env.alerts(rule_id=humid.id)
    assert (humidity.trigger.value, humidity.trigger.ts) == (95.5, arrival)
    [first_of_other] = await env.alerts(device_id=other)
    assert first_of_other.trigger.value == 42 and first_of_other.trigger.ts == NOW + timedelta(
        seconds=3
    )


async def test_rule_versions_are_recorded_and_deleting_a_rule_resolves_its_alerts(env: Env) -> None:
    device = await env.device()
    rule = await env.rule()
    changed = await handlers.update_rule(
        env.deps,
        ctx(env.org),
        api.UpdateAlertRule(
            id=rule.id,
            patch=api.AlertRulePatch(condition=api.Condition(op=">", threshold=50)),
            expected_version=1,
        ),
    )
    assert changed.version == 2
    spec = await env.consumer()
    await env.publish(device, ("temp", 40, at(0)), ("temp", 55, at(1)))
    await env.drain(spec)
    [alert] = await env.alerts()
    assert (alert.rule_version, alert.trigger.value, alert.trigger.condition) == (
        2,
        55,
        "temp > 50",
    )
    await handlers.delete_rule(env.deps, ctx(env.org), api.DeleteById(id=rule.id))
    [resolved] = await env.alerts()
    assert resolved.status == api.AlertStatus.RESOLVED
    with pytest.raises(NotFound):
        await handlers.get_rule(env.deps, ctx(env.org), api.ById(id=rule.id))


async def test_the_timeline_and_another_organization(env: Env) -> None:
    device = await env.device()
    await env.device_event(
        device, 2, DeviceConnected(connected_at=ids.now(), protocol=Protocol.MQTT, connection="s/1")
    )
    rule = await env.rule()
    spec = await env.consumer()
    await env.publish(device, ("temp", 40, at(0)))
    await env.drain(spec)
    [alert] = await env.alerts()
    page = await handlers.list_events(env.deps, ctx(env.org), api.ListOf())
    assert [(e.type, e.device_id) for e in page.data] == [
        ("devices.DeviceRegistered.v1", device),
        ("devices.DeviceConnected.v1", device),
        ("alerting.AlertOpened.v1", device),
    ]
    assert page.data[2].alert_id == alert.id and "temp > 30" in page.data[2].summary
    # Numbered in commit order (ADR 0096), each announced on the organization's subject.
    assert [e.seq for e in page.data] == [1, 2, 3]
    past = ListQuery(filter=Cmp(field="seq", op="gt", value=2))
    later = await handlers.list_events(env.deps, ctx(env.org), api.ListOf(query=past))
    assert [e.seq for e in later.data] == [3]
    async with env.uow(None) as uow:
        rows = await uow.execute(
            "SELECT payload FROM outbox WHERE subject = :s ORDER BY position",
            {"s": subjects.timeline(env.org)},
        )
        announced = [msgspec.json.decode(bytes(r[0])) for r in rows]
        assert announced == [{"seq": 1}, {"seq": 2}, {"seq": 3}]
    other = ids.new_id()
    assert (await handlers.list_events(env.deps, ctx(other), api.ListOf())).data == []
    assert await env.alerts(org=other) == []
    assert (await handlers.list_rules(env.deps, ctx(other), api.ListOf())).data == []
    for call in (
        handlers.get_alert(env.deps, ctx(other), api.ById(id=alert.id)),
        handlers.get_rule(env.deps, ctx(other), api.ById(id=rule.id)),
        handlers.resolve_alert(env.deps, ctx(other), api.AlertAction(id=alert.id)),
        handlers.delete_rule(env.deps, ctx(other), api.DeleteById(id=rule.id)),
    ):
        with pytest.raises(NotFound):
            await call
    query = ListQuery(filter=None)
    assert (await handlers.list_alerts(env.deps, ctx(env.org), api.ListOf(query=query))).data


async def test_readings_of_a_device_not_known_yet_are_evaluated_once_it_is(env: Env) -> None:
    await env.rule()
    device = ids.new_id()
    spec = await env.consumer()
    await env.publish(device, ("temp", 40, at(0)))
    stop = asyncio.Event()
    loop = asyncio.create_task(telemetry.run(env.uow, env.nc, spec, 100, stop))
    try:
        await asyncio.sleep(0.5)  # delivered, not judged: alerting has not seen the device
        assert await env.alerts() == []
        await env.device_event(device, 1, DeviceRegistered(name="late"))
        for _ in range(600):  # up to a minute: a loaded machine
            if await env.alerts():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
    [alert] = await env.alerts()
    assert alert.device_id == device and alert.trigger.value == 40


async def test_offline_fires_from_presence_and_the_timer_and_clears_on_connect(env: Env) -> None:
    device = await env.device()
    other = await env.device()
    await env.rule(condition={"op": "offline", "seconds": 60}, severity="MINOR")
    down = ids.now()
    await env.device_event(
        device, 2, DeviceDisconnected(disconnected_at=down, connection="s/1", reason="gone")
    )
    # A quick reconnect of the other device fires nothing.
    await env.device_event(other, 2, DeviceDisconnected(disconnected_at=down, connection="s/2"))
    await env.device_event(
        other,
        3,
        DeviceConnected(
            connected_at=down + timedelta(seconds=5), protocol=Protocol.NATS, connection="s/3"
        ),
    )
    await evaluation.fire_due(env.uow, down + timedelta(seconds=59), timedelta(seconds=30), 1000)
    assert await env.alerts() == []
    await evaluation.fire_due(env.uow, down + timedelta(seconds=61), timedelta(seconds=30), 1000)
    [alert] = await env.alerts()
    assert alert.device_id == device and alert.trigger.condition == "device offline for 60s"
    assert alert.trigger.since == down and alert.severity == api.Severity.MINOR
    await env.device_event(
        device,
        3,
        DeviceConnected(
            connected_at=down + timedelta(seconds=90), protocol=Protocol.MQTT, connection="s/4"
        ),
    )
    [cleared] = await env.alerts()
    assert (cleared.status, cleared.resolution) == (
        api.AlertStatus.RESOLVED,
        api.Resolution.CLEARED,
    )


async def test_an_offline_rule_without_a_sensor_fires_from_presence_and_no_reading_reaches_it(
    env: Env,
) -> None:
    """Decision 71: no sensor for ``offline``; readings of any sensor (a rule of another op
    on the same device fires from them, proving they were evaluated) leave it alone; the
    device's disconnect fires it, the alert and its timeline entry carry no sensor."""
    device = await env.device()
    rule = await env.rule(sensor=None, condition={"op": "offline", "seconds": 60})
    assert rule.sensor is None and rule.condition.op == "offline"
    got = await handlers.get_rule(env.deps, ctx(env.org), api.ById(id=rule.id))
    assert got.sensor is None
    hot = await env.rule(name="hot", sensor="temp", condition={"op": ">", "threshold": 30})
    spec = await env.consumer()
    await env.publish(device, ("temp", 40, at(0)), ("offline", 1, at(0)), ("humidity", 99, at(1)))
    await env.drain(spec)
    assert [a.rule_id for a in await env.alerts()] == [hot.id]
    down = ids.now()
    await env.device_event(
        device, 2, DeviceDisconnected(disconnected_at=down, connection="s/1", reason="gone")
    )
    await evaluation.fire_due(env.uow, down + timedelta(seconds=61), timedelta(seconds=30), 1000)
    [alert] = await env.alerts(rule_id=rule.id)
    assert (alert.device_id, alert.sensor, alert.status) == (device, None, api.AlertStatus.OPEN)
    assert alert.trigger.condition == "device offline for 60s" and alert.trigger.since == down
    page = await handlers.list_events(env.deps, ctx(env.org), api.ListOf())
    [opened] = [e for e in page.data if e.alert_id == alert.id]
    assert opened.summary == "MAJOR alert opened: device offline for 60s"


async def test_an_offline_rule_changed_to_a_comparison_needs_a_sensor_and_back(env: Env) -> None:
    rule = await env.rule(sensor=None, condition={"op": "offline", "seconds": 60})
    to_hot = api.AlertRulePatch(condition=api.Condition(op=">", threshold=30))
    with pytest.raises(ValidationFailed) as caught:
        await handlers.update_rule(
            env.deps, ctx(env.org), api.UpdateAlertRule(id=rule.id, patch=to_hot)
        )
    assert [f.name for f in caught.value.fields] == ["sensor"]
    same = await handlers.get_rule(env.deps, ctx(env.org), api.ById(id=rule.id))
    assert (same.version, same.sensor, same.condition.op) == (1, None, "offline")
    both = msgspec.structs.replace(to_hot, sensor="temp")
    hot = await handlers.update_rule(
        env.deps, ctx(env.org), api.UpdateAlertRule(id=rule.id, patch=both)
    )
    assert (hot.version, hot.sensor, hot.condition.op) == (2, "temp", ">")
    back = api.AlertRulePatch(condition=api.Condition(op="offline", seconds=30), sensor=None)
    offline = await handlers.update_rule(
        env.deps, ctx(env.org), api.UpdateAlertRule(id=rule.id, patch=back)
    )
    assert (offline.version, offline.sensor, offline.condition.op) == (3, None, "offline")
    # The rule filter on sensor still works with rules that have none.
    page = await handlers.list_rules(env.deps, ctx(env.org), api.ListOf())
    assert [r.sensor for r in page.data] == [None]


async def test_an_offline_rule_keeps_a_sensor_given_and_its_readings_still_do_not_fire_it(
    env: Env,
) -> None:
    """A sensor given with ``offline`` is kept as given (decision 71) and shown on its
    alerts; readings of that very sensor never fire or clear it."""
    device = await env.device()
    rule = await env.rule(sensor="temp", condition={"op": "offline", "seconds": 60})
    assert rule.sensor == "temp"
    # Readings do not even reach its watch (evaluation does not select it for them).
    spec = await env.consumer()
    await env.publish(device, ("temp", 40, at(-2)))
    await env.drain(spec)
    async with env.uow(env.org) as uow:
        watched = await uow.execute(
            "SELECT count(*) FROM watches WHERE rule_id = :r", {"r": rule.id}
        )
        assert watched.scalar_one() == 0
    down = ids.now()
    await env.device_event(device, 2, DeviceDisconnected(disconnected_at=down, connection="s/1"))
    await env.publish(device, ("temp", 40, at(0)), ("temp", 41, at(1)))
    await env.drain(spec)
    assert await env.alerts() == []
    await evaluation.fire_due(env.uow, down + timedelta(seconds=61), timedelta(seconds=30), 1000)
    [alert] = await env.alerts()
    assert (alert.rule_id, alert.sensor, alert.status) == (rule.id, "temp", api.AlertStatus.OPEN)
    await env.publish(device, ("temp", 1, at(2)))
    await env.drain(spec)
    [still] = await env.alerts()
    assert still.status == api.AlertStatus.OPEN


async def _organization(env: Env, org: uuid.UUID, version: int, data: Any) -> None:
    """What the consumer of identity's organization events does with one."""
    await record_organization_event(env.uow, org, version, data)


async def test_a_suspended_organization_is_not_evaluated_and_another_is(env: Env) -> None:
    """docs/design/reliability.md ``suspension`` (decision 76): while its organization is suspended
    a device's readings, its disconnection and the offline timer fire nothing (in the same
    batch another organization's readings fire); lifted, its readings fire again."""
    other = ids.new_id()
    device, neighbour = await env.device(), await env.device(org=other)
    await env.rule()
    await env.rule(org=other)
    await env.rule(name="gone", condition={"op": "offline", "seconds": 60}, severity="MINOR")
    await _organization(env, env.org, 2, OrganizationSuspended(reason="unpaid"))
    down = ids.now()
    await env.device_event(device, 2, DeviceDisconnected(disconnected_at=down, connection="s/1"))
    outcome = await evaluation.evaluate(
        env.uow, [_one(device, env.org, (40.0, 0)), _one(neighbour, other, (40.0, 0))], ids.now()
    )
    assert outcome.suspended == 1 and outcome.fired == 1
    await evaluation.fire_due(env.uow, down + timedelta(seconds=61), timedelta(seconds=30), 1000)
    assert await env.alerts() == []
    assert [a.device_id for a in await env.alerts(other)] == [neighbour]

    await _organization(env, env.org, 3, OrganizationReinstated())
    await evaluation.evaluate(env.uow, [_one(device, env.org, (41.0, 1))], ids.now())
    [alert] = await env.alerts()
    assert alert.device_id == device and alert.trigger.value == 41.0
