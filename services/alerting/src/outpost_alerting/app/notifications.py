"""Notification channels and deliveries: the use cases and their handler table, the policy
that turns an alert event into deliveries, and the delivery worker (ADR 0064).

- Channels are event-sourced (``domain/channels.py``); a webhook's secret is sealed and kept
  beside the stream in the same transaction, never in an event. A webhook URL passes the
  SSRF guard at creation and at every change of it.
- ``on_alert_event`` (the ``alerting-notifications`` consumer) makes one delivery per
  enabled channel of the alert's rule, unique per event and channel, queued at once.
- The worker claims due deliveries (``adapters/delivery_store.claim``: leases, the
  per-channel limit), sends each outside any transaction, then records the attempt and
  either finishes the delivery or queues it again after a back-off, until the retry budget
  is spent and it is dead-lettered with its last error.
- ``/test`` sends one delivery at once and answers how it went; it is logged like the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import msgspec
from prometheus_client import Counter, Histogram

from outpost_alerting.adapters import channel_store, delivery_store
from outpost_alerting.adapters.resolver import UnresolvableHost
from outpost_alerting.adapters.secrets import SecretVault
from outpost_alerting.adapters.smtp import EmailSender, SmtpConfig
from outpost_alerting.adapters.webhook import WebhookSender
from outpost_alerting.domain import channels, deliveries, ssrf
from outpost_contracts import alerting as alert_api
from outpost_contracts import notifications as api
from outpost_contracts.base import Empty, event_tag
from outpost_contracts.envelope import PLATFORM_ORG_ID, EventEnvelope, RequestContext
from outpost_contracts.errors import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    validation_error,
)
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate, Taken
from outpost_kit.db.listing import list_page
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

_log = logging.getLogger(__name__)
_encode = msgspec.json.encode

CHANNELS = Aggregate(channels.STREAM_TYPE, channels.decide, channels.evolve)

ATTEMPTS = Counter(
    "outpost_notification_attempts_total",
    "Delivery attempts by channel type, kind and outcome (DEAD: dead-lettered)",
    ["channel_type", "kind", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "outpost_notification_attempt_seconds",
    "How long one delivery attempt took",
    ["channel_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _observe(
    channel_type: str, kind: api.DeliveryKind, outcome: api.DeliveryOutcome, ms: float
) -> None:
    ATTEMPTS.labels(channel_type, kind.value, outcome.value).inc()
    ATTEMPT_SECONDS.labels(channel_type).observe(ms / 1000)


ALERT_EVENTS: tuple[type[Any], ...] = (
    alert_api.AlertOpened,
    alert_api.AlertAcknowledged,
    alert_api.AlertResolved,
)


def _no_webhooks() -> WebhookSender:
    return WebhookSender(_NoResolver(), ssrf.Policy())


class _NoResolver:
    async def resolve(self, host: str) -> list[ssrf.IPAddress]:
        raise UnresolvableHost(f"{host}: no resolver")


@dataclass
class NotificationDeps:
    uow: UnitOfWorkFactory
    reads: TenantReads | None = None
    vault: SecretVault | None = None
    webhooks: WebhookSender = field(default_factory=_no_webhooks)
    email: EmailSender = field(default_factory=lambda: EmailSender(SmtpConfig()))
    budget: deliveries.Budget = field(default_factory=deliveries.Budget)
    channel_concurrency: int = 4
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 0.25
    batch: int = 32
    jitter: Callable[[], float] = random.random
    # Woken when a delivery was queued in this process, so the worker looks at once.
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed(
            "notification channels belong to an organization: name it with X-Organization"
        )


def _vault(deps: NotificationDeps) -> SecretVault:
    if deps.vault is None:
        raise ServiceUnavailable(
            "webhook channels are unavailable: no secret encryption key is configured"
        )
    return deps.vault


async def check_url(deps: NotificationDeps, url: str) -> None:
    """The SSRF guard at creation: the URL's form, then every address its host resolves to
    now. ``validation_error`` on ``url``: what is wrong with its form, or only that it is
    refused when it leads somewhere not allowed or nowhere (decision 78: neither the address
    nor whether the host resolved reaches the caller; the log keeps the class)."""
    try:
        target = ssrf.parse(url)
        await deps.webhooks.address_of(target)
    except ssrf.AddressRefused as exc:
        _log.info("webhook url refused: %s", exc.category or "no address")
        raise validation_error("url", str(exc)) from None
    except ssrf.Refused as exc:
        raise validation_error("url", str(exc)) from None
    except UnresolvableHost:
        _log.info("webhook url refused: unresolvable")
        raise validation_error("url", ssrf.ADDRESS_REFUSED) from None


# --- channels ---------------------------------------------------------------------------


async def _require(uow: UnitOfWork, channel_id: UUID) -> channels.Channel:
    """404 before anything else (If-Match included) for what this tenant cannot see."""
    state, _version = await CHANNELS.load(uow, channel_id)
    if state is None or state.deleted:
        raise NotFound("no such notification channel")
    return state  # type: ignore[no-any-return]


async def _view(uow: UnitOfWork, channel_id: UUID) -> api.NotificationChannelView:
    view = await channel_store.load_channel(uow.conn, channel_id)
    if view is None:
        raise NotFound("no such notification channel")
    return view


async def create_channel(
    deps: NotificationDeps, ctx: RequestContext, cmd: api.CreateNotificationChannel
) -> api.NotificationChannelView:
    _tenant(ctx)
    channels.check_create(cmd)  # the fields of its type first: no DNS for a wrong body
    if cmd.type is api.ChannelType.WEBHOOK:
        vault = _vault(deps)
        if cmd.url is not None:
            await check_url(deps, cmd.url)
    channel_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        try:
            await CHANNELS.execute(uow, ctx, stream_id=channel_id, command=cmd, org_id=ctx.org_id)
        except Taken as exc:
            raise Conflict("the notification channel already exists") from exc
        if cmd.secret is not None:
            await channel_store.save_secret(
                uow.conn, ctx.org_id, channel_id, vault.seal(cmd.secret), ids.now()
            )
        view = await _view(uow, channel_id)
        await uow.commit()
    return view


async def get_channel(
    deps: NotificationDeps, ctx: RequestContext, q: api.GetNotificationChannel
) -> api.NotificationChannelView:
    if deps.reads is not None:
        async with deps.reads(ctx.org_id) as conn:
            row = await conn.fetchrow(channel_store.SELECT_CHANNEL, q.id)
        if row is None:
            raise NotFound("no such notification channel")
        return channel_store.channel_view(row)
    async with deps.uow(ctx.org_id) as uow:
        return await _view(uow, q.id)


async def list_channels(
    deps: NotificationDeps, ctx: RequestContext, q: api.ListNotificationChannels
) -> Page[api.NotificationChannelView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(
            uow.conn, channel_store.CHANNELS, q.query, channel_store.channel_view
        )


async def update_channel(
    deps: NotificationDeps, ctx: RequestContext, cmd: api.UpdateNotificationChannel
) -> api.NotificationChannelView:
    _tenant(ctx)
    patch = cmd.patch
    async with deps.uow(ctx.org_id) as uow:
        state = await _require(uow, cmd.id)
        channels.check_patch(state, patch)
        if state.type is api.ChannelType.WEBHOOK:
            if isinstance(patch.url, str):
                await check_url(deps, patch.url)
            if isinstance(patch.secret, str):
                sealed = _vault(deps).seal(patch.secret)
                await channel_store.save_secret(uow.conn, ctx.org_id, cmd.id, sealed, ids.now())
        await CHANNELS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=patch,
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        view = await _view(uow, cmd.id)
        await uow.commit()
    return view


async def delete_channel(
    deps: NotificationDeps, ctx: RequestContext, cmd: api.DeleteNotificationChannel
) -> Empty:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, cmd.id)
        await CHANNELS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=channels.Delete(),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await uow.commit()
    return Empty()


# --- sending ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What one send needs, read in the tenant's transaction."""

    channel: api.NotificationChannelView | None
    sealed_secret: bytes | None
    rule_name: str | None = None
    device_name: str | None = None


