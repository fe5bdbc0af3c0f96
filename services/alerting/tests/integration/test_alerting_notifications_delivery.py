"""Deliveries against real Postgres, nats-server, HTTP receivers on loopback and an SMTP
server: the signature a receiver verifies, retries and the dead letter (failing and
redirecting receivers), the retry budget, the per-channel concurrency limit across two
workers, one delivery per event and channel under redelivery (through JetStream too), DNS
rebinding refused at delivery, the address pinned, e-mail, ``/test`` and the delivery log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import msgspec
import nats
import pytest
from alerting_testkit import (
    TEST_KEY,
    Receiver,
    SmtpServer,
    alerting_db,
    ctx,
    eventually,
    insert_rule,
    open_alert,
    tls_pair,
)
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY

from outpost_alerting.adapters import delivery_store
from outpost_alerting.adapters.resolver import StaticResolver
from outpost_alerting.adapters.secrets import SecretVault
from outpost_alerting.adapters.smtp import EmailSender, SmtpConfig
from outpost_alerting.adapters.webhook import WebhookSender
from outpost_alerting.app import notifications as app
from outpost_alerting.domain import deliveries, ssrf
from outpost_alerting.entrypoints import notifications as entrypoints
from outpost_contracts import alerting as alert_api
from outpost_contracts import notifications as api
from outpost_contracts import streams, subjects
from outpost_contracts.envelope import EventEnvelope, RequestContext
from outpost_contracts.identity import OrganizationReinstated, OrganizationSuspended
from outpost_contracts.query import Cmp, ListQuery
from outpost_devkit.testing.suspensions import record_organization_event
from outpost_kit import messaging
from outpost_kit.consumer import InboxConsumer
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWorkFactory

pytestmark = pytest.mark.integration

SECRET = "receiver-shared-secret-0001"
KEY = TEST_KEY  # one key for every module: the rotation test re-seals every row
FAST = deliveries.Budget(
    max_attempts=3,
    max_age=timedelta(minutes=5),
    backoff_min=timedelta(milliseconds=50),
    backoff_max=timedelta(milliseconds=200),
)


class World:
    def __init__(
        self, uow: UnitOfWorkFactory, resolver: StaticResolver, reads: TenantReads | None = None
    ) -> None:
        self.uow = uow
        self.reads = reads  # a replica's read connections: the worker reads what it claimed
        self.resolver = resolver
        self.ctx: RequestContext = ctx(uuid.uuid4())
        self.workers: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    def deps(
        self,
        policy: ssrf.Policy | None = None,
        budget: deliveries.Budget = FAST,
        concurrency: int = 4,
        smtp_port: int = 0,
    ) -> app.NotificationDeps:
        return app.NotificationDeps(
            uow=self.uow,
            reads=self.reads,
            vault=SecretVault(KEY),
            webhooks=WebhookSender(
                self.resolver, policy or ssrf.Policy(allow_loopback=True), timeout=2.0
            ),
            email=EmailSender(
                SmtpConfig(host="127.0.0.1" if smtp_port else "", port=smtp_port, tls="none")
            ),
            budget=budget,
            channel_concurrency=concurrency,
            poll_seconds=0.05,
        )

    def start(self, deps: app.NotificationDeps) -> None:
        self.workers.append(asyncio.create_task(app.worker(deps, self.stop)))

    async def webhook(self, deps: app.NotificationDeps, url: str) -> api.NotificationChannelView:
        return await app.create_channel(
            deps,
            self.ctx,
            api.CreateNotificationChannel(
                type=api.ChannelType.WEBHOOK, name="hook", url=url, secret=SECRET
            ),
        )

    async def alert(self, deps: app.NotificationDeps, *channels: uuid.UUID) -> EventEnvelope:
        """An alert of a rule naming ``channels``, its event handled as the consumer does."""
        rule = await insert_rule(self.uow, self.ctx.org_id, list(channels))
        envelope = await open_alert(self.uow, self.ctx.org_id, rule)
        await self.handle(deps, envelope)
        return envelope

    async def handle(self, deps: app.NotificationDeps, envelope: EventEnvelope) -> None:
        async with self.uow(envelope.org_id) as uow:
            await app.on_alert_event(deps, uow, envelope)
            await uow.commit()

    async def deliveries(self) -> list[Any]:
        async with self.uow(self.ctx.org_id) as uow:
            rows = await uow.execute(
                "SELECT id, status, attempts, last_error, last_status, event_id FROM deliveries"
                " ORDER BY created_at"
            )
            return list(rows)

    async def log(self, **where: uuid.UUID) -> list[api.DeliveryAttemptView]:
        page = await app.list_deliveries(
            self.deps(), self.ctx, api.ListDeliveries(query=ListQuery(limit=1000), **where)
        )
        return page.data


@pytest.fixture
async def world(postgres_dsn: str) -> AsyncIterator[World]:
    async with alerting_db(postgres_dsn) as (uow, reads):
        w = World(uow, StaticResolver({"pinned.example": ["127.0.0.1"]}), reads)
        try:
            yield w
        finally:
            w.stop.set()
            if w.workers:
                await asyncio.wait(w.workers, timeout=10)
            async with uow(None) as u:  # other tests' workers must not find this one's rows
                await u.execute("DELETE FROM delivery_queue")
                await u.commit()


async def test_a_receiver_verifies_the_signature(world: World) -> None:
    deps = world.deps()
    world.start(deps)
    with Receiver() as receiver:
        channel = await world.webhook(deps, receiver.url())
        envelope = await world.alert(deps, channel.id)
        await eventually(lambda: _done(world, 1))
    [got] = receiver.requests
    assert deliveries.verify(SECRET, got.body, got.headers["x-outpost-signature"])
    assert got.headers["x-outpost-event-id"] == str(envelope.id)
    assert got.headers["x-outpost-event-type"] == "alerting.AlertOpened.v1"
    assert got.headers["content-type"] == "application/json"
    sent = msgspec.json.decode(got.body)
    assert sent["id"] == str(envelope.id) and sent["streamId"] == str(envelope.stream_id)
    assert sent["data"]["type"] == "alerting.AlertOpened.v1"
    assert sent["data"]["trigger"]["value"] == 41.5
    [row] = await world.deliveries()
    assert (row.status, row.attempts, row.last_status) == ("SUCCEEDED", 1, 200)
    [attempt] = await world.log(alert_id=envelope.stream_id)
    assert attempt.outcome is api.DeliveryOutcome.SUCCEEDED and attempt.status_code == 200
    assert attempt.latency_ms > 0 and attempt.kind is api.DeliveryKind.ALERT


async def _done(world: World, count: int) -> bool:
    rows = await world.deliveries()
    return len(rows) == count and all(r.status != "PENDING" for r in rows)


def _attempts(outcome: str) -> float:
    labels = {"channel_type": "WEBHOOK", "kind": "ALERT", "outcome": outcome}
    return REGISTRY.get_sample_value("outpost_notification_attempts_total", labels) or 0.0


async def test_retries_then_a_dead_letter_with_the_last_error(world: World) -> None:
    deps = world.deps()
    world.start(deps)
    failed, dead = _attempts("FAILED"), _attempts("DEAD")
    with Receiver(statuses=[503, 500]) as receiver:
        channel = await world.webhook(deps, receiver.url())
        envelope = await world.alert(deps, channel.id)
        await eventually(lambda: _done(world, 1))
    assert len(receiver.requests) == FAST.max_attempts
    # The same event id and the same signed body on every attempt.
    assert {r.headers["x-outpost-event-id"] for r in receiver.requests} == {str(envelope.id)}
    assert len({r.body for r in receiver.requests}) == 1
    [row] = await world.deliveries()
    assert (row.status, row.attempts, row.last_status) == ("DEAD", 3, 500)
    assert row.last_error == "HTTP 500"
    assert (_attempts("FAILED") - failed, _attempts("DEAD") - dead) == (2, 1)
    log = await world.log(channel_id=channel.id)
    assert [(a.attempt, a.outcome, a.status_code) for a in log] == [
        (1, api.DeliveryOutcome.FAILED, 503),
        (2, api.DeliveryOutcome.FAILED, 500),
        (3, api.DeliveryOutcome.DEAD, 500),
    ]
    # The delivery log as a collection: filters and totalCount.
    dead_page = await app.list_deliveries(
        deps,
        world.ctx,
        api.ListDeliveries(
            alert_id=envelope.stream_id,
            query=ListQuery(filter=Cmp(field="outcome", op="eq", value="DEAD"), include_total=True),
        ),
    )
    assert [a.attempt for a in dead_page.data] == [3] and dead_page.total_count == 1


async def test_a_failure_then_success_and_redirects_not_followed(world: World) -> None:
    deps = world.deps()
    world.start(deps)
    with Receiver() as target, Receiver(statuses=[302], location="") as redirecting:
        redirecting.location = target.url()
        flaky = Receiver(statuses=[500, 200])
        with flaky:
            a = await world.webhook(deps, flaky.url())
            b = await world.webhook(deps, redirecting.url())
            await world.alert(deps, a.id, b.id)
            await eventually(lambda: _done(world, 2))
        assert target.requests == []  # the redirect was never followed
    by_channel = {r.id: r for r in await world.deliveries()}
    assert len(by_channel) == 2
    flaky_log = await world.log(channel_id=a.id)
    assert [x.outcome for x in flaky_log] == [
        api.DeliveryOutcome.FAILED,
        api.DeliveryOutcome.SUCCEEDED,
    ]
    redirect_log = await world.log(channel_id=b.id)
    assert len(redirect_log) == 3 and redirect_log[-1].outcome is api.DeliveryOutcome.DEAD
    assert all(x.status_code == 302 for x in redirect_log)
    assert "redirects are not followed" in (redirect_log[-1].error or "")


async def test_the_retry_budget_by_age(world: World) -> None:
    budget = deliveries.Budget(
        max_attempts=100,
        max_age=timedelta(milliseconds=700),
        backoff_min=timedelta(milliseconds=200),
        backoff_max=timedelta(milliseconds=200),
    )
    deps = world.deps(budget=budget)
    world.start(deps)
    with Receiver(statuses=[500]) as receiver:
        channel = await world.webhook(deps, receiver.url())
        await world.alert(deps, channel.id)
        await eventually(lambda: _done(world, 1))
    # 100 attempts were allowed; the age allowed only the first few (each waits ≥ 0.1 s).
    assert 2 <= len(receiver.requests) <= 8
    [row] = await world.deliveries()
    assert row.status == "DEAD" and row.attempts == len(receiver.requests)


async def test_the_per_channel_concurrency_limit_holds_across_two_workers(world: World) -> None:
    deps_a, deps_b = world.deps(concurrency=2), world.deps(concurrency=2)
    world.start(deps_a)
    world.start(deps_b)
    with Receiver(delay=0.3) as slow, Receiver(delay=0.3) as other:
        channel = await world.webhook(deps_a, slow.url())
        second = await world.webhook(deps_a, other.url())
        for _ in range(6):
            await world.alert(deps_a, channel.id, second.id)
        await eventually(lambda: _done(world, 12), seconds=60)
    assert len(slow.requests) == 6 and len(other.requests) == 6
    assert slow.max_in_flight == 2 and other.max_in_flight == 2


async def test_one_delivery_per_event_and_channel_however_often_it_comes(world: World) -> None:
    deps = world.deps()
    with Receiver() as receiver:
        channel = await world.webhook(deps, receiver.url())
        envelope = await world.alert(deps, channel.id)
        await world.handle(deps, envelope)  # as if the inbox row had been lost
        await world.handle(deps, envelope)
        world.start(deps)
        await eventually(lambda: _done(world, 1))
        await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1


async def test_redelivery_through_jetstream_makes_one_delivery(world: World, nats_url: str) -> None:
    """The consumer as the service runs it: the same alert event published twice under two
    message ids (so the inbox sees two messages) reaches the receiver once."""
    deps = world.deps()
    world.start(deps)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    spec = streams.consumer(entrypoints.CONSUMER)
    await messaging.apply_streams(js, [streams.stream(spec.stream)], [spec])
    consumer = InboxConsumer(
        world.uow,
        js,
        spec,
        lambda uow, e: entrypoints.on_alert_event(deps, uow, e),
        EventCodec(app.ALERT_EVENTS),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        with Receiver() as receiver:
            channel = await world.webhook(deps, receiver.url())
            rule = await insert_rule(world.uow, world.ctx.org_id, [channel.id])
            envelope = await open_alert(world.uow, world.ctx.org_id, rule)
            subject = subjects.event(envelope.type, envelope.org_id)
            for msg_id in ("first", "second"):
                await js.publish(
                    subject,
                    msgspec.json.encode(envelope),
                    headers={messaging.MSG_ID: f"{envelope.id}-{msg_id}"},
                )
            await eventually(lambda: _consumed(consumer, 2))
            await eventually(lambda: _done(world, 1))
            await asyncio.sleep(0.3)
        assert len(receiver.requests) == 1
        assert receiver.requests[0].headers["x-outpost-event-id"] == str(envelope.id)
    finally:
        stop.set()
        await task
        with contextlib.suppress(Exception):
            await js.delete_consumer(spec.stream, spec.name)
        await nc.close()


async def _consumed(consumer: InboxConsumer, n: int) -> bool:
    return consumer.processed >= n


async def test_dns_rebinding_is_refused_at_delivery(world: World) -> None:
    """A name that resolved to a public address at creation resolves to loopback at
    delivery: refused there, dead-lettered at once, the receiver never reached."""
    strict = world.deps(policy=ssrf.Policy())
    world.start(strict)
    with Receiver() as receiver:
        world.resolver.table["rebind.example"] = ["93.184.216.34"]
        channel = await world.webhook(strict, receiver.url(host="rebind.example"))
        world.resolver.table["rebind.example"] = ["127.0.0.1"]
        await world.alert(strict, channel.id)
        await eventually(lambda: _done(world, 1))
        tested = await app.try_channel(
            strict, world.ctx, api.TestNotificationChannel(id=channel.id)
        )
    assert receiver.requests == []
    rows = await world.deliveries()
    alert_row = next(r for r in rows if r.attempts == 1 and r.status == "DEAD")
    # Refused without a word of where the name pointed (decision 78).
    assert alert_row.last_error == f"the url {ssrf.ADDRESS_REFUSED}"
    assert "127.0.0.1" not in alert_row.last_error and "loopback" not in alert_row.last_error
    assert tested.outcome is api.DeliveryOutcome.DEAD
    assert tested.error == f"the url {ssrf.ADDRESS_REFUSED}"


async def test_the_checked_address_is_the_one_connected_to(world: World) -> None:
    """``pinned.example`` exists only in the service's resolver: the request reaches the
    receiver at the checked address, with the name in ``Host``."""
    deps = world.deps()
    with Receiver() as receiver:
        channel = await world.webhook(deps, receiver.url(host="pinned.example"))
        result = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
    assert result.outcome is api.DeliveryOutcome.SUCCEEDED and result.status_code == 200
    [got] = receiver.requests
    assert got.headers["host"] == f"pinned.example:{receiver.port}"


async def test_try_answers_at_once_and_is_logged(world: World) -> None:
    deps = world.deps()
    with Receiver(statuses=[200, 500]) as receiver:
        channel = await world.webhook(deps, receiver.url())
        ok = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
        bad = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
    assert (ok.outcome, ok.status_code, ok.error) == (api.DeliveryOutcome.SUCCEEDED, 200, None)
    assert (bad.outcome, bad.status_code, bad.error) == (api.DeliveryOutcome.DEAD, 500, "HTTP 500")
    assert ok.latency_ms > 0
    first, _second = receiver.requests
    assert deliveries.verify(SECRET, first.body, first.headers["x-outpost-signature"])
    body = msgspec.json.decode(first.body)
    assert body["data"] == {
        "type": "alerting.NotificationTest.v1",
        "channelId": str(channel.id),
        "message": "This is a test notification from Outpost.",
    }
    assert first.headers["x-outpost-event-id"] == str(ok.event_id) != str(bad.event_id)
    log = await world.log(channel_id=channel.id)
    assert [(a.kind, a.outcome, a.delivery_id) for a in log] == [
        (api.DeliveryKind.TEST, api.DeliveryOutcome.SUCCEEDED, ok.delivery_id),
        (api.DeliveryKind.TEST, api.DeliveryOutcome.DEAD, bad.delivery_id),
    ]


async def test_email_reaches_a_local_smtp_server(world: World) -> None:
    with SmtpServer() as smtp:
        deps = world.deps(smtp_port=smtp.port)
        world.start(deps)
        channel = await app.create_channel(
            deps,
            world.ctx,
            api.CreateNotificationChannel(
                type=api.ChannelType.EMAIL,
                name="on-call",
                addresses=["oncall@example.com", "lead@example.com"],
            ),
        )
        envelope = await world.alert(deps, channel.id)
        await eventually(lambda: _done(world, 1))
        tried = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
    assert tried.outcome is api.DeliveryOutcome.SUCCEEDED
    (sender, rcpts, msg), (_, _, test_msg) = smtp.mailbox.messages
    assert sender == "outpost@localhost"
    assert rcpts == ["oncall@example.com", "lead@example.com"]
    assert msg["Subject"] == "[Outpost] CRITICAL alert opened: too hot on " + str(
        envelope.data.device_id  # type: ignore[attr-defined]
    )
    assert msg["X-Outpost-Event-Id"] == str(envelope.id)
    text = msg.get_payload(decode=True).decode()
    assert f"The alert {envelope.stream_id} was opened." in text
    assert "Rule: too hot (" in text and "Value: 41.5" in text
    assert "Condition: temperature > 40" in text and "Severity: CRITICAL" in text
    assert test_msg["Subject"] == "[Outpost] Test notification"


async def test_email_without_smtp_is_dead_lettered_at_once(world: World) -> None:
    deps = world.deps()
    world.start(deps)
    channel = await app.create_channel(
        deps,
        world.ctx,
        api.CreateNotificationChannel(
            type=api.ChannelType.EMAIL, name="m", addresses=["a@example.com"]
        ),
    )
    await world.alert(deps, channel.id)
    await eventually(lambda: _done(world, 1))
    [row] = await world.deliveries()
    assert (row.status, row.attempts, row.last_error) == ("DEAD", 1, "SMTP is not configured")


async def test_disabled_and_deleted_channels(world: World) -> None:
    deps = world.deps()
    with Receiver() as receiver:
        on = await world.webhook(deps, receiver.url())
        off = await world.webhook(deps, receiver.url())
        await app.update_channel(
            deps,
            world.ctx,
            api.UpdateNotificationChannel(
                id=off.id, patch=api.NotificationChannelPatch(enabled=False)
            ),
        )
        await world.alert(deps, on.id, off.id, uuid.uuid4())  # and one that never existed
        rows = await world.deliveries()
        assert len(rows) == 1  # only the enabled channel
        await app.delete_channel(deps, world.ctx, api.DeleteNotificationChannel(id=on.id))
        world.start(deps)
        await eventually(lambda: _done(world, 1))
    assert receiver.requests == []
    [row] = await world.deliveries()
    assert (row.status, row.last_error) == ("DEAD", "the channel was deleted")


async def test_a_claimed_delivery_no_longer_pending_leaves_the_queue_unsent(
    world: World,
) -> None:
    """A queue row whose delivery is gone or already finished (e.g. an operator's redrive
    gone wrong) is dropped by the worker that claims it, and nothing is sent; the other
    claimed deliveries of the same claim are sent (both read paths: the replica's read
    connections and the unit of work)."""
    for deps in (world.deps(), replace(world.deps(), reads=None)):
        with Receiver() as receiver:
            channel = await world.webhook(deps, receiver.url())
            done = await world.alert(deps, channel.id)
            sent = await world.alert(deps, channel.id)
            orphan = uuid.uuid4()
            async with world.uow(world.ctx.org_id) as u:
                await u.execute(
                    "UPDATE deliveries SET status = 'SUCCEEDED' WHERE event_id = :e",
                    {"e": done.id},
                )
                await u.execute(
                    "INSERT INTO delivery_queue (delivery_id, tenant_id, channel_id, due_at)"
                    " VALUES (:id, :org, :ch, now())",
                    {"id": orphan, "org": world.ctx.org_id, "ch": channel.id},
                )
                await u.commit()
            stop = asyncio.Event()
            task = asyncio.create_task(app.worker(deps, stop))
            try:
                await eventually(lambda: _queue_empty(world))
                await eventually(lambda: _sent(receiver, 1))
            finally:
                stop.set()
                await task
            assert [r.headers["x-outpost-event-id"] for r in receiver.requests] == [str(sent.id)]


async def test_raw_units_set_the_tenant_and_roll_back_unless_committed(world: World) -> None:
    """The worker's transactions without SQLAlchemy (``delivery_store.raw_unit``): the
    tenant is set for the transaction only (RLS hides other tenants' rows, and the pooled
    connection keeps no tenant after it), nothing is kept without ``commit()`` or after an
    error, and the connection goes back to the pool out of any transaction."""
    engine = world.uow.engine
    org, other = world.ctx.org_id, uuid.uuid4()
    row = "INSERT INTO delivery_queue (delivery_id, tenant_id, channel_id, due_at)"
    kept, dropped, failed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with delivery_store.raw_unit(engine, org) as unit:
        assert await unit.db.fetchval("SELECT current_setting('outpost.org_id')") == str(org)
        await unit.db.execute(row + " VALUES ($1, $2, $1, now())", kept, org)
        await unit.commit()
    async with delivery_store.raw_unit(engine, org) as unit:
        await unit.db.execute(row + " VALUES ($1, $2, $1, now())", dropped, org)

    async def fail() -> None:
        async with delivery_store.raw_unit(engine, org) as unit:
            await unit.db.execute(row + " VALUES ($1, $2, $1, now())", failed, org)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail()
    async with delivery_store.raw_unit(engine, None) as unit:
        assert not await unit.db.fetchval("SELECT current_setting('outpost.org_id', true) <> ''")
        ids = {r[0] for r in await unit.db.fetch("SELECT delivery_id FROM delivery_queue")}
    assert kept in ids and not {dropped, failed} & ids
    channel = await world.webhook(world.deps(), "http://127.0.0.1:9/hook")
    async with delivery_store.raw_unit(engine, other) as unit:
        assert await delivery_store.load_due(unit.db, [kept]) == []
        assert await unit.db.fetchval("SELECT count(*) FROM notification_channels") == 0
    async with delivery_store.raw_unit(engine, org) as unit:
        assert await unit.db.fetchval("SELECT count(*) FROM notification_channels") == 1
    assert channel.id is not None
    for _ in range(8):  # more than the pool: every connection came back usable
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1


async def _queue_empty(world: World) -> bool:
    async with world.uow(None) as u:
        return bool((await u.execute("SELECT count(*) = 0 FROM delivery_queue")).scalar_one())


async def _sent(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def test_nothing_secret_in_logs_while_delivering(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    deps = world.deps()
    world.start(deps)
    with Receiver(statuses=[500]) as receiver:
        channel = await world.webhook(deps, receiver.url())
        await world.alert(deps, channel.id)
        await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
        await eventually(lambda: _done(world, 2))
    assert any("dead-lettered" in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    async with world.uow(world.ctx.org_id) as uow:
        stored = [
            r.txt
            for r in await uow.execute(
                "SELECT data::text AS txt FROM events UNION ALL SELECT encode(body, 'escape')"
                " FROM deliveries UNION ALL SELECT coalesce(error, '') FROM delivery_attempts"
            )
        ]
    assert stored and all(SECRET not in t for t in stored)


async def test_a_slow_receiver_times_out_and_a_foreign_key_opens_nothing(world: World) -> None:
    deps = world.deps()
    with Receiver(delay=4.0) as slow:  # far beyond the 0.3 s time-out, even on a loaded machine
        channel = await world.webhook(deps, slow.url())
        impatient = app.NotificationDeps(
            uow=world.uow,
            vault=deps.vault,
            webhooks=WebhookSender(world.resolver, ssrf.Policy(allow_loopback=True), 0.3),
        )
        result = await app.try_channel(
            impatient, world.ctx, api.TestNotificationChannel(id=channel.id)
        )
        assert result.outcome is api.DeliveryOutcome.DEAD
        assert result.error == "timed out after 0.3 s" and result.latency_ms < 3000
        other_key = app.NotificationDeps(
            uow=world.uow,
            vault=SecretVault(Fernet.generate_key().decode()),
            webhooks=deps.webhooks,
        )
        result = await app.try_channel(
            other_key, world.ctx, api.TestNotificationChannel(id=channel.id)
        )
        assert (result.outcome, result.error) == (
            api.DeliveryOutcome.DEAD,
            "no configured key opens the secret",
        )
    assert len(slow.requests) == 1  # the second never left


async def test_https_to_the_checked_address_verifies_the_name(world: World) -> None:
    """The request goes to the checked IP, while TLS's server name and the certificate check
    use the URL's host: a certificate for the name verifies; one for another name does not."""
    server, client = tls_pair("pinned.example")
    deps = world.deps()
    tls_deps = app.NotificationDeps(
        uow=world.uow,
        vault=deps.vault,
        webhooks=WebhookSender(
            world.resolver, ssrf.Policy(allow_loopback=True), 2.0, verify=client
        ),
    )
    receiver = Receiver()
    receiver.serve_tls(server)
    with receiver:
        channel = await world.webhook(tls_deps, receiver.url(host="pinned.example"))
        ok = await app.try_channel(tls_deps, world.ctx, api.TestNotificationChannel(id=channel.id))
        assert (ok.outcome, ok.status_code) == (api.DeliveryOutcome.SUCCEEDED, 200), ok.error
        [got] = receiver.requests
        assert got.headers["host"] == f"pinned.example:{receiver.port}"
        assert deliveries.verify(SECRET, got.body, got.headers["x-outpost-signature"])
        # Another name resolving to the same address: its certificate check fails (the
        # receiver keeps connections alive, yet the one verified for the first name is not
        # reused for the second).
        world.resolver.table["other.example"] = ["127.0.0.1"]
        other = await world.webhook(tls_deps, receiver.url(host="other.example"))
        bad = await app.try_channel(tls_deps, world.ctx, api.TestNotificationChannel(id=other.id))
    assert bad.outcome is api.DeliveryOutcome.DEAD and bad.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in (bad.error or "") or "certificate" in (bad.error or "")
    assert len(receiver.requests) == 1


