"""The rollout's entry points (ADR 0093): three consumers through the kit's ``BatchConsumer``
(``fleet-devices``: the fleet's view of devices, in bulk; ``fleet-reports``: reported states
and compliance; ``fleet-recompute``: configuration changes) and two workers (deliveries,
profile-change jobs), with the calls they make to devices over the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from outpost_contracts import device_config, fleet
from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.streams import ConsumerSpec
from outpost_fleet.app import (
    compliance_status,
    delivery,
    profile_application,
    recompute,
    rollout_ports,
)
from outpost_fleet.app.handlers import PROFILE_HANDLERS, Deps
from outpost_fleet.app.rollout_ports import RolloutUnitOfWork
from outpost_fleet.domain import placement
from outpost_fleet.settings import FleetSettings
from outpost_kit import ids, messaging
from outpost_kit.consumer import (
    ACK,
    SKIP,
    BatchConsumer,
    Delivery,
    Options,
    PermanentFailure,
    Skip,
    Verdict,
    batch_span,
)
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.pull import Fetcher

Clock = rollout_ports.Clock


def system_context(org_id: UUID) -> RequestContext:
    """The rollout's calls to devices, in the organization they are about."""
    return RequestContext(
        request_id=ids.request_id(),
        org_id=org_id,
        principal=Principal(kind=PrincipalKind.SYSTEM, id=org_id, org_id=org_id),
    )


def decoder(event_types: Sequence[type[Event]]) -> Callable[[Msg], EventEnvelope | Skip]:
    """Envelopes of ``event_types``; another event type is acked unread."""
    codec = EventCodec(tuple(event_types))

    def decode(msg: Msg) -> EventEnvelope | Skip:
        try:
            return codec.decode_envelope(msg.data)
        except msgspec.ValidationError as exc:
            if not codec.knows(_tag(msg.data)):
                return SKIP  # an event type this consumer does not read
            raise PermanentFailure(f"undecodable event: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise PermanentFailure(f"not JSON: {exc}") from exc

    return decode


class _Probe(msgspec.Struct):
    data: dict[str, Any] = {}


def _tag(data: bytes) -> str:
    tag = msgspec.json.decode(data, type=_Probe).data.get("type")
    return tag if isinstance(tag, str) else ""


async def _consume(
    js: JetStreamContext,
    uow: UnitOfWorkFactory,
    spec: ConsumerSpec,
    batch: int,
    event_types: Sequence[type[Event]],
    handle: Callable[[list[EventEnvelope]], Awaitable[object]],
    stop: asyncio.Event,
    *,
    per_message: bool = False,
) -> None:
    async def handler(deliveries: Sequence[Delivery[EventEnvelope]]) -> list[Verdict]:
        await handle([d.item for d in deliveries])
        return [ACK] * len(deliveries)

    consumer = BatchConsumer(
        spec,
        Fetcher(js, spec.stream, spec.name, batch),
        decoder(event_types),
        handler,
        Options(fetch_ahead=not per_message, per_message=per_message),
        uow=uow,
        scope=batch_span(__name__, f"consume {spec.name}"),
    )
    await consumer.run(stop)


async def run_devices(
    js: JetStreamContext,
    uow: UnitOfWorkFactory,
    rollout: RolloutUnitOfWork,
    spec: ConsumerSpec,
    batch: int,
    clock: Clock,
    stop: asyncio.Event,
) -> None:
    async def handle(events: list[EventEnvelope]) -> None:
        await recompute.on_device_events(rollout, events, clock)

    await _consume(js, uow, spec, batch, placement.EVENTS, handle, stop)


async def run_reports(
    js: JetStreamContext,
    uow: UnitOfWorkFactory,
    rollout: RolloutUnitOfWork,
    spec: ConsumerSpec,
    batch: int,
    stop: asyncio.Event,
) -> None:
    async def handle(events: list[EventEnvelope]) -> None:
        await compliance_status.on_reports(rollout, events)

    await _consume(js, uow, spec, batch, (device_config.ReportedStateChanged,), handle, stop)


async def run_recompute(
    js: JetStreamContext,
    uow: UnitOfWorkFactory,
    rollout: RolloutUnitOfWork,
    spec: ConsumerSpec,
    clock: Clock,
    stop: asyncio.Event,
    *,
    page: int = recompute.PAGE,
) -> None:
    """One fleet event at a time: a change over a whole organization is pages of
    transactions, and a redelivery runs it again (what was written is skipped)."""

    async def handle(events: list[EventEnvelope]) -> None:
        for event in events:
            await recompute.on_fleet_event(rollout, event, clock, page=page)

    await _consume(js, uow, spec, 1, recompute.FLEET_EVENTS, handle, stop, per_message=True)


def deliver_via(nc: NATS, timeout: float = 30.0) -> delivery.Deliver:
    async def deliver(
        org_id: UUID, items: list[device_config.FleetDesiredState]
    ) -> device_config.SetFleetDesiredStatesResult:
        request = device_config.SetFleetDesiredStates(items=items)
        return await messaging.call(
            nc,
            device_config.SET_FLEET_DESIRED_STATES,
            system_context(org_id),
            request,
            timeout=timeout,
        )

    return deliver


def apply_via(nc: NATS, timeout: float = 30.0) -> profile_application.Apply:
    async def apply(
        org_id: UUID, spec: fleet.DeviceProfileSpec, device_ids: list[UUID]
    ) -> device_config.ApplyDeviceProfileResult:
        request = device_config.ApplyDeviceProfile(profile=spec, device_ids=device_ids)
        return await messaging.call(
            nc, device_config.APPLY_DEVICE_PROFILE, system_context(org_id), request, timeout=timeout
        )

    return apply


def resolver(deps: Deps) -> profile_application.Resolve:
    """A device profile as devices apply it: the service's own ``RESOLVE_DEVICE_PROFILE``
    use case, called in process (None: the organization has no such profile)."""

    async def resolve(org_id: UUID, profile_id: UUID) -> fleet.DeviceProfileSpec | None:
        handler = PROFILE_HANDLERS[fleet.RESOLVE_DEVICE_PROFILE]
        try:
            spec = await handler(
                deps.profiles, system_context(org_id), fleet.ResolveDeviceProfile(id=profile_id)
            )
        except NotFound:
            return None
        assert isinstance(spec, fleet.DeviceProfileSpec)
        return spec

    return resolve


def delivery_options(settings: FleetSettings) -> delivery.DeliveryOptions:
    return delivery.DeliveryOptions(
        batch=settings.delivery_batch,
        concurrency=settings.delivery_concurrency,
        pause=settings.delivery_pause_seconds,
        idle=settings.idle_seconds,
        lease=timedelta(seconds=settings.delivery_lease_seconds),
    )


def job_options(settings: FleetSettings) -> profile_application.JobOptions:
    return profile_application.JobOptions(
        batch=settings.profile_batch,
        max_attempts=settings.profile_max_attempts,
        idle=settings.idle_seconds,
        lease=timedelta(seconds=max(settings.delivery_lease_seconds, 30.0)),
    )