async def _send(
    deps: NotificationDeps, target: _Target, event_id: UUID, event_type: str, body: bytes
) -> deliveries.Result:
    channel = target.channel
    if channel is None:
        return deliveries.failed("the channel was deleted", 0.0, permanent=True)
    if channel.type is api.ChannelType.WEBHOOK:
        if channel.url is None or target.sealed_secret is None or deps.vault is None:
            reason = "the channel has no secret, or no key opens it here"
            return deliveries.failed(reason, 0.0, permanent=True)
        try:
            secret = deps.vault.open(target.sealed_secret)
        except RuntimeError:
            return deliveries.failed("no configured key opens the secret", 0.0, permanent=True)
        return await deps.webhooks.send(channel.url, secret, str(event_id), event_type, body)
    subject, text = deliveries.email_text(
        msgspec.json.decode(body), rule_name=target.rule_name, device_name=target.device_name
    )
    return await deps.email.send(list(channel.addresses or ()), subject, text, str(event_id))


async def try_channel(
    deps: NotificationDeps, ctx: RequestContext, cmd: api.TestNotificationChannel
) -> api.ChannelTestResult:
    """Send a test delivery now; one attempt, never retried; logged like the others."""
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        channel = await _view(uow, cmd.id)
        sealed = await channel_store.load_secret(uow.conn, cmd.id)
    if channel.type is api.ChannelType.WEBHOOK:
        _vault(deps)  # 503 without the key, as creating one is
    envelope = EventEnvelope(
        id=ids.new_id(),
        org_id=ctx.org_id,
        stream_id=cmd.id,
        stream_type=channels.STREAM_TYPE,
        version=channel.version,
        occurred_at=ids.now(),
        data=api.NotificationTest(channel_id=cmd.id),
        request_id=ctx.request_id,
    )
    event_type = event_tag(api.NotificationTest)
    body = _encode(envelope)
    result = await _send(deps, _Target(channel, sealed), envelope.id, event_type, body)
    at = ids.now()
    outcome = api.DeliveryOutcome.SUCCEEDED if result.ok else api.DeliveryOutcome.DEAD
    delivery = delivery_store.Delivery(
        id=ids.new_id(),
        org_id=ctx.org_id,
        channel_id=cmd.id,
        event_id=envelope.id,
        event_type=event_type,
        kind=api.DeliveryKind.TEST,
        alert_id=None,
        body=body,
        status=api.DeliveryStatus.PENDING,
        attempts=0,
        created_at=envelope.occurred_at,
    )
    async with deps.uow(ctx.org_id) as uow:
        await delivery_store.insert(uow.conn, delivery, queue_at=None)
        await delivery_store.record(
            await delivery_store.driver(uow.conn),
            delivery,
            attempt_id=ids.new_id(),
            attempted_at=at,
            outcome=outcome,
            status_code=result.status_code,
            error=result.error,
            latency_ms=result.latency_ms,
            next_due=None,
        )
        await uow.commit()
    _observe(channel.type.value, api.DeliveryKind.TEST, outcome, result.latency_ms)
    return api.ChannelTestResult(
        delivery_id=delivery.id,
        channel_id=cmd.id,
        event_id=envelope.id,
        outcome=outcome,
        attempted_at=at,
        latency_ms=result.latency_ms,
        status_code=result.status_code,
        error=result.error,
    )


