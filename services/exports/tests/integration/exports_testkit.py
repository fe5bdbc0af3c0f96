"""What the exports integration tests share: the exports schema migrated on the test cluster
with its own role, the outbox relay publishing to the session's nats-server, and stand-ins
of the devices, readings and alerting services answering over real NATS request/reply (exports
never reads their schemas, so a responder serving known data is the service to it): a
fleet of devices whose readings are a function of their index, so every row of an archive
can be checked."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from outpost_contracts import alerting, devices, registry, streams
from outpost_contracts import exports as api
from outpost_contracts import readings as readings_api
from outpost_contracts.annotations import LIST_ANNOTATIONS, AnnotationView, ListAnnotations
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.query import And, Cmp, Page
from outpost_contracts.streams import ConsumerSpec
from outpost_exports import bootstrap
from outpost_exports.adapters.artifacts import NatsArtifactStore
from outpost_exports.adapters.sources import NatsSources
from outpost_exports.adapters.store import PgExports
from outpost_exports.app.handlers import Deps, Policy
from outpost_exports.app.worker import Runner, WorkerConfig
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.messaging import apply_streams, connect, consumer_config
from outpost_kit.responder import Responder

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SENSORS = ("humidity", "temperature")  # (ts, sensor) order within a second


def ctx(org: uuid.UUID) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )


def ts_text(i: int) -> str:
    return (T0 + timedelta(seconds=i // 2)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def value(device_index: int, i: int) -> float | int:
    """As readings answers it: an integral number is an int."""
    v = device_index * 1000 + i * 0.25
    return int(v) if v.is_integer() else v


def expected_rows(
    fleet: Fleet, org: uuid.UUID, device_ids: list[uuid.UUID]
) -> list[tuple[str, str, str, str]]:
    """(deviceId, sensor, ts, value as text) of every reading, in the archive's order."""
    rows = []
    for d in device_ids:
        n, index = fleet.devices[org][d]
        for i in range(n):
            rows.append((str(d), SENSORS[i % 2], ts_text(i), repr(value(index, i))))
    return rows