async def test_email_over_starttls(world: World) -> None:
    server, client = tls_pair("127.0.0.1")
    with SmtpServer(tls=server) as smtp:
        plain = world.deps(smtp_port=smtp.port)
        config = SmtpConfig(host="127.0.0.1", port=smtp.port, tls="starttls", tls_context=client)
        deps = app.NotificationDeps(uow=world.uow, email=EmailSender(config))
        channel = await app.create_channel(
            deps,
            world.ctx,
            api.CreateNotificationChannel(
                type=api.ChannelType.EMAIL, name="m", addresses=["ops@example.com"]
            ),
        )
        ok = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
        # Without STARTTLS the server refuses to take the message.
        refused = await app.try_channel(
            plain, world.ctx, api.TestNotificationChannel(id=channel.id)
        )
    assert ok.outcome is api.DeliveryOutcome.SUCCEEDED, ok.error
    assert refused.outcome is api.DeliveryOutcome.DEAD
    [(_, rcpts, msg)] = smtp.mailbox.messages
    assert rcpts == ["ops@example.com"] and msg["Subject"] == "[Outpost] Test notification"


async def test_an_alerts_events_reach_a_channel_in_order(world: World) -> None:
    """The opening fails once; the resolution, made meanwhile, waits for it."""
    deps = world.deps()
    world.start(deps)
    with Receiver(statuses=[500, 200]) as receiver:
        channel = await world.webhook(deps, receiver.url())
        opened = await world.alert(deps, channel.id)
        async with world.uow(world.ctx.org_id) as uow:
            [resolved] = await uow.events.append(
                org_id=world.ctx.org_id,
                stream_id=opened.stream_id,
                stream_type="alert",
                expected_version=1,
                events=[alert_api.AlertResolved(resolution=alert_api.Resolution.CLEARED)],
            )
            await uow.commit()
        await world.handle(deps, resolved)
        await eventually(lambda: _done(world, 2))
    types = [r.headers["x-outpost-event-type"] for r in receiver.requests]
    assert types == [
        "alerting.AlertOpened.v1",
        "alerting.AlertOpened.v1",
        "alerting.AlertResolved.v1",
    ]
    log = await world.log(alert_id=opened.stream_id)
    assert [(a.event_type.split(".")[1], a.outcome.value) for a in log] == [
        ("AlertOpened", "FAILED"),
        ("AlertOpened", "SUCCEEDED"),
        ("AlertResolved", "SUCCEEDED"),
    ]