# --- the delivery log -------------------------------------------------------------------


async def list_deliveries(
    deps: NotificationDeps, ctx: RequestContext, q: api.ListDeliveries
) -> Page[api.DeliveryAttemptView]:
    if (q.alert_id is None) == (q.channel_id is None):
        raise validation_error("alertId", "name exactly one of alertId and channelId")
    async with deps.uow(ctx.org_id) as uow:
        if q.alert_id is not None:
            opened = event_tag(alert_api.AlertOpened)
            if not await delivery_store.alert_known(uow.conn, q.alert_id, opened):
                raise NotFound("no such alert")
            where = "alert_id = :log_key"
            key: UUID = q.alert_id
        else:
            assert q.channel_id is not None
            key = q.channel_id
            await _view(uow, key)
            where = "channel_id = :log_key"
        return await list_page(
            uow.conn,
            delivery_store.DELIVERY_LOG,
            q.query,
            delivery_store.attempt_view,
            extra_where=where,
            extra_params={"log_key": key},
        )


# --- alert events → deliveries ----------------------------------------------------------


async def _rule_of(db: Any, envelope: EventEnvelope) -> UUID | None:
    data = envelope.data
    if isinstance(data, alert_api.AlertOpened):
        return data.rule_id
    return await delivery_store.rule_of_alert(
        db, envelope.stream_id, event_tag(alert_api.AlertOpened)
    )