@dataclass
class Fleet:
    """Devices per organization (id → (readings, index)), groups, annotations; a delay per
    chunk makes an export last long enough to be killed or cancelled mid-way."""

    devices: dict[uuid.UUID, dict[uuid.UUID, tuple[int, int]]] = field(default_factory=dict)
    groups: dict[uuid.UUID, dict[uuid.UUID, list[uuid.UUID]]] = field(default_factory=dict)
    annotations: dict[uuid.UUID, list[AnnotationView]] = field(default_factory=dict)
    alerts: dict[uuid.UUID, list[alerting.AlertView]] = field(default_factory=dict)
    events: dict[uuid.UUID, list[alerting.TimelineEntry]] = field(default_factory=dict)
    # Alerting's stand-in answers pages of at most this many, so the worker must page.
    alerting_page: int = 2
    alerting_queries: list[Any] = field(default_factory=list)
    chunk_delay: float = 0.0
    chunks_served: int = 0
    # A test holds a job mid-way (``hold``): chunks asked for beyond ``held_after`` wait until
    # ``release``, so "still running, rows written" is a state the test forces, not a race
    # between a chunk delay and the test's own polling.
    held_after: int | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def hold(self, after: int) -> None:
        """Serve ``after`` more chunks, then make every chunk wait until :meth:`release`."""
        self.released.clear()
        self.held_after = self.chunks_served + after

    def release(self) -> None:
        self.held_after = None
        self.released.set()

    def add_device(
        self, org: uuid.UUID, readings: int, group: uuid.UUID | None = None
    ) -> uuid.UUID:
        device = uuid.uuid4()
        mine = self.devices.setdefault(org, {})
        mine[device] = (readings, len(mine) + 1)
        if group is not None:
            self.groups.setdefault(org, {}).setdefault(group, []).append(device)
        return device

    def add_annotation(self, org: uuid.UUID, device: uuid.UUID) -> AnnotationView:
        note = AnnotationView(
            id=uuid.uuid4(),
            device_id=device,
            class_id=uuid.uuid4(),
            from_=T0,
            to=T0 + timedelta(seconds=5),
            created_at=T0,
            updated_at=T0,
            version=1,
            text="door opened, by hand",
        )
        self.annotations.setdefault(org, []).append(note)
        return note

    def add_alert(
        self, org: uuid.UUID, device: uuid.UUID, opened_at: datetime, n: int
    ) -> alerting.AlertView:
        view = alerting.AlertView(
            id=uuid.UUID(int=(len(self.alerts.get(org, [])) + 1) << 64 | uuid.uuid4().int >> 64),
            rule_id=uuid.uuid4(),
            rule_version=n,
            device_id=device,
            sensor="temperature",
            status=alerting.AlertStatus.RESOLVED if n % 2 else alerting.AlertStatus.OPEN,
            severity=alerting.Severity.MAJOR,
            opened_at=opened_at,
            trigger=alerting.AlertTrigger(
                value=90.0 + n,
                ts=opened_at,
                since=opened_at,
                condition="temperature > 90",
                rule_version=n,
            ),
            acknowledged_at=opened_at + timedelta(seconds=1) if n % 2 else None,
            resolved_at=opened_at + timedelta(seconds=2) if n % 2 else None,
        )
        self.alerts.setdefault(org, []).append(view)
        return view

    def add_event(
        self, org: uuid.UUID, device: uuid.UUID | None, ts: datetime, n: int
    ) -> alerting.TimelineEntry:
        entry = alerting.TimelineEntry(
            id=uuid.UUID(int=(len(self.events.get(org, [])) + 1) << 64 | uuid.uuid4().int >> 64),
            ts=ts,
            type="devices.DeviceConnected.v1",
            summary=f"connected, #{n}",
            device_id=device,
            data={"n": n, "note": 'a "quoted", text'},
        )
        self.events.setdefault(org, []).append(entry)
        return entry

    def _alerting_page(self, items: list[Any], q: alerting.ListOf, ts_field: str) -> Page[Any]:
        """Alerting's filter as the exports worker sends it (``deviceId in``, the range on
        ``ts_field``), in id order, ``after`` the cursor, ``alerting_page`` at a time."""
        query = q.query
        self.alerting_queries.append(query)
        flt = query.filter
        assert isinstance(flt, And), flt
        kinds = {(c.field, c.op): c.value for c in flt.items if isinstance(c, Cmp)}
        assert set(kinds) == {("deviceId", "in"), (ts_field, "ge"), (ts_field, "lt")}, kinds
        wanted = {uuid.UUID(str(v)) for v in kinds["deviceId", "in"]}  # type: ignore[union-attr]
        start = datetime.fromisoformat(str(kinds[ts_field, "ge"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(kinds[ts_field, "lt"]).replace("Z", "+00:00"))
        attr = "opened_at" if ts_field == "openedAt" else "ts"
        found = sorted(
            (
                i
                for i in items
                if i.device_id in wanted
                and start <= getattr(i, attr) < end
                and (query.after is None or i.id > uuid.UUID(query.after))
            ),
            key=lambda i: i.id,
        )
        size = min(query.limit, self.alerting_page)
        return Page(data=found[:size], limit=query.limit, has_more=len(found) > size)

    async def list_alerts(self, c: RequestContext, q: alerting.ListOf) -> Page[alerting.AlertView]:
        return self._alerting_page(self.alerts.get(c.org_id, []), q, "openedAt")

    async def list_events(
        self, c: RequestContext, q: alerting.ListOf
    ) -> Page[alerting.TimelineEntry]:
        return self._alerting_page(self.events.get(c.org_id, []), q, "ts")

    # --- the stand-in services' handlers ------------------------------------------------

    async def get_device(self, c: RequestContext, q: devices.GetDevice) -> devices.DeviceView:
        if q.id not in self.devices.get(c.org_id, {}):
            raise NotFound("no such device")
        return devices.DeviceView(
            id=q.id,
            name=str(q.id),
            status=devices.DeviceStatus.ACTIVE,
            created_at=T0,
            updated_at=T0,
            version=1,
        )

    async def get_group(self, c: RequestContext, q: registry.Get) -> registry.DeviceGroupView:
        if q.id not in self.groups.get(c.org_id, {}):
            raise NotFound("no such device group")
        return registry.DeviceGroupView(id=q.id, name="g", created_at=T0, updated_at=T0, version=1)

    async def list_devices(
        self, c: RequestContext, q: devices.ListDevices
    ) -> Page[devices.DeviceView]:
        ids = list(self.devices.get(c.org_id, {}))
        flt = q.query.filter
        if flt is not None:
            ids = self.groups.get(c.org_id, {}).get(uuid.UUID(str(flt.value)), [])  # type: ignore[union-attr]
        views = [await self.get_device(c, devices.GetDevice(id=d)) for d in ids]
        return Page(data=views, limit=q.query.limit, has_more=False)

    async def stream_readings(
        self, c: RequestContext, q: readings_api.StreamReadings
    ) -> readings_api.ReadingsChunk:
        self.chunks_served += 1
        if self.held_after is not None and self.chunks_served > self.held_after:
            await self.released.wait()
        if self.chunk_delay:
            await asyncio.sleep(self.chunk_delay)
        n, index = self.devices.get(c.org_id, {}).get(q.device_id, (0, 0))
        start = 0
        if q.after_ts is not None:
            start = (
                2 * int((q.after_ts - T0).total_seconds()) + SENSORS.index(q.after_sensor or "") + 1
            )
        end = min(n, start + q.limit)
        rows = range(start, end)
        return readings_api.ReadingsChunk(
            sensors=list(SENSORS),
            sensor_index=[i % 2 for i in rows],
            ts=[ts_text(i) for i in rows],
            value=[value(index, i) for i in rows],
            next=end < n,
            last_ts=T0 + timedelta(seconds=(end - 1) // 2) if end > start else None,
            last_sensor=SENSORS[(end - 1) % 2] if end > start else None,
            estimate=n if q.estimate else None,
        )

    async def list_annotations(self, c: RequestContext, q: ListAnnotations) -> Page[AnnotationView]:
        mine = [a for a in self.annotations.get(c.org_id, []) if a.device_id in q.device_ids]
        return Page(data=mine, limit=q.limit, has_more=False)


@dataclass
class Env:
    dsn: str
    nats_url: str
    uow: UnitOfWorkFactory
    nc: NATS
    js: JetStreamContext
    store: NatsArtifactStore
    fleet: Fleet
    bucket: str

    @property
    def exports(self) -> PgExports:
        """The use cases' unit of work (``self.uow`` is the kit's, for checks in SQL)."""
        return PgExports.over(self.uow)

    def deps(self, policy: Policy | None = None) -> Deps:
        return Deps(self.exports, NatsSources(self.nc), self.store, policy or Policy())

    def runner(self, worker_id: str, **config: Any) -> Runner:
        settings = {
            "worker_id": worker_id,
            "lease": timedelta(seconds=2),
            "progress_every_rows": 2_000,
            "progress_every_seconds": 0.2,
            "chunk_rows": 2_000,
            **config,
        }
        return Runner(self.exports, NatsSources(self.nc), self.store, WorkerConfig(**settings))

    async def consumer(self, org: uuid.UUID, ack_wait: float = 2.0) -> ConsumerSpec:
        """A durable pull consumer of this organization's work items (a work queue takes one
        consumer per subject: tests of other organizations do not compete for them)."""
        spec = ConsumerSpec(
            stream="EXPORT_JOBS",
            name=f"test-{org.hex[:12]}",
            owner="exports",
            filter_subjects=(f"outpost.work.exports.{org}.>",),
            ack_wait_seconds=ack_wait,
            max_deliver=-1,
        )
        await self.js.add_consumer(spec.stream, consumer_config(spec))
        return spec

    async def status(self, org: uuid.UUID, export_id: uuid.UUID) -> Any:
        async with self.uow(org) as u:
            return (
                await u.execute(
                    "SELECT e.status, e.attempt, e.reading_count, e.annotation_count,"
                    " e.object_name, e.size_bytes, e.sha256, r.rows_written FROM exports e"
                    " LEFT JOIN export_runs r ON r.export_id = e.id WHERE e.id = :id",
                    {"id": export_id},
                )
            ).first()

    async def wait_for(
        self,
        org: uuid.UUID,
        export_id: uuid.UUID,
        pred: Any,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            row = await self.status(org, export_id)
            if row is not None and pred(row):
                return row
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"export {export_id} never got there: {row}")
            await asyncio.sleep(0.05)

    async def started_events(self, org: uuid.UUID, export_id: uuid.UUID) -> int:
        async with self.uow(org) as u:
            return int(
                (
                    await u.execute(
                        "SELECT count(*) FROM events WHERE stream_id = :id"
                        " AND event_type = 'exports.ExportStarted.v1'",
                        {"id": export_id},
                    )
                ).scalar_one()
            )


@contextlib.asynccontextmanager
async def exports_env(postgres_dsn: str, nats_url: str) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "exports", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "exports", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "exports", pool_size=8)
    uow = UnitOfWorkFactory(engine, EventCodec(api.EVENT_TYPES), bootstrap.PROJECTORS)
    nc = await connect(nats_url, "exports-tests")
    js = nc.jetstream()
    await apply_streams(js, streams.streams_of("exports"), ())
    bucket = f"test-exports-{secrets.token_hex(4)}"
    store = NatsArtifactStore(js, bucket)
    await store.start()
    fleet = Fleet()
    responders = [
        Responder(
            nc,
            "devices",
            {
                devices.GET_DEVICE: fleet.get_device,
                devices.LIST_DEVICES: fleet.list_devices,
                registry.GET_GROUP: fleet.get_group,
            },
        ),
        Responder(
            nc,
            "readings",
            {
                readings_api.STREAM_READINGS: fleet.stream_readings,
                LIST_ANNOTATIONS: fleet.list_annotations,
            },
        ),
        Responder(
            nc,
            "alerting",
            {alerting.LIST_ALERTS: fleet.list_alerts, alerting.LIST_EVENTS: fleet.list_events},
        ),
    ]
    for r in responders:
        await r.start()
    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(dsn, "exports", js, idle_wait=0.1).run(stop))
    try:
        yield Env(dsn, nats_url, uow, nc, js, store, fleet, bucket)
    finally:
        stop.set()
        await asyncio.wait_for(relay, 10)
        for r in responders:
            await r.stop()
        await js.delete_object_store(bucket)
        await nc.close()
        await engine.dispose()


def worker_script() -> Path:
    return Path(__file__).with_name("exports_worker_main.py")
