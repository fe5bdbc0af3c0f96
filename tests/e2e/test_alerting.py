"""Alerting through the gateway and the broker (decision 63): a rule on a device, readings
through the HTTP batch route (into TELEMETRY like a device's), the alert opened with why it
fired, on the ALERTING stream for subscribers, acknowledged and resolved by hand with who
and a comment, the timeline; refusals (validation, scopes, another organization)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.js.api import DeliverPolicy

from outpost_contracts import subjects
from outpost_devkit.dev.stack import DevStack
from tests.e2e._poll import eventually
from tests.e2e._webhooks import Receiver

SECRET = "e2e-alerting-webhook-secret-42"

pytestmark = pytest.mark.e2e

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ts(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def send(http: httpx.Client, key: str, device: str, *values: tuple[int, float]) -> None:
    body = {
        "readings": [
            {"deviceId": device, "sensor": "temp", "ts": ts(s), "value": v} for s, v in values
        ]
    }
    sent = http.post("/api/v1/readings/batch", json=body, headers=bearer(key))
    assert sent.status_code == 202 and sent.json()["rejected"] == [], sent.text


def alerts_of(http: httpx.Client, key: str, rule_id: str) -> list[dict[str, Any]]:
    got = http.get(
        "/api/v1/alerts", params={"$filter": f"ruleId eq {rule_id}"}, headers=bearer(key)
    )
    assert got.status_code == 200, got.text
    return list(got.json()["data"])


async def _alert_events(stack: DevStack, org_id: str, seconds: float) -> list[dict[str, Any]]:
    """What an external subscriber of the ALERTING stream sees for the organization."""
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subjects.service_events("alerting"),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                if seen:
                    break
                continue
            envelope = msgspec.json.decode(msg.data)
            if envelope["orgId"] == org_id:
                seen.append(envelope)
        return seen
    finally:
        await nc.close()


def test_an_alert_fires_is_acknowledged_and_resolved_with_its_story(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    org = tenants.org("alerting")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    device = http.post("/api/v1/devices", json={"name": "boiler"}, headers=bearer(key)).json()
    receiver = Receiver()
    channel = http.post(
        "/api/v1/notification-channels",
        json={"type": "WEBHOOK", "name": "ops", "url": receiver.url, "secret": SECRET},
        headers=bearer(key),
    )
    assert channel.status_code == 201, channel.text
    rule = http.post(
        "/api/v1/alert-rules",
        json={
            "name": "boiler too hot",
            "scope": {"type": "DEVICE", "id": device["id"]},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 90},
            "hysteresis": 5,
            "severity": "CRITICAL",
            "channelIds": [channel.json()["id"]],
        },
        headers=bearer(key),
    )
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    assert rule.json()["version"] == 1

    send(http, key, device["id"], (0, 70), (1, 95.5), (2, 99))
    [alert] = eventually(lambda: alerts_of(http, key, rule_id))
    assert (alert["status"], alert["severity"], alert["deviceId"]) == (
        "OPEN",
        "CRITICAL",
        device["id"],
    )
    assert alert["trigger"]["value"] == 95.5 and alert["trigger"]["ts"] == ts(1)
    assert alert["trigger"]["condition"] == "temp > 90" and alert["ruleVersion"] == 1
    # The rule's webhook receives the alert event, signed with the channel's secret.
    [(headers, body)] = eventually(lambda: receiver.received)
    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-outpost-signature"], want)
    event = msgspec.json.decode(body)
    assert event["data"]["type"] == "alerting.AlertOpened.v1"
    assert (event["streamId"], headers["x-outpost-event-id"]) == (alert["id"], event["id"])

    one = http.get(f"/api/v1/alerts/{alert['id']}", headers=bearer(key))
    assert one.status_code == 200 and one.headers["etag"] == '"1"'
    stale = http.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge", headers={**bearer(key), "If-Match": '"7"'}
    )
    assert stale.status_code == 412, stale.text
    acked = http.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge",
        json={"comment": "on my way"},
        headers=bearer(key),
    )
    assert acked.status_code == 200, acked.text
    assert (acked.json()["status"], acked.json()["acknowledgeComment"]) == (
        "ACKNOWLEDGED",
        "on my way",
    )
    assert acked.json()["acknowledgedBy"] is not None
    again = http.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=bearer(key))
    assert again.status_code == 409 and again.json()["type"] == "conflict"

    # Within the hysteresis: still ACKNOWLEDGED; back by the margin: resolved by itself.
    send(http, key, device["id"], (3, 87))
    time.sleep(1.5)
    [still] = alerts_of(http, key, rule_id)
    assert still["status"] == "ACKNOWLEDGED"
    send(http, key, device["id"], (4, 84))
    [cleared] = eventually(
        lambda: [a for a in alerts_of(http, key, rule_id) if a["status"] == "RESOLVED"]
    )
    assert (cleared["resolution"], cleared["clearValue"]) == ("CLEARED", 84)

    # A second alert, resolved by hand: no new one while it stays hot.
    send(http, key, device["id"], (5, 96))
    second = eventually(lambda: [a for a in alerts_of(http, key, rule_id) if a["status"] == "OPEN"])
    assert len(second) == 1
    done = http.post(
        f"/api/v1/alerts/{second[0]['id']}/resolve",
        json={"comment": "valve replaced"},
        headers=bearer(key),
    )
    assert done.status_code == 200 and done.json()["resolution"] == "MANUAL"
    send(http, key, device["id"], (6, 97))
    time.sleep(1.5)
    assert [a["status"] for a in alerts_of(http, key, rule_id)] == ["RESOLVED", "RESOLVED"]

    events = http.get("/api/v1/events", params={"limit": "100"}, headers=bearer(key))
    assert events.status_code == 200, events.text
    types = [e["type"].split(".")[1] for e in events.json()["data"] if e["alertId"]]
    assert types == [
        "AlertOpened",
        "AlertAcknowledged",
        "AlertResolved",
        "AlertOpened",
        "AlertResolved",
    ]
    published = asyncio.run(_alert_events(stack, org["id"], 10))
    kinds = [e["data"]["type"].split(".")[1] for e in published]
    assert kinds.count("AlertOpened") == 2 and kinds.count("AlertResolved") == 2
    assert "AlertRuleCreated" in kinds
    # Every transition reached the webhook, once each.
    delivered = eventually(lambda: len(receiver.received) >= 5 and receiver.received)
    types = [msgspec.json.decode(b)["data"]["type"].split(".")[1] for _, b in delivered]
    assert sorted(types) == sorted(
        ["AlertOpened", "AlertAcknowledged", "AlertResolved", "AlertOpened", "AlertResolved"]
    )
    receiver.close()


def test_rules_refuse_bad_input_and_other_callers(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org = tenants.org("alerting-refusals")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    reader = tenants.key(org["id"], ["alert-rules:read", "alerts:read", "devices:read"])["key"]
    base = {
        "name": "r",
        "scope": {"type": "ORGANIZATION"},
        "sensor": "temp",
        "condition": {"op": ">", "threshold": 1},
        "severity": "MINOR",
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"condition": {"op": ">"}}, "condition.threshold"),
        ({"condition": {"op": "outside", "low": 5, "high": 1}}, "condition.high"),
        ({"condition": {"op": "nodata", "seconds": 1}}, "condition.seconds"),
        ({"scope": {"type": "GROUP"}}, "scope.id"),
        ({"scope": {"type": "SITE", "id": "0190f5c2-0000-7000-8000-000000000000"}}, "scope.id"),
        ({"severity": "LOUD"}, "severity"),
        ({"forSeconds": -1}, "forSeconds"),
        ({"owner": "me"}, "owner"),
    ]
    for bad, field in cases:
        made = http.post("/api/v1/alert-rules", json={**base, **bad}, headers=bearer(key))
        assert made.status_code == 400, (bad, made.text)
        assert made.json()["type"] == "validation_error", made.text
        assert field in [f["name"] for f in made.json()["fields"]] or field in made.text, made.text
    denied = http.post("/api/v1/alert-rules", json=base, headers=bearer(reader))
    assert denied.status_code == 403
    rule = http.post("/api/v1/alert-rules", json=base, headers=bearer(key)).json()
    assert http.get(f"/api/v1/alert-rules/{rule['id']}", headers=bearer(reader)).status_code == 200
    changed = http.patch(
        f"/api/v1/alert-rules/{rule['id']}",
        json={"enabled": False},
        headers={**bearer(key), "If-Match": '"1"'},
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    other = tenants.org("alerting-other")
    other_key = tenants.key(other["id"])["key"]
    assert (
        http.get(f"/api/v1/alert-rules/{rule['id']}", headers=bearer(other_key)).status_code == 404
    )
    assert (
        http.delete(f"/api/v1/alert-rules/{rule['id']}", headers=bearer(other_key)).status_code
        == 404
    )
    assert http.get("/api/v1/alert-rules", headers=bearer(other_key)).json()["data"] == []
    gone = http.delete(f"/api/v1/alert-rules/{rule['id']}", headers=bearer(key))
    assert gone.status_code == 204
    assert http.get(f"/api/v1/alert-rules/{rule['id']}", headers=bearer(key)).status_code == 404