async def _channels_of(db: Any, rule_id: UUID) -> list[UUID]:
    """The rule's enabled channels, its channels as they are now (the read model, else its
    newest event: a rule deleted since still notifies the resolution of its alerts)."""
    found = await delivery_store.enabled_channels_of_rule(db, rule_id)
    if found is not None:
        return found
    wanted = await delivery_store.channels_in_rule_events(db, rule_id)
    return await delivery_store.enabled_channels(db, wanted) if wanted else []


async def on_alert_event(deps: NotificationDeps, uow: UnitOfWork, envelope: EventEnvelope) -> None:
    """One delivery per enabled channel of the alert's rule, in the consumer's transaction
    (with its inbox row): made once per event and channel, whatever redelivers the event.
    Two statements for an opening (three for a later transition): the rule's enabled
    channels, then every delivery and its queue row at once."""
    db = await delivery_store.driver(uow.conn)
    rule_id = await _rule_of(db, envelope)
    if rule_id is None:
        _log.warning("notifications: alert %s has no rule on record", envelope.stream_id)
        return
    channel_ids = await _channels_of(db, rule_id)
    if not channel_ids:
        return
    made = await delivery_store.insert_queued(
        db,
        org_id=envelope.org_id,
        delivery_ids=[ids.new_id() for _ in channel_ids],
        channel_ids=channel_ids,
        event_id=envelope.id,
        event_type=envelope.type,
        kind=api.DeliveryKind.ALERT,
        alert_id=envelope.stream_id,
        body=_encode(envelope),
        at=ids.now(),
    )
    if made:
        deps.wake.set()


# --- the worker -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedBatch:
    taken: int  # how many were claimed (those gone or finished since are not in ``due``)
    due: list[delivery_store.Due]
    more: bool  # something due now was left in the queue


async def claim_due(deps: NotificationDeps, limit: int) -> ClaimedBatch:
    """Claim due deliveries (one transaction, no tenant) and read what sending each needs
    (one statement per tenant among them); a claimed delivery that is gone or no longer
    PENDING leaves the queue."""
    now = ids.now()
    async with delivery_store.raw_unit(deps.uow.engine, None) as unit:
        claimed, more = await delivery_store.claim(
            unit.db, now, now + deps.lease, limit, deps.channel_concurrency
        )
        await unit.commit()
    by_tenant: dict[UUID, list[UUID]] = {}
    for item in claimed:
        by_tenant.setdefault(item.tenant_id, []).append(item.delivery_id)
    due: list[delivery_store.Due] = []
    for tenant, delivery_ids in by_tenant.items():
        found = await _load_due(deps, tenant, delivery_ids)
        sendable = [d for d in found if d.delivery.status is api.DeliveryStatus.PENDING]
        gone = set(delivery_ids) - {d.delivery.id for d in sendable}
        if gone:
            async with deps.uow(tenant) as uow:
                await delivery_store.drop(uow.conn, sorted(gone))
                await uow.commit()
        due.extend(sendable)
    return ClaimedBatch(len(claimed), due, more)


async def _load_due(
    deps: NotificationDeps, tenant: UUID, delivery_ids: list[UUID]
) -> list[delivery_store.Due]:
    """Over the replica's read-only connections when it has them (one round trip, no
    transaction: a read of rows this worker holds the lease of), else a transaction."""
    if deps.reads is not None:
        async with deps.reads(tenant) as conn:
            return await delivery_store.load_due(conn, delivery_ids)
    async with delivery_store.raw_unit(deps.uow.engine, tenant) as unit:
        return await delivery_store.load_due(unit.db, delivery_ids)


