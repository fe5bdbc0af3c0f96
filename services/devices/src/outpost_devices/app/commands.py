"""Commands to devices and their desired/reported state: the use cases, delivery, acks and
the sweeper (ADR 0056).

Delivery is a core-NATS *request* on the device's command subject with a short time-out:
nats-server answers "no responders" at once when nothing subscribes to it (the device is
offline, or has not subscribed yet), so the command stays PENDING; otherwise a device holds
the subscription (it cannot answer: it may not publish on ``_INBOX``), the request times
out, and the command is SENT. Deliveries happen on creation, on the device's
``DeviceConnected`` event, and from the sweeper (per-device back-off while it is offline,
re-sends of SENT commands until an ack, expiry). Delivery is at least once: the device
dedupes by command id. Every transition goes through the command's decider with
optimistic concurrency, so replicas racing on one command decide each change once and a
late or repeated ack never moves a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import commands as api
from outpost_contracts import device_config, subjects
from outpost_contracts.device_config import ReportedStateChanged
from outpost_contracts.devices import DeviceStatus
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed, validation_error
from outpost_contracts.presence import (
    STATE_COMMAND,
    CommandAck,
    CommandMessage,
    CommandStatus,
    DesiredState,
    StateReport,
)
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_devices.app.aggregates import COMMANDS, DESIRED
from outpost_devices.app.ports import CommandRecords, DevicesTx, DevicesUnitOfWork, StateRow
from outpost_devices.domain import commands as domain
from outpost_kit import ids
from outpost_kit.aggregate import Taken
from outpost_kit.db.eventstore import ConcurrencyConflict

_log = logging.getLogger(__name__)

# Offers one message on a subject; True when a subscriber held it (SENT), False for "no
# responders" (nobody subscribed: stay PENDING).
Deliver = Callable[[str, bytes], Awaitable[bool]]


@dataclass(frozen=True)
class CommandsConfig:
    default_ttl: timedelta = timedelta(hours=1)
    max_ttl: timedelta = timedelta(days=7)
    resend: timedelta = timedelta(seconds=30)  # SENT without an ack: offered again
    backoff_min: timedelta = timedelta(seconds=1)  # offline: 1, 2, 4… seconds
    backoff_max: timedelta = timedelta(seconds=60)
    sweep_seconds: float = 1.0
    lease: timedelta = timedelta(seconds=30)  # a claimed wake-up's hold on other replicas
    batch: int = 100
    # After DeviceConnected: the device subscribes just after connecting.
    connected_retries: tuple[float, ...] = (0.0, 0.3, 1.0, 2.0)
    deliver_concurrency: int = 16  # deliveries at once after fleet batches (per process)


@dataclass
class CommandDeps:
    uow: DevicesUnitOfWork
    config: CommandsConfig = field(default_factory=CommandsConfig)
    deliver: Deliver | None = None  # None: no broker (deliveries wait for one)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _delivering: asyncio.Semaphore | None = None

    def soon(self, org_id: UUID, device_id: UUID) -> None:
        """Deliver what waits for the device now, in the background (the caller has
        committed; the sweeper would get to it anyway)."""
        if self.deliver is None:
            return
        self.spawn(deliver_claimed(self, org_id, device_id))

    def soon_many(self, org_id: UUID, device_ids: Sequence[UUID]) -> None:
        """``soon`` for a batch, at most ``config.deliver_concurrency`` at a time (a fleet
        batch of 500 does not become 500 deliveries at once)."""
        if self.deliver is None or not device_ids:
            return
        if self._delivering is None:  # one bound for every batch of this process
            self._delivering = asyncio.Semaphore(self.config.deliver_concurrency)
        limit = self._delivering

        async def one(device_id: UUID) -> None:
            async with limit:
                await deliver_claimed(self, org_id, device_id)

        async def all_of() -> None:
            results = await asyncio.gather(*(one(d) for d in device_ids), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    _log.error("command delivery failed", exc_info=result)

        self.spawn(all_of())

    def spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("command delivery failed", exc_info=task.exception())

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


# --- the HTTP use cases -----------------------------------------------------------------


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("devices belong to an organization: name it with X-Organization")


async def _device(tx: DevicesTx, device_id: UUID, *, live: bool) -> None:
    """404 for a device this tenant does not have; 409 for a change to a retired one."""
    status = await tx.device_status(device_id, share=True)
    if status is None:
        raise NotFound("no such device")
    if live and status == DeviceStatus.DECOMMISSIONED:
        raise Conflict(f"device {device_id} is decommissioned")


def expiry(config: CommandsConfig, body: api.CommandBody, now: datetime) -> datetime:
    if body.expires_at is not None and body.ttl_seconds is not None:
        raise validation_error("ttlSeconds", "give expiresAt or ttlSeconds, not both")
    latest = now + config.max_ttl
    if body.ttl_seconds is not None:
        at = now + timedelta(seconds=body.ttl_seconds)
        if at > latest:
            raise validation_error("ttlSeconds", f"at most {int(config.max_ttl.total_seconds())}")
        return at
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise validation_error("expiresAt", "needs a time zone (e.g. Z)")
        if body.expires_at <= now:
            raise validation_error("expiresAt", "must be in the future")
        if body.expires_at > latest:
            raise validation_error("expiresAt", f"at most {config.max_ttl} from now")
        return body.expires_at
    return now + config.default_ttl


async def _command_row(tx: CommandRecords, device_id: UUID, command_id: UUID) -> api.CommandView:
    view = await tx.command(device_id, command_id)
    if view is None:
        raise NotFound("no such command")
    return view


async def create_command(
    deps: CommandDeps, ctx: RequestContext, cmd: api.CreateCommand
) -> api.CommandView:
    _tenant(ctx)
    now = ids.now()
    command_id = ids.new_id()
    async with deps.uow(ctx.org_id) as tx:
        await _device(tx, cmd.device_id, live=True)
        create = domain.Create(
            device_id=cmd.device_id,
            name=cmd.command.name,
            params=cmd.command.params,
            expires_at=expiry(deps.config, cmd.command, now),
        )
        await COMMANDS.execute(
            tx, ctx, stream_id=command_id, command=create, org_id=ctx.org_id, now=now
        )
        await tx.wake(ctx.org_id, cmd.device_id, now)
        view = await _command_row(tx, cmd.device_id, command_id)
        await tx.commit()
    deps.soon(ctx.org_id, cmd.device_id)
    return view


async def get_command(deps: CommandDeps, ctx: RequestContext, q: api.GetCommand) -> api.CommandView:
    async with deps.uow(ctx.org_id) as tx:
        return await _command_row(tx, q.device_id, q.id)


async def list_commands(
    deps: CommandDeps, ctx: RequestContext, q: api.ListCommands
) -> Page[api.CommandView]:
    async with deps.uow(ctx.org_id) as tx:
        await _device(tx, q.device_id, live=False)
        return await tx.commands(q.device_id, q.query)


async def get_state(
    deps: CommandDeps, ctx: RequestContext, q: api.GetDeviceState
) -> api.DeviceStateView:
    async with deps.uow(ctx.org_id) as tx:
        await _device(tx, q.device_id, live=False)
        row = await tx.state(q.device_id)
    return row.view(q.device_id, explain=q.explain)


async def change_desired(
    deps: CommandDeps, ctx: RequestContext, cmd: api.ChangeDesiredState
) -> api.DeviceStateView:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as tx:
        await _device(tx, cmd.device_id, live=True)
        change = domain.ChangeDesired(
            device_id=cmd.device_id, desired=cmd.desired, replace=cmd.replace
        )
        _state, envelopes = await DESIRED.execute(
            tx,
            ctx,
            stream_id=api.desired_state_stream(cmd.device_id),
            command=change,
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        if envelopes:
            await tx.wake(ctx.org_id, cmd.device_id, ids.now())
        row = await tx.state(cmd.device_id)
        await tx.commit()
    if envelopes:
        deps.soon(ctx.org_id, cmd.device_id)
    return row.view(cmd.device_id)


ATTEMPTS = 3  # a fleet batch that meets a concurrent change is tried again on the new state


async def set_fleet_desired_states(
    deps: CommandDeps, ctx: RequestContext, cmd: device_config.SetFleetDesiredStates
) -> device_config.SetFleetDesiredStatesResult:
    """The fleet's layer of each device's desired state (ADR 0091), a batch of at most 500
    in one transaction: the aggregates read from their read model in one statement, then
    each changed device decided and appended (its event, projection and outbox row; the
    append fails on a concurrent change, and the batch is tried again), the wake-ups in one
    statement, and the deliveries after the commit as for a change through the API. The
    same digest again changes nothing; a desired state over 16 KiB changes nothing and is
    reported in ``too_large``."""
    _tenant(ctx)
    items = {item.device_id: item for item in cmd.items}  # a device named twice: the last
    for attempt in range(ATTEMPTS):
        changed: list[UUID] = []
        unchanged: list[UUID] = []
        too_large: list[UUID] = []
        try:
            async with deps.uow(ctx.org_id) as tx:
                states = await tx.desired_states(list(items))
                for device_id, item in items.items():
                    if device_id not in states:
                        continue
                    state, version = states[device_id]
                    if state is not None and state.digest == item.digest:
                        unchanged.append(device_id)
                        continue
                    command = domain.SetFleet(
                        device_id=device_id,
                        document=item.document,
                        sources=item.sources,
                        digest=item.digest,
                    )
                    try:
                        _state, envelopes = await DESIRED.execute_on(
                            tx,
                            ctx,
                            stream_id=api.desired_state_stream(device_id),
                            state=state,
                            version=version,
                            command=command,
                            org_id=ctx.org_id,
                        )
                    except ValidationFailed:
                        too_large.append(device_id)
                        continue
                    (changed if envelopes else unchanged).append(device_id)
                await tx.wake_many(ctx.org_id, changed, ids.now())
                await tx.commit()
            break
        except (ConcurrencyConflict, Taken):
            if attempt == ATTEMPTS - 1:
                raise
    deps.soon_many(ctx.org_id, changed)
    missing = [d for d in items if d not in states]
    return device_config.SetFleetDesiredStatesResult(
        changed=changed, unchanged=unchanged, missing=missing, too_large=too_large
    )


# --- transitions, delivery, acks --------------------------------------------------------


async def transition(
    deps: CommandDeps,
    org_id: UUID,
    command_id: UUID,
    command: domain.CommandCommand,
    *,
    device_id: UUID | None = None,
) -> bool:
    """Apply a device- or delivery-driven change to a command; False when the command is not
    there (or not ``device_id``'s) or nothing changed. A concurrent change is retried on the
    new state, where the decider sees, e.g., that the command is already final."""
    for _ in range(5):
        try:
            async with deps.uow(org_id) as tx:
                state, _version = await COMMANDS.load(tx, command_id)
                if state is None or (device_id is not None and state.device_id != device_id):
                    return False
                _state, envelopes = await COMMANDS.execute(
                    tx, None, stream_id=command_id, command=command, org_id=org_id
                )
                await tx.commit()
                return bool(envelopes)
        except (ConcurrencyConflict, Taken):
            continue
    raise Conflict(f"command {command_id} kept changing under a transition")


def state_message(device_id: UUID, state: StateRow) -> CommandMessage:
    """The desired-state delivery; its id is the same for one version, so the device dedupes
    repeats like any command's."""
    stream = api.desired_state_stream(device_id)
    params = DesiredState(
        version=state.version,
        desired=state.desired,
        delta=domain.delta(state.desired, state.reported),
    )
    return CommandMessage(
        id=uuid.uuid5(stream, str(state.version)),
        name=STATE_COMMAND,
        params=msgspec.to_builtins(params),
    )


_encode = msgspec.json.encode


async def deliver_device(
    deps: CommandDeps, org_id: UUID, device_id: UUID, attempts: int = 0
) -> bool | None:
    """Expire, offer and reschedule what waits for one device. True: the device took the
    offers; False: it is not subscribed; None: there was nothing to offer."""
    config = deps.config
    now = ids.now()
    async with deps.uow(org_id) as tx:
        rows = await tx.open_commands(device_id)
        state = await tx.state(device_id)
        seq = await tx.wakeup_seq(device_id)
    live = []
    for row in rows:
        if row.expires_at <= now:
            await transition(deps, org_id, row.id, domain.Expire())
        else:
            live.append(row)
    offers: list[tuple[Any, bytes]] = []
    for row in live:
        if row.status in (CommandStatus.PENDING.value, CommandStatus.SENT.value):
            message = CommandMessage(
                id=row.id,
                name=row.name,
                params=row.params,
                expires_at=row.expires_at,
            )
            offers.append((row, _encode(message)))
    state_due = state.version > state.delivered_version
    if state_due:
        offers.append((None, _encode(state_message(device_id, state))))
    online: bool | None = None
    if offers and deps.deliver is not None:
        subject = subjects.command(org_id, device_id)
        for row, payload in offers:
            online = await deps.deliver(subject, payload)
            if not online:
                break
            if row is not None and row.status == CommandStatus.PENDING.value:
                await transition(deps, org_id, row.id, domain.MarkSent())
    async with deps.uow(org_id) as tx:
        if online and state_due:
            await tx.mark_state_delivered(device_id, state.version)
        due: datetime | None = None
        if online is False or (offers and deps.deliver is None):
            attempts += 1
            backoff = min(config.backoff_max, config.backoff_min * 2 ** min(attempts - 1, 16))
            due = now + backoff
        elif any(r.status != CommandStatus.ACKNOWLEDGED.value for r in live):
            due, attempts = now + config.resend, 0
        if live:  # every open command is looked at again by its expiry
            soonest = min(r.expires_at for r in live)
            due = soonest if due is None else min(due, soonest)
        await tx.reschedule(org_id, device_id, due, attempts, seq)
        await tx.commit()
    return online


async def deliver_claimed(deps: CommandDeps, org_id: UUID, device_id: UUID) -> bool | None:
    """``deliver_device`` if the device's wake-up is due and no replica's sweeper holds it
    (then that sweep delivers: one offer, not two)."""
    now = ids.now()
    async with deps.uow(None) as tx:
        attempts = await tx.claim_device(device_id, now, now + deps.config.lease)
        await tx.commit()
    if attempts is None:
        return None
    return await deliver_device(deps, org_id, device_id, attempts)


class _Envelope(msgspec.Struct, rename="camel"):
    org_id: UUID
    stream_id: UUID


async def on_device_connected(deps: CommandDeps, data: bytes) -> None:
    """``DeviceConnected``: offer what waits, a few times while the device subscribes."""
    try:
        envelope = msgspec.json.decode(data, type=_Envelope)
    except msgspec.DecodeError:
        return
    for delay in deps.config.connected_retries:
        await asyncio.sleep(delay)
        if await deliver_device(deps, envelope.org_id, envelope.stream_id) is not False:
            return


def device_message(data: bytes) -> CommandAck | StateReport:
    """What a device sent on its ack subject: a ``StateReport`` has ``state`` and no ``id``
    (an ack's ``result`` may well hold a ``state`` of its own)."""
    raw = msgspec.json.decode(data)
    if isinstance(raw, dict) and "state" in raw and "id" not in raw:
        return msgspec.convert(raw, StateReport)
    return msgspec.convert(raw, CommandAck)


async def on_ack(deps: CommandDeps, subject: str, data: bytes) -> None:
    """A device's message on its ack subject: a ``CommandAck`` or a ``StateReport``. The
    organization and device are the subject's (the broker lets a device publish only its
    own); a command of another device is ignored."""
    try:
        org_text, device_text = subjects.parse_command_ack(subject)
        org_id, device_id = UUID(org_text), UUID(device_text)
    except ValueError:
        _log.warning("ignoring a message on %s", subject)
        return
    try:
        message = device_message(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        _log.info("device %s sent a malformed ack: %s", device_id, exc)
        return
    if isinstance(message, StateReport):
        await record_report(deps, org_id, device_id, message.state.reported)
        return
    ack = message
    try:
        found = await transition(
            deps,
            org_id,
            ack.id,
            domain.Ack(status=ack.status, result=ack.result),
            device_id=device_id,
        )
    except ValidationFailed as exc:
        _log.info("device %s: ack of %s refused: %s", device_id, ack.id, exc)
        return
    if not found:
        _log.info(
            "device %s: ack of %s changed nothing (unknown, not its own, or final)",
            device_id,
            ack.id,
        )


async def record_report(
    deps: CommandDeps, org_id: UUID, device_id: UUID, reported: dict[str, Any]
) -> None:
    now = ids.now()
    async with deps.uow(org_id) as tx:
        if await tx.device_status(device_id) is None:
            return
        await tx.ensure_state(org_id, device_id)
        current = await tx.state(device_id, lock=True)
        try:
            merged = domain.report(current.reported, reported)
        except ValidationFailed as exc:
            _log.info("device %s: state report refused: %s", device_id, exc)
            return
        # The fact, for the fleet's compliance counts (ADR 0091): on a device's first report
        # and whenever its reported state changes; the same report again is no news.
        version = current.reported_version
        if merged != current.reported or current.reported_updated_at is None:
            version += 1
            fact = ReportedStateChanged(device_id=device_id, reported=merged, reported_at=now)
            await tx.publish_report(device_id, version, fact, now)
        await tx.save_reported(org_id, device_id, merged, now, version)
        await tx.commit()


async def sweep(deps: CommandDeps) -> int:
    """One pass over the due wake-ups; how many devices it looked at."""
    now = ids.now()
    async with deps.uow(None) as tx:
        due = await tx.claim_due(now, now + deps.config.lease, deps.config.batch)
        await tx.commit()
    for org_id, device_id, attempts in due:
        try:
            await deliver_device(deps, org_id, device_id, attempts)
        except Exception:
            _log.exception("delivery to device %s failed; retried after the lease", device_id)
    return len(due)


async def sweeper(deps: CommandDeps, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            busy = await sweep(deps)
        except Exception:
            _log.exception("command sweep failed")
            busy = 0
        if busy < deps.config.batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), deps.config.sweep_seconds)
    await deps.drain()


Handler = Callable[[CommandDeps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_COMMAND: create_command,
    api.GET_COMMAND: get_command,
    api.LIST_COMMANDS: list_commands,
    api.GET_DEVICE_STATE: get_state,
    api.CHANGE_DESIRED_STATE: change_desired,
    device_config.SET_FLEET_DESIRED_STATES: set_fleet_desired_states,
}
