"""Notification channels through the running gateway (docs/api.md, "Notification channels";
decision 64): a webhook channel pointing at a receiver on loopback (``make dev`` allows
loopback), ``/test`` reaching it with a signature the receiver verifies, the delivery log,
the collection conventions, ETag and If-Match, other organizations, and the SSRF guard
refusing private, link-local and IPv6-mapped addresses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
import pytest

from outpost_contracts import alerting, subjects
from outpost_contracts.envelope import EventEnvelope
from outpost_devkit.dev.stack import DevStack
from outpost_kit.db.engine import plain_dsn
from tests.e2e._webhooks import Receiver

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-0123456789"
PATH = "/api/v1/notification-channels"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(resp: httpx.Response, status: int, type_: str, field: str | None = None) -> Any:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == type_, body
    if field is not None:
        assert field in [f["name"] for f in body["fields"]], body
    return body


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def test_a_webhook_channel_end_to_end(tenants: Any, http: httpx.Client, receiver: Receiver) -> None:
    org = tenants.org("notify")
    auth = bearer(tenants.key(org["id"])["key"])

    made = http.post(
        PATH,
        json={"type": "WEBHOOK", "name": "ops", "url": receiver.url, "secret": SECRET},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    channel = made.json()
    assert channel["hasSecret"] is True and channel["version"] == 1 and channel["enabled"]
    assert SECRET not in made.text

    got = http.get(f"{PATH}/{channel['id']}", headers=auth)
    assert got.status_code == 200 and got.headers["etag"] == '"1"' and SECRET not in got.text

    tested = http.post(f"{PATH}/{channel['id']}/test", headers=auth)
    assert tested.status_code == 200, tested.text
    result = tested.json()
    assert result["outcome"] == "SUCCEEDED" and result["statusCode"] == 204
    assert result["latencyMs"] > 0
    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-outpost-signature"], expected)
    assert headers["x-outpost-event-id"] == result["eventId"]
    envelope = json.loads(body)
    assert envelope["id"] == result["eventId"] and envelope["orgId"] == org["id"]
    assert envelope["data"]["type"] == "alerting.NotificationTest.v1"
    assert envelope["data"]["channelId"] == channel["id"]

    log = http.get(
        f"{PATH}/{channel['id']}/deliveries", params={"include": "totalCount"}, headers=auth
    )
    assert log.status_code == 200, log.text
    page = log.json()
    assert page["object"] == "list" and page["totalCount"] == 1
    [entry] = page["data"]
    assert (entry["kind"], entry["outcome"], entry["statusCode"], entry["attempt"]) == (
        "TEST",
        "SUCCEEDED",
        204,
        1,
    )
    assert entry["eventId"] == result["eventId"]
    dead = http.get(f"{PATH}/{channel['id']}/deliveries?outcome=DEAD", headers=auth)
    assert dead.json()["data"] == []

    # Versions: a stale If-Match changes nothing; the right one does.
    _error(
        http.patch(
            f"{PATH}/{channel['id']}", json={"name": "x"}, headers={**auth, "If-Match": '"9"'}
        ),
        412,
        "precondition_failed",
    )
    renamed = http.patch(
        f"{PATH}/{channel['id']}",
        json={"name": "ops-2", "secret": "another-secret-0123456789"},
        headers={**auth, "If-Match": '"1"'},
    )
    assert renamed.status_code == 200 and renamed.headers["etag"] == '"2"', renamed.text
    assert renamed.json()["name"] == "ops-2" and "another-secret" not in renamed.text
    # The new secret signs from now on.
    http.post(f"{PATH}/{channel['id']}/test", headers=auth)
    headers, body = receiver.received[-1]
    resigned = hmac.new(b"another-secret-0123456789", body, hashlib.sha256).hexdigest()
    assert headers["x-outpost-signature"] == f"sha256={resigned}"

    # The audit log has the changes, and no secret.
    audit = http.get("/api/v1/audit-log", params={"streamId": channel["id"]}, headers=auth)
    assert audit.status_code == 200 and len(audit.json()["data"]) == 2, audit.text
    assert SECRET not in audit.text and "another-secret" not in audit.text

    deleted = http.delete(f"{PATH}/{channel['id']}", headers={**auth, "If-Match": '"2"'})
    assert deleted.status_code == 204, deleted.text
    _error(http.get(f"{PATH}/{channel['id']}", headers=auth), 404, "not_found")
    _error(http.post(f"{PATH}/{channel['id']}/test", headers=auth), 404, "not_found")


def test_collections_other_organizations_and_bad_input(tenants: Any, http: httpx.Client) -> None:
    org, other = tenants.org("notify-a"), tenants.org("notify-b")
    auth = bearer(tenants.key(org["id"])["key"])
    theirs = bearer(tenants.key(other["id"])["key"])

    ids = []
    for i in range(3):
        made = http.post(
            PATH,
            json={"type": "EMAIL", "name": f"mail-{i}", "addresses": [f"ops{i}@example.com"]},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    page = http.get(PATH, params={"limit": 2, "include": "totalCount"}, headers=auth).json()
    assert (
        [c["id"] for c in page["data"]] == ids[:2] and page["hasMore"] and page["totalCount"] == 3
    )
    rest = http.get(PATH, params={"after": ids[1]}, headers=auth).json()
    assert [c["id"] for c in rest["data"]] == ids[2:]
    odata = http.get(
        PATH,
        params={"$filter": "name eq 'mail-1' and type eq 'EMAIL'", "$select": "name"},
        headers=auth,
    ).json()
    assert odata["data"] == [{"id": ids[1], "name": "mail-1"}]
    _error(http.get(PATH, params={"secret": "x"}, headers=auth), 400, "validation_error")

    # Another organization sees none of it.
    assert http.get(PATH, headers=theirs).json()["data"] == []
    for method, path in (
        ("GET", f"{PATH}/{ids[0]}"),
        ("PATCH", f"{PATH}/{ids[0]}"),
        ("DELETE", f"{PATH}/{ids[0]}"),
        ("POST", f"{PATH}/{ids[0]}/test"),
        ("GET", f"{PATH}/{ids[0]}/deliveries"),
        ("GET", f"/api/v1/alerts/{uuid.uuid4()}/deliveries"),
    ):
        body = {"name": "x"} if method == "PATCH" else None
        _error(http.request(method, path, json=body, headers=theirs), 404, "not_found")

    # Bad input is refused and changes nothing.
    for body, field in (
        ({"type": "EMAIL", "name": "m", "addresses": ["a@example.com"], "url": "http://x"}, "url"),
        ({"type": "WEBHOOK", "name": "w", "url": "https://example.com/x"}, "secret"),
        ({"type": "WEBHOOK", "name": "w", "url": "https://example.com", "secret": "short"}, None),
        ({"type": "EMAIL", "name": "m", "addresses": ["a@example.com"], "orgId": "x"}, None),
    ):
        _error(http.post(PATH, json=body, headers=auth), 400, "validation_error", field)
    assert http.get(PATH, params={"include": "totalCount"}, headers=auth).json()["totalCount"] == 3


REFUSED = (
    "http://10.0.0.1/hook",
    "http://192.168.1.20:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00::1]/hook",
    "http://2852039166/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://[ff02::1]/",
    "gopher://127.0.0.1:6379/",
)


def test_the_ssrf_guard_refuses_private_addresses(tenants: Any, http: httpx.Client) -> None:
    org = tenants.org("ssrf")
    auth = bearer(tenants.key(org["id"])["key"])
    for url in REFUSED:
        resp = http.post(
            PATH, json={"type": "WEBHOOK", "name": "w", "url": url, "secret": SECRET}, headers=auth
        )
        _error(resp, 400, "validation_error", "url")
    assert http.get(PATH, headers=auth).json()["data"] == []


def test_an_alert_event_is_delivered_by_the_running_service(
    stack: DevStack, tenants: Any, http: httpx.Client, receiver: Receiver
) -> None:
    """The running alerting service's consumer and worker: an ``AlertOpened`` on the
    ALERTING stream reaches the channel of its rule, signed, and is in the alert's delivery
    log. Until the rules slice serves rules and evaluation, the rule and the alert are
    planted in alerting's tables as that slice leaves them, and the event is published as
    its outbox relay would publish it."""
    org = tenants.org("notify-chain")
    org_id = uuid.UUID(org["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    made = http.post(
        PATH,
        json={"type": "WEBHOOK", "name": "ops", "url": receiver.url, "secret": SECRET},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    channel_id = uuid.UUID(made.json()["id"])
    rule_id, alert_id, device_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    trigger = alerting.AlertTrigger(
        value=41.5, ts=now, since=now, condition="temperature > 40", rule_version=1
    )
    dsn = stack.pg.admin_dsn if stack.pg is not None else os.environ["DATABASE_URL"]

    async def plant() -> None:
        conn = await asyncpg.connect(plain_dsn(dsn))
        try:
            await conn.execute(
                "INSERT INTO alerting.alert_rules (org_id, id, version, name, scope_type, sensor,"
                " condition, severity, for_seconds, enabled, channel_ids, created_at,"
                " updated_at) VALUES ($1, $2, 1, 'too hot', 'ORGANIZATION', 'temperature',"
                ' \'{"op": ">", "threshold": 40}\', \'CRITICAL\', 0, true, $3, $4, $4)',
                org_id,
                rule_id,
                [channel_id],
                now,
            )
            await conn.execute(
                "INSERT INTO alerting.alerts (org_id, id, version, rule_id, rule_version,"
                " device_id, sensor, status, severity, opened_at, trigger, updated_at) VALUES"
                " ($1, $2, 1, $3, 1, $4, 'temperature', 'OPEN', 'CRITICAL', $5, $6, $5)",
                org_id,
                alert_id,
                rule_id,
                device_id,
                now,
                msgspec.json.encode(trigger).decode(),
            )
        finally:
            await conn.close()

    envelope = EventEnvelope(
        id=uuid.uuid4(),
        org_id=org_id,
        stream_id=alert_id,
        stream_type="alert",
        version=1,
        occurred_at=now,
        data=alerting.AlertOpened(
            rule_id=rule_id,
            rule_version=1,
            device_id=device_id,
            sensor="temperature",
            severity=alerting.Severity.CRITICAL,
            trigger=trigger,
        ),
    )

    async def publish() -> None:
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        try:
            await nc.jetstream().publish(
                subjects.event(envelope.type, org_id),
                msgspec.json.encode(envelope),
                headers={"Nats-Msg-Id": str(envelope.id)},
            )
        finally:
            await nc.close()

    asyncio.run(plant())
    asyncio.run(publish())
    deadline = time.monotonic() + 30
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-outpost-signature"], expected)
    assert headers["x-outpost-event-id"] == str(envelope.id)
    assert json.loads(body)["data"]["trigger"]["value"] == 41.5
    log = http.get(f"/api/v1/alerts/{alert_id}/deliveries", headers=auth)
    assert log.status_code == 200, log.text
    [entry] = log.json()["data"]
    assert (entry["kind"], entry["outcome"], entry["statusCode"]) == ("ALERT", "SUCCEEDED", 204)
    assert entry["channelId"] == str(channel_id) and entry["eventId"] == str(envelope.id)