async def attempt(deps: NotificationDeps, due: delivery_store.Due) -> None:
    """Send one claimed delivery and record how it went."""
    delivery = due.delivery
    target = _Target(due.channel, due.sealed_secret, due.rule_name, due.device_name)
    if target.channel is not None and not target.channel.enabled:
        result = deliveries.failed("the channel is disabled", 0.0, permanent=True)
    else:
        try:
            result = await _send(
                deps, target, delivery.event_id, delivery.event_type, delivery.body
            )
        except Exception as exc:
            # Counted against the budget like any failure, so nothing retries forever.
            _log.exception("notifications: delivery %s: sending failed", delivery.id)
            result = deliveries.failed(f"internal error ({type(exc).__name__})", 0.0)
    now = ids.now()
    next_due = None
    if not result.ok and not result.permanent:
        next_due = deps.budget.next_attempt(
            delivery.attempts + 1, delivery.created_at, now, deps.jitter()
        )
    outcome = deliveries.outcome(result, next_due)
    async with delivery_store.raw_unit(deps.uow.engine, delivery.org_id) as unit:
        await delivery_store.record(
            unit.db,
            delivery,
            attempt_id=ids.new_id(),
            attempted_at=now,
            outcome=outcome,
            status_code=result.status_code,
            error=result.error,
            latency_ms=result.latency_ms,
            next_due=next_due,
        )
        await unit.commit()
    kind = "none" if target.channel is None else target.channel.type.value
    _observe(kind, delivery.kind, outcome, result.latency_ms)
    if outcome is api.DeliveryOutcome.DEAD:
        _log.warning(
            "notifications: delivery %s of event %s to channel %s dead-lettered after %d"
            " attempt(s): %s",
            delivery.id,
            delivery.event_id,
            delivery.channel_id,
            delivery.attempts + 1,
            result.error,
        )


# After a wake-up whose claim found nothing, look again after each of these (a commit on
# a durable Postgres takes a few milliseconds to be seen).
COMMIT_GRACE_SECONDS = (0.002, 0.004, 0.008)


async def worker(deps: NotificationDeps, stop: asyncio.Event) -> None:
    """Claim what is due (up to ``batch`` in flight in this replica), send each in its own
    task; look again every ``poll_seconds``, at once when a delivery was queued here, and
    when one finished here if the last claim left something due in the queue (a slot of
    its channel, or its alert's next delivery, may be free now)."""
    tasks: set[asyncio.Task[None]] = set()
    left = False  # the last claim left something due in the queue

    async def run_one(item: delivery_store.Due) -> None:
        try:
            await attempt(deps, item)
        except Exception:
            # The lease runs out and the delivery is due again: nothing is lost.
            _log.exception("notifications: delivery %s failed to run", item.delivery.id)
        finally:
            if left:
                deps.wake.set()

    try:
        misses = 0  # looks after a wake-up that found nothing
        while not stop.is_set():
            woken = deps.wake.is_set()
            deps.wake.clear()  # before the claim: a wake-up during it is not lost
            free = deps.batch - len(tasks)
            claimed: list[delivery_store.Due] = []
            taken = 0
            if free > 0:
                try:
                    batch = await claim_due(deps, free)
                    taken, claimed, left = batch.taken, batch.due, batch.more
                except Exception as exc:
                    left = True
                    _log.warning("notifications: claiming deliveries failed: %r", exc)
            else:
                left = True  # this replica's own limit: look again as a slot frees
            for item in claimed:
                task = asyncio.create_task(run_one(item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if woken and free > 0 and taken == 0 and misses < len(COMMIT_GRACE_SECONDS):
                # Woken by a delivery queued here, but its transaction may not have
                # committed yet (the handler runs inside it): look again shortly.
                await asyncio.sleep(COMMIT_GRACE_SECONDS[misses])
                misses += 1
                deps.wake.set()
                continue
            misses = 0
            if free <= 0 or taken < free:  # (full: wait for a slot rather than spin)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop.wait(), deps.wake.wait()), deps.poll_seconds)
            else:
                await asyncio.sleep(0)
    finally:
        if tasks:
            await asyncio.wait(tasks, timeout=10)


async def _first(*awaitables: Awaitable[Any]) -> None:
    waiting = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiting:
            w.cancel()


Handler = Callable[[NotificationDeps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_CHANNEL: create_channel,
    api.GET_CHANNEL: get_channel,
    api.LIST_CHANNELS: list_channels,
    api.UPDATE_CHANNEL: update_channel,
    api.DELETE_CHANNEL: delete_channel,
    api.TEST_CHANNEL: try_channel,
    api.LIST_DELIVERIES: list_deliveries,
}