async def test_channels_of_a_rule_known_only_from_its_events(world: World) -> None:
    """A rule with no read-model row (deleted since, or not projected here) still names its
    channels through its newest event."""
    deps = world.deps()
    with Receiver() as receiver:
        channel = await world.webhook(deps, receiver.url())
        rule_id = uuid.uuid4()
        scope = alert_api.RuleScope(type=alert_api.ScopeType.ORGANIZATION)
        condition = alert_api.Condition(op=">", threshold=40)
        async with world.uow(world.ctx.org_id) as uow:
            await uow.events.append(
                org_id=world.ctx.org_id,
                stream_id=rule_id,
                stream_type="alert_rule",
                expected_version=0,
                events=[
                    alert_api.AlertRuleCreated(
                        name="r",
                        scope=scope,
                        sensor="temperature",
                        condition=condition,
                        severity=alert_api.Severity.MAJOR,
                    ),
                    alert_api.AlertRuleUpdated(
                        changed=["channelIds"],
                        name="r",
                        scope=scope,
                        sensor="temperature",
                        condition=condition,
                        severity=alert_api.Severity.MAJOR,
                        channel_ids=[channel.id],
                    ),
                ],
            )
            await uow.commit()
        envelope = await open_alert(world.uow, world.ctx.org_id, rule_id)
        await world.handle(deps, envelope)
        world.start(deps)
        await eventually(lambda: _done(world, 1))
    [got] = receiver.requests
    assert got.headers["x-outpost-event-id"] == str(envelope.id)


