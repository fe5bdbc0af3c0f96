"""The event streams' AsyncAPI document through the running platform (issue 23, decision 95):
served by the gateway without a credential, valid by the official AsyncAPI 3.0.0 JSON
Schema, and naming every subject an organization's activity published, each message valid
against its payload schema."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.js.api import DeliverPolicy

from outpost_contracts import asyncapi, subjects
from outpost_devkit import asyncapi as validator
from outpost_devkit.dev.stack import DevStack

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_document_is_served_and_valid(http: httpx.Client, platform: dict[str, Any]) -> None:
    anonymous = http.get("/api/asyncapi")
    assert anonymous.status_code == 200, anonymous.text
    doc = anonymous.json()
    assert doc["asyncapi"] == "3.0.0"
    assert validator.errors(doc) == []
    assert validator.unresolved_refs(doc) == []
    assert doc == asyncapi.document()
    with_key = http.get("/api/asyncapi", headers=bearer(platform["organization"]["apiKey"]))
    assert with_key.status_code == 200 and with_key.json() == doc


async def _published(
    stack: DevStack, filters: list[str], want: set[str], seconds: float = 30
) -> list[tuple[str, Any]]:
    """(subject, decoded payload) of every message stored under ``filters``, read from the
    start by ordered consumers, until each tag of ``want`` (an event's wire tag, or
    ``telemetry``) was seen or ``seconds`` passed."""
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        js = nc.jetstream()
        subs = [
            await js.subscribe(f, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
            for f in filters
        ]
        seen: list[tuple[str, Any]] = []
        tags: set[str] = set()
        deadline = time.monotonic() + seconds
        while not want <= tags and time.monotonic() < deadline:
            for sub in subs:
                try:
                    msg = await sub.next_msg(timeout=0.2)
                except nats.errors.TimeoutError:
                    continue
                payload = msgspec.json.decode(msg.data)
                seen.append((msg.subject, payload))
                data = payload.get("data") if isinstance(payload, dict) else None
                tags.add(data["type"] if isinstance(data, dict) else "telemetry")
        return seen
    finally:
        await nc.close()


def test_every_subject_an_organization_published_is_in_the_document(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    """What an integration of the organization would receive (its API key, a device, an
    alert rule, readings): each subject is a channel of the document and each payload is
    valid against that channel's message."""
    doc = http.get("/api/asyncapi").json()
    org = tenants.org("asyncapi")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    device = http.post("/api/v1/devices", json={"name": "pump"}, headers=bearer(key))
    assert device.status_code == 201, device.text
    device_id = device.json()["id"]
    rule = http.post(
        "/api/v1/alert-rules",
        json={
            "name": "pump too hot",
            "scope": {"type": "DEVICE", "id": device_id},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 90},
            "severity": "WARNING",
        },
        headers=bearer(key),
    )
    assert rule.status_code == 201, rule.text
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    sent = http.post(
        "/api/v1/readings/batch",
        json={"readings": [{"deviceId": device_id, "sensor": "temp", "ts": now, "value": 20.5}]},
        headers=bearer(key),
    )
    assert sent.status_code == 202 and sent.json()["rejected"] == [], sent.text

    want = {
        "identity.ApiKeyCreated.v1",
        "devices.DeviceRegistered.v1",
        "alerting.AlertRuleCreated.v1",
        "telemetry",
    }
    filters = [
        subjects.organization_events(service, org["id"])
        for service in ("identity", "devices", "alerting")
    ] + [subjects.organization_telemetry(org["id"])]
    published = asyncio.run(_published(stack, filters, want))

    received = set()
    for subject, payload in published:
        channel = validator.channel_of(doc, subject)
        assert channel is not None, f"{subject} is in no channel of the document"
        [message] = doc["channels"][channel]["messages"]
        assert validator.payload_errors(doc, message, payload) == [], subject
        received.add(message)
    assert want <= received, f"never published: {want - received}"
