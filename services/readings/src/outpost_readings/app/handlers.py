"""Readings' use cases: ingest a batch of telemetry messages (with the rollups), keep the
device and sensor registry, create partitions ahead, the quarantine and HTTP batches. The
queries are in ``app/queries.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import readings as api
from outpost_contracts import subjects
from outpost_contracts.devices import (
    DeviceDecommissioned,
    DeviceRegistered,
    DeviceStatus,
    DeviceUpdated,
)
from outpost_contracts.envelope import EventEnvelope, RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.query import Page
from outpost_contracts.registry import SensorDeclared, SensorRemoved, SensorUpdated
from outpost_contracts.rpc import Operation
from outpost_kit import ids, suspensions
from outpost_kit.db.listing import list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_readings.adapters import store
from outpost_readings.adapters.quarantine_listing import QUARANTINE, quarantined_view
from outpost_readings.domain.batch import DeviceItems, ItemRefusal, check_device, message_id
from outpost_readings.domain.readings import (
    WHOLE_MESSAGE,
    Limits,
    Reading,
    Reason,
    Rejected,
    SensorSpec,
    SeqState,
    advance_seq,
    partition_days,
    validate,
)

DeviceExists = Callable[[RequestContext, UUID], Awaitable[bool]]
# JetStream publish, waiting for the stream's ack: (subject, payload, headers).
Publish = Callable[[str, bytes, dict[str, str]], Awaitable[None]]


class Partitions:
    """The UTC days whose ``readings`` partition this process knows to exist."""

    def __init__(self) -> None:
        self.known: set[date] = set()

    async def ensure(self, uow: UnitOfWork, days: Iterable[date]) -> int:
        """Create the missing partitions of ``days``; how many were created."""
        made = 0
        for day in sorted(set(days) - self.known):
            made += await store.ensure_partition(uow, day)
            self.known.add(day)
        return made

    def forget(self) -> None:
        """After a failed write: a partition may have been dropped (retention) meanwhile."""
        self.known.clear()


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    limits: Limits
    # Asks the devices service: the local registry can be a moment behind a registration.
    device_exists: DeviceExists
    # An organization without its own setting (org_settings) auto-declares unknown sensors
    # when this is on (decision 58).
    auto_declare_sensors: bool = True
    partitions: Partitions = field(default_factory=Partitions)
    # Into TELEMETRY (HTTP batches); None where nothing publishes (ingest-only tests).
    publish: Publish | None = None


@dataclass
class Incoming:
    """One telemetry message as the ingest loop hands it over. The device is the one the
    subject names; ``message`` is None when the payload could not be decoded (``error``)."""

    org_id: UUID
    device_id: UUID
    message: api.TelemetryMessage | None
    arrival: datetime
    raw: bytes = b""
    error: str = ""
    subject: str | None = None
    stream_seq: int | None = None
    # Delivered for the first time: never processed before (seq resets, decision 58).
    first_delivery: bool = True
    # The last delivery the consumer will make: an unknown device is quarantined, not retried.
    last_attempt: bool = False
    # Where the message came from: a device over the broker (``mqtt`` when read from
    # nats-server's $MQTT_msgs, decision 82), or an HTTP batch (its ``seq`` is not the
    # device's numbering and does not count towards seq gaps).
    source: str = "nats"


@dataclass
class Outcome:
    stored: int = 0
    rejected: int = 0
    # Not processed: the registry does not know the device yet; deliver it again later.
    retry: bool = False
    # Dropped unread: its organization is suspended (decision 76); acknowledged, not kept.
    dropped: bool = False


SOURCE_BROKER = "nats"


def _quarantine_rows(item: Incoming, rejected: list[Rejected]) -> list[store.QuarantineRow]:
    rows = []
    for r in rejected:
        if r.reading is None:
            payload, sensor, ts = item.raw, None, None
        else:  # the refused reading alone, as a message its device could have sent
            seq = item.message.seq if item.message is not None else 0
            payload = msgspec.json.encode(api.TelemetryMessage(seq=seq, readings=[r.reading]))
            sensor, ts = r.reading.sensor, r.reading.ts
        rows.append(
            store.QuarantineRow(
                id=ids.new_id(),
                org_id=item.org_id,
                device_id=item.device_id,
                sensor=sensor,
                ts=ts,
                reason=r.reason.value,
                detail=r.detail,
                payload=payload,
                source=item.source,
                subject=item.subject,
                stream_seq=item.stream_seq,
                reading_index=r.index,
                arrival=item.arrival,
            )
        )
    return rows


@dataclass
class _OrgPlan:
    org_id: UUID
    quarantined: list[store.QuarantineRow] = field(default_factory=list)
    declared: list[tuple[UUID, str, SensorSpec]] = field(default_factory=list)
    seqs: dict[UUID, SeqState] = field(default_factory=dict)
    stored: int = 0
    # Every message of the organization in this batch is on its first delivery.
    fresh: bool = True


async def ingest(deps: Deps, batch: list[Incoming], received_at: datetime) -> list[Outcome]:
    """Validate and store a batch of messages in one transaction; per message, what
    happened. Readings go through COPY into a staging table and one INSERT … SELECT … ON
    CONFLICT DO NOTHING, so a redelivered message stores nothing twice; refusals go to the
    quarantine and ``seq`` state is kept in the same transaction."""
    outcomes = [Outcome() for _ in batch]
    by_org: dict[UUID, list[int]] = {}
    for i, item in enumerate(batch):
        by_org.setdefault(item.org_id, []).append(i)
    try:
        async with deps.uow(None) as uow:
            plans: list[_OrgPlan] = []
            rows: list[Reading] = []
            # A suspended organization's telemetry is neither stored nor quarantined.
            for org_id in await suspensions.suspended_among(uow.conn, by_org):
                for i in by_org.pop(org_id):
                    outcomes[i].dropped = True
            # Organizations in one order on every replica: rows locked in the same order.
            for org_id, indexes in sorted(by_org.items()):
                await uow.set_tenant(org_id)
                plan = _OrgPlan(org_id=org_id)
                plans.append(plan)
                devices = {batch[i].device_id for i in indexes}
                statuses = await store.device_statuses(uow, devices)
                sensors = await store.sensors_of(uow, devices)
                seqs = await store.seq_states(uow, devices)
                auto = await store.auto_declare_of(uow, org_id, deps.auto_declare_sensors)
                for i in indexes:  # in stream order
                    item = batch[i]
                    plan.fresh = plan.fresh and item.first_delivery
                    if item.message is None:
                        refusal = Rejected(
                            index=WHOLE_MESSAGE, reason=Reason.INVALID_PAYLOAD, detail=item.error
                        )
                        plan.quarantined.extend(_quarantine_rows(item, [refusal]))
                        outcomes[i].rejected = 1
                        continue
                    verdict = validate(
                        org_id,
                        item.device_id,
                        item.message,
                        item.arrival,
                        deps.limits,
                        device_status=statuses.get(item.device_id),
                        sensors=sensors.get(item.device_id, {}),
                        auto_declare=auto,
                    )
                    if verdict.unknown_device:
                        if not item.last_attempt:
                            outcomes[i].retry = True
                            continue
                        verdict.rejected.append(
                            Rejected(
                                index=WHOLE_MESSAGE,
                                reason=Reason.UNKNOWN_DEVICE,
                                detail="no such device in the registry",
                            )
                        )
                    for key, spec in verdict.declared.items():
                        sensors.setdefault(item.device_id, {})[key] = spec
                        plan.declared.append((item.device_id, key, spec))
                    rows.extend(verdict.rows)
                    plan.quarantined.extend(_quarantine_rows(item, verdict.rejected))
                    outcomes[i].stored = len(verdict.rows)
                    outcomes[i].rejected = len(verdict.rejected)
                    if not verdict.unknown_device and item.source != api.SOURCE_HTTP:
                        state = plan.seqs.get(item.device_id, seqs.get(item.device_id))
                        advanced = advance_seq(
                            state, item.message.seq, first_delivery=item.first_delivery
                        )
                        if advanced is not None:
                            plan.seqs[item.device_id] = advanced
            # Every partition the batch needs exists before the first row is written (adding
            # one locks the parent: never while this transaction holds a lock on it).
            await deps.partitions.ensure(uow, partition_days(rows))
            if rows:
                await store.stage_readings(uow, rows)
            for plan in plans:
                await uow.set_tenant(plan.org_id)
                for device_id, key, spec in plan.declared:
                    await store.declare_sensor(
                        uow, plan.org_id, device_id, key, spec, replace=False
                    )
                if rows:
                    plan.stored = await store.store_staged(
                        uow, plan.org_id, received_at, fresh=plan.fresh
                    )
                await store.quarantine(uow, plan.quarantined, received_at)
                await store.save_seq_states(uow, plan.org_id, plan.seqs, received_at)
            await uow.commit()
    except Exception:
        deps.partitions.forget()
        store.forget_staging()
        raise
    return outcomes


async def ensure_partitions_ahead(deps: Deps, today: date, days_ahead: int) -> int:
    """Create the partitions of yesterday, today and ``days_ahead`` days after today."""
    async with deps.uow(None) as uow:
        made = await deps.partitions.ensure(
            uow, (today + timedelta(days=n) for n in range(-1, days_ahead + 1))
        )
        await uow.commit()
    return made


async def on_device_event(uow: UnitOfWork, event: EventEnvelope) -> None:
    """Keep the local registry of devices and their sensors (policy on the DEVICES stream)."""
    data = event.data
    if isinstance(data, DeviceRegistered):
        await store.upsert_device(
            uow,
            event.org_id,
            event.stream_id,
            data.name,
            DeviceStatus.REGISTERED.value,
            event.version,
            group_id=data.group_id,
            site_id=data.site_id,
        )
    elif isinstance(data, DeviceUpdated):
        name = data.name if "name" in data.changed else None
        placement: dict[str, UUID | None] = {}
        if "groupId" in data.changed:
            placement["group_id"] = data.group_id
        if "siteId" in data.changed:
            placement["site_id"] = data.site_id
        await store.update_device(
            uow, event.org_id, event.stream_id, event.version, name=name, placement=placement
        )
    elif isinstance(data, DeviceDecommissioned):
        await store.update_device(
            uow,
            event.org_id,
            event.stream_id,
            event.version,
            status=DeviceStatus.DECOMMISSIONED.value,
        )
    elif isinstance(data, SensorDeclared):
        rng = data.valid_range
        spec = SensorSpec(
            value_type=data.value_type.value,
            min=rng.min if rng is not None else None,
            max=rng.max if rng is not None else None,
        )
        await store.declare_sensor(uow, event.org_id, data.device_id, data.key, spec, replace=True)
    elif isinstance(data, SensorUpdated):
        changes: dict[str, Any] = {}
        if "valueType" in data.changed and data.value_type is not None:
            changes["value_type"] = data.value_type.value
        if "validRange" in data.changed:
            rng = data.valid_range
            changes["min"] = rng.min if rng is not None else None
            changes["max"] = rng.max if rng is not None else None
        await store.update_sensor(uow, data.device_id, data.key, changes)
    elif isinstance(data, SensorRemoved):
        await store.remove_sensor(uow, data.device_id, data.key)


DEVICE_EVENT_TYPES = (
    DeviceRegistered,
    DeviceUpdated,
    DeviceDecommissioned,
    SensorDeclared,
    SensorUpdated,
    SensorRemoved,
)


def _quarantined_view(row: Any) -> api.QuarantinedReading:
    return api.QuarantinedReading(
        id=row.id,
        device_id=row.device_id,
        sensor=row.sensor,
        ts=row.ts,
        reason=row.reason,
        detail=row.detail,
        payload=bytes(row.payload).decode("utf-8", errors="replace"),
        source=row.source,
        subject=row.subject,
        stream_seq=row.stream_seq,
        reading_index=row.reading_index,
        received_at=row.received_at,
    )


async def list_quarantine(
    deps: Deps, ctx: RequestContext, q: api.ListQuarantine
) -> Page[api.QuarantinedReading]:
    if q.query is not None:  # the collection conventions, under the tenant's RLS
        async with deps.uow(ctx.org_id) as uow:
            return await list_page(uow.conn, QUARANTINE, q.query, quarantined_view)
    async with deps.uow(ctx.org_id) as uow:
        rows = await store.list_quarantine(
            uow,
            device_id=q.device_id,
            reason=q.reason,
            after=q.after,
            descending=q.order == "DESC",
            limit=q.limit + 1,
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    return Page(
        data=[_quarantined_view(r) for r in rows],
        limit=q.limit,
        order=q.order,
        has_more=has_more,
        after=str(rows[-1].id) if has_more and rows else None,
    )


_decode_message = msgspec.json.Decoder(api.TelemetryMessage)


async def replay_quarantine(
    deps: Deps, ctx: RequestContext, q: api.ReplayQuarantine
) -> api.QuarantineOutcome:
    """Validate quarantined readings again against what the registry knows now. Those that
    pass are stored (a reading already stored is not stored twice); the others go back to
    the quarantine with their current reason, under the same id when they are the same
    reading or message."""
    org_id = ctx.org_id
    async with deps.uow(org_id) as uow:
        taken = await store.take_quarantined(uow, q.ids)
        devices = {row.device_id for row in taken}
        statuses = await store.device_statuses(uow, devices)
        sensors = await store.sensors_of(uow, devices)
        auto = await store.auto_declare_of(uow, org_id, deps.auto_declare_sensors)
        rows: list[Reading] = []
        back: list[store.QuarantineRow] = []
        declared: list[tuple[UUID, str, SensorSpec]] = []
        for row in taken:
            item = Incoming(
                org_id=org_id,
                device_id=row.device_id,
                message=None,
                arrival=row.arrival,
                raw=bytes(row.payload),
                subject=row.subject,
                stream_seq=row.stream_seq,
            )
            try:
                item.message = _decode_message.decode(item.raw)
            except (msgspec.ValidationError, msgspec.DecodeError):
                back.append(_same_row(row))
                continue
            verdict = validate(
                org_id,
                row.device_id,
                item.message,
                row.arrival,
                deps.limits,
                device_status=statuses.get(row.device_id),
                sensors=sensors.get(row.device_id, {}),
                auto_declare=auto,
            )
            if verdict.unknown_device:
                back.append(_same_row(row))
                continue
            for key, spec in verdict.declared.items():
                sensors.setdefault(row.device_id, {})[key] = spec
                declared.append((row.device_id, key, spec))
            rows.extend(verdict.rows)
            refused = _quarantine_rows(item, verdict.rejected)
            for new in refused:
                # A refused reading of a one-reading row keeps its place in the original
                # message, and a row refused as it was keeps its id.
                index = row.reading_index if row.reading_index >= 0 else new.reading_index
                same = index == row.reading_index
                back.append(
                    msgspec.structs.replace(
                        new,
                        id=row.id if same else new.id,
                        reading_index=index,
                        source=row.source,
                    )
                )
        await deps.partitions.ensure(uow, partition_days(rows))
        stored = 0
        if rows:
            await store.stage_readings(uow, rows)
            stored = await store.store_staged(uow, org_id, ids.now())
        for device_id, key, spec in declared:
            await store.declare_sensor(uow, org_id, device_id, key, spec, replace=False)
        await store.quarantine(uow, back, ids.now())
        await uow.commit()
    return api.QuarantineOutcome(
        stored=stored, still_refused=len(back), not_found=len(set(q.ids)) - len(taken)
    )


def _same_row(row: Any) -> store.QuarantineRow:
    return store.QuarantineRow(
        id=row.id,
        org_id=row.org_id,
        device_id=row.device_id,
        sensor=row.sensor,
        ts=row.ts,
        reason=row.reason,
        detail=row.detail,
        payload=bytes(row.payload),
        source=row.source,
        subject=row.subject,
        stream_seq=row.stream_seq,
        reading_index=row.reading_index,
        arrival=row.arrival,
    )


async def discard_quarantine(
    deps: Deps, ctx: RequestContext, q: api.DiscardQuarantine
) -> api.QuarantineOutcome:
    async with deps.uow(ctx.org_id) as uow:
        taken = await store.take_quarantined(uow, q.ids)
        await uow.commit()
    return api.QuarantineOutcome(discarded=len(taken), not_found=len(set(q.ids)) - len(taken))


async def get_telemetry_health(
    deps: Deps, ctx: RequestContext, q: api.GetTelemetryHealth
) -> api.TelemetryHealth:
    async with deps.uow(ctx.org_id) as uow:
        if not await store.device_known(uow, q.device_id) and not await deps.device_exists(
            ctx, q.device_id
        ):
            raise NotFound("no such device")
        row = await store.telemetry_health(uow, q.device_id)
    return api.TelemetryHealth(
        device_id=q.device_id,
        last_seq=row.last_seq,
        seq_gaps=row.gaps or 0,
        seq_resets=row.resets or 0,
        quarantined=row.quarantined,
        updated_at=row.updated_at,
    )


_REGISTERED = DeviceStatus.REGISTERED.value


async def ingest_batch(deps: Deps, ctx: RequestContext, q: api.IngestReadings) -> api.BatchOutcome:
    """Check a slice of an HTTP batch item by item and publish what passes into TELEMETRY,
    one message per device (decision 59). The stream ingest stores it like a device's
    telemetry and validates it again; a retried request has the same message ids, which
    the stream drops, and the same readings, which the natural key keeps once."""
    if deps.publish is None:
        raise RuntimeError("this process does not publish telemetry")
    org_id = ctx.org_id
    arrival = ids.now()
    refused: list[ItemRefusal] = []
    groups: dict[UUID, DeviceItems] = {}
    for offset, raw in enumerate(q.readings):
        index = q.first_index + offset
        try:
            item = msgspec.convert(raw, api.BatchReading)
        except msgspec.ValidationError as exc:
            refused.append(ItemRefusal(index=index, reason="invalid_item", detail=str(exc)))
            continue
        group = groups.setdefault(
            item.device_id, DeviceItems(device_id=item.device_id, indexes=[], readings=[])
        )
        group.indexes.append(index)
        group.readings.append(
            api.TelemetryReading(sensor=item.sensor, value=item.value, ts=item.ts)
        )
    async with deps.uow(org_id) as uow:  # under the tenant's RLS: only its own devices
        statuses = await store.device_statuses(uow, groups)
        sensors = await store.sensors_of(uow, groups)
        auto = await store.auto_declare_of(uow, org_id, deps.auto_declare_sensors)
    outgoing: list[tuple[str, bytes]] = []
    accepted = 0
    for device_id, group in groups.items():
        status = statuses.get(device_id)
        device_sensors = sensors.get(device_id, {})
        device_auto = auto
        if status is None and await deps.device_exists(ctx, device_id):
            # Registered a moment ago and not in the local registry yet: check what can be
            # checked now; the stream ingest waits for the registry and checks the rest.
            status, device_sensors, device_auto = _REGISTERED, {}, True
        verdict = check_device(
            org_id,
            group,
            arrival,
            deps.limits,
            device_status=status,
            sensors=device_sensors,
            auto_declare=device_auto,
        )
        refused.extend(verdict.refused)
        if verdict.message is not None:
            accepted += len(verdict.message.readings)
            outgoing.append(
                (subjects.telemetry(org_id, device_id), msgspec.json.encode(verdict.message))
            )
    publish = deps.publish
    await asyncio.gather(
        *(
            publish(
                subject,
                payload,
                {
                    "Nats-Msg-Id": message_id(subject, payload),
                    api.SOURCE_HEADER: api.SOURCE_HTTP,
                },
            )
            for subject, payload in outgoing
        )
    )
    refused.sort(key=lambda r: r.index)
    return api.BatchOutcome(
        accepted=accepted,
        rejected=[
            api.BatchRejection(index=r.index, reason=r.reason, detail=r.detail) for r in refused
        ],
    )


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.LIST_QUARANTINE: list_quarantine,
    api.REPLAY_QUARANTINE: replay_quarantine,
    api.DISCARD_QUARANTINE: discard_quarantine,
    api.GET_TELEMETRY_HEALTH: get_telemetry_health,
    api.INGEST_READINGS: ingest_batch,
}