async def test_the_next_checked_address_when_one_refuses_the_connection(world: World) -> None:
    deps = world.deps()
    with Receiver() as receiver:
        # Nothing listens on 127.0.0.2 at the receiver's port: refused, then 127.0.0.1.
        world.resolver.table["two.example"] = ["127.0.0.2", "127.0.0.1"]
        channel = await world.webhook(deps, receiver.url(host="two.example"))
        ok = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
        world.resolver.table["two.example"] = ["127.0.0.2"]
        bad = await app.try_channel(deps, world.ctx, api.TestNotificationChannel(id=channel.id))
    assert ok.outcome is api.DeliveryOutcome.SUCCEEDED, ok.error
    assert bad.outcome is api.DeliveryOutcome.DEAD and "ConnectError" in (bad.error or "")
    assert len(receiver.requests) == 1


async def _organization(world: World, org: uuid.UUID, version: int, data: Any) -> None:
    """What the consumer of identity's organization events does with one."""
    await record_organization_event(world.uow, org, version, data)


async def test_a_suspended_organizations_deliveries_are_held_until_it_is_lifted(
    world: World,
) -> None:
    """docs/design/reliability.md ``suspension`` (decision 76): while its organization is suspended
    a delivery stays in the queue, neither claimed nor counted as left behind, while another
    organization's is claimed; once lifted it is claimed and sent."""
    deps = world.deps()
    other = World(world.uow, world.resolver, world.reads)
    await _organization(world, world.ctx.org_id, 2, OrganizationSuspended(reason="unpaid"))
    with Receiver() as receiver:
        held = await world.alert(deps, (await world.webhook(deps, receiver.url())).id)
        sent = await other.alert(deps, (await other.webhook(deps, receiver.url())).id)
        claimed = await app.claim_due(deps, 10)
        assert [d.delivery.event_id for d in claimed.due] == [sent.id]
        assert claimed.more is False  # nothing due is waiting: the held one is not due
        await app.attempt(deps, claimed.due[0])
        assert (await app.claim_due(deps, 10)).taken == 0
        [row] = await world.deliveries()
        assert (row.status, row.attempts) == ("PENDING", 0)

        await _organization(world, world.ctx.org_id, 3, OrganizationReinstated())
        world.start(deps)
        await eventually(lambda: _done(world, 1))
    assert [r.headers["x-outpost-event-id"] for r in receiver.requests] == [
        str(sent.id),
        str(held.id),
    ]
