"""Observability of the running platform (decision 66), from the outside:

- every process exports its spans over OTLP/HTTP to a receiver in this test run
  (``conftest.otlp``), and one request is one trace from the gateway through the owning
  service's responder and its event (via the outbox relay) into other services' consumers;
- every process serves Prometheus metrics, and the named series exist and move;
- after a story that creates every kind of secret, no process's log holds any of them (nor
  the platform's own database, broker and encryption secrets).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from outpost_contracts import subjects
from outpost_devkit.dev.stack import DevStack
from outpost_devkit.testing.otlp import OtlpReceiver, ReceivedSpan
from outpost_kit.material import SECRETS_NAME
from tests.e2e._devices import provision
from tests.e2e._poll import eventually
from tests.e2e._webhooks import Receiver

pytestmark = pytest.mark.e2e

DEVICE_CREATED = "devices.DeviceRegistered.v1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _ts(seconds_ago: int) -> str:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds_ago)
    return when.isoformat().replace("+00:00", "Z")


# --- traces --------------------------------------------------------------------------


def _request_trace(spans: list[ReceivedSpan], request_id: str) -> str | None:
    for s in spans:
        if (
            s.service == "outpost-gateway"
            and s.kind == "SERVER"
            and s.attributes.get("outpost.request_id") == request_id
        ):
            return s.trace_id
    return None


def _in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def _one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name.startswith(name)]
    assert len(found) == 1, (service, name, sorted(f"{s.service}: {s.name}" for s in spans))
    return found[0]


def test_one_request_is_one_trace_from_the_gateway_into_other_services_consumers(
    http: httpx.Client, tenants: Any, otlp: OtlpReceiver
) -> None:
    org = tenants.org("traced")
    key = tenants.key(org["id"])["key"]
    made = http.post("/api/v1/devices", json={"name": "traced"}, headers=bearer(key))
    assert made.status_code == 201, made.text
    request_id = made.headers["x-request-id"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        trace_id = _request_trace(spans, request_id)
        if trace_id is None:
            return False
        names = {(s.service, s.name) for s in _in_trace(spans, trace_id)}
        # Every process exports in its own batches: the devices service's responder span
        # ends after its reply, so it can reach the receiver after the consumers' spans.
        return {
            ("outpost-readings", f"consume readings-devices {DEVICE_CREATED}"),
            ("outpost-alerting", f"consume alerting-devices {DEVICE_CREATED}"),
            ("outpost-devices", "publish devices"),
        } <= names and any(
            service == "outpost-devices" and name.startswith("handle devices.")
            for service, name in names
        )

    spans = otlp.wait_for(complete)
    trace_id = _request_trace(spans, request_id)
    assert trace_id is not None
    ours = _in_trace(spans, trace_id)

    server = _one(ours, "outpost-gateway", "POST /api/v1/devices")
    assert server.parent_span_id == ""  # the trace starts at the gateway
    assert server.attributes["http.route"] == "/api/v1/devices"
    assert server.attributes["http.response.status_code"] == 201
    rpc = _one(ours, "outpost-gateway", "rpc devices.")
    assert rpc.kind == "CLIENT" and rpc.parent_span_id == server.span_id
    handle = _one(ours, "outpost-devices", "handle devices.")
    assert handle.kind == "SERVER" and handle.parent_span_id == rpc.span_id
    assert handle.attributes["outpost.request_id"] == request_id
    # The event's outbox row carried the request's context to the relay ...
    publishes = [
        s
        for s in ours
        if s.service == "outpost-devices"
        and s.name == "publish devices"
        and s.kind == "PRODUCER"
        and DEVICE_CREATED.split(".")[1] in str(s.attributes.get("messaging.destination.name"))
    ]
    assert len(publishes) == 1, [s.name for s in ours]
    publish = publishes[0]
    assert publish.parent_span_id == handle.span_id
    # ... and each consumer in another service continues it and links to the publish.
    for service, consumer in (
        ("outpost-readings", "readings-devices"),
        ("outpost-alerting", "alerting-devices"),
    ):
        consume = _one(ours, service, f"consume {consumer} {DEVICE_CREATED}")
        assert consume.kind == "CONSUMER"
        assert consume.parent_span_id == publish.span_id
        assert (trace_id, publish.span_id) in consume.links


def test_an_http_batch_is_linked_from_the_ingest_and_evaluation_batches(
    http: httpx.Client, tenants: Any, otlp: OtlpReceiver, raise_limits: Any
) -> None:
    org = tenants.org("traced-batch")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    device = http.post("/api/v1/devices", json={"name": "meter"}, headers=bearer(key)).json()
    body = {"readings": [{"deviceId": device["id"], "sensor": "t", "ts": _ts(5), "value": 1.5}]}

    def accepted() -> httpx.Response | None:
        resp = http.post("/api/v1/readings/batch", json=body, headers=bearer(key))
        assert resp.status_code == 202, resp.text
        return resp if resp.json()["accepted"] == 1 else None  # readings knows the device

    deadline = time.monotonic() + 30
    while (resp := accepted()) is None:
        assert time.monotonic() < deadline, "readings never learnt of the device"
        time.sleep(0.3)
    request_id = resp.headers["x-request-id"]

    def linked(spans: list[ReceivedSpan]) -> bool:
        trace_id = _request_trace(spans, request_id)
        return trace_id is not None and all(
            any(
                s.service == service and s.name.startswith(name) and trace_id in dict(s.links)
                for s in spans
            )
            for service, name in (
                ("outpost-readings", "ingest readings-telemetry"),
                ("outpost-alerting", "evaluate alerting-telemetry"),
            )
        )

    spans = otlp.wait_for(linked)
    trace_id = _request_trace(spans, request_id)
    assert _one(_in_trace(spans, str(trace_id)), "outpost-readings", "handle readings.")


# --- metrics -------------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(url: str) -> Samples:
    resp = httpx.get(url, timeout=5)
    assert resp.status_code == 200, (url, resp.status_code)
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def _has(samples: Samples, name: str, **labels: str) -> bool:
    want = set(labels.items())
    return any(n == name and want <= set(ls) for (n, ls) in samples)


def test_every_metrics_media_type_names_each_parameter_once(stack: DevStack) -> None:
    """Prometheus 3 refuses a ``Content-Type`` with a repeated parameter (the gateway sent
    ``charset`` twice): every process's header is prometheus_client's (decision 77)."""
    urls = stack.metrics_urls()
    assert set(urls) == {
        "identity",
        "devices",
        "readings",
        "alerting",
        "exports",
        "fleet",
        "gateway",
    }
    for name, url in urls.items():
        ctype = httpx.get(url, timeout=5).headers["content-type"]
        media, *params = (p.strip() for p in ctype.split(";"))
        names = [p.partition("=")[0].lower() for p in params]
        assert media == "text/plain" and sorted(names) == ["charset", "version"], (name, ctype)
        assert ctype == CONTENT_TYPE_LATEST, (name, ctype)


def _scrape_all(stack: DevStack) -> dict[str, Samples]:
    return {name: _scrape(url) for name, url in stack.metrics_urls().items()}


def test_every_process_serves_the_named_series_and_they_move(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    org = tenants.org("metrics")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    device = http.post("/api/v1/devices", json={"name": "m"}, headers=bearer(key)).json()
    consumers = (
        ("readings", "readings-telemetry"),
        ("readings", "readings-devices"),
        ("alerting", "alerting-telemetry"),
        ("alerting", "alerting-devices"),
        ("alerting", "alerting-notifications"),
    )

    def sampled() -> dict[str, Samples] | None:
        # One consumer-info sample (every 5 s) after the start: waited for, not guessed.
        scraped = _scrape_all(stack)
        ready = all(
            _has(scraped.get(s, {}), "outpost_consumer_pending", consumer=c) for s, c in consumers
        )
        return scraped if ready else None

    before = eventually(sampled, timeout=60) or _scrape_all(stack)
    assert set(before) == {
        "identity",
        "devices",
        "readings",
        "alerting",
        "exports",
        "fleet",
        "gateway",
    }

    for name, samples in before.items():
        assert _has(samples, "process_cpu_seconds_total"), name
        if name == "gateway":
            continue
        # Every service: its outbox relay and, where it has durable consumers, their lag.
        assert _has(samples, "outpost_outbox_backlog", service=name), name
        assert _has(samples, "outpost_outbox_oldest_age_seconds", service=name), name
    gateway = before["gateway"]
    assert _has(gateway, "outpost_gateway_http_requests_total")
    assert _has(gateway, "outpost_gateway_http_request_duration_seconds_bucket")
    assert _has(gateway, "outpost_ratelimit_refused_total") or _has(
        gateway, "outpost_ratelimit_store_errors_total"
    )
    for service, consumer in consumers:
        samples = before[service]
        for series in (
            "outpost_consumer_pending",
            "outpost_consumer_ack_pending",
            "outpost_consumer_redelivered",
            "outpost_dead_letters_total",
        ):
            assert _has(samples, series, consumer=consumer), (service, series, consumer)
    assert _has(before["devices"], "outpost_rpc_server_seconds_count")
    assert _has(before["alerting"], "outpost_alerting_evaluation_seconds_count")

    # A change, a batch of readings (one good, one out of its sensor's range), a read.
    http.post(
        "/api/v1/sensors",
        json={
            "deviceId": device["id"],
            "key": "t",
            "valueType": "NUMBER",
            "validRange": {"min": 0, "max": 10},
        },
        headers=bearer(key),
    )
    body = {
        "readings": [
            {"deviceId": device["id"], "sensor": "t", "ts": _ts(3), "value": 5},
            {"deviceId": device["id"], "sensor": "t", "ts": _ts(2), "value": 50},
        ]
    }
    deadline = time.monotonic() + 30
    while True:
        answer = http.post("/api/v1/readings/batch", json=body, headers=bearer(key)).json()
        if answer.get("accepted") == 1 and len(answer.get("rejected", [])) == 1:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.3)
    assert http.get(f"/api/v1/devices/{device['id']}", headers=bearer(key)).status_code == 200
    second = http.post("/api/v1/devices", json={"name": "m2"}, headers=bearer(key))
    assert second.status_code == 201, second.text

    # A device's message on the broker that fails validation: quarantined by the ingest.
    async def publish_bad() -> None:
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        try:
            await nc.jetstream().publish(
                subjects.telemetry(org["id"], device["id"]), b'{"readings": "not a list"}'
            )
        finally:
            await nc.close()

    asyncio.run(publish_bad())

    expected: list[tuple[str, str, dict[str, str]]] = [
        ("gateway", "outpost_gateway_http_requests_total", {"route": "/api/v1/readings/batch"}),
        ("gateway", "outpost_gateway_http_request_duration_seconds_count", {}),
        ("devices", "outpost_rpc_server_seconds_count", {"operation": "devices.GetDevice"}),
        ("devices", "outpost_outbox_published_total", {"service": "devices"}),
        ("readings", "outpost_consumer_processed_total", {"consumer": "readings-devices"}),
        ("alerting", "outpost_consumer_processed_total", {"consumer": "alerting-devices"}),
        ("readings", "outpost_readings_stored_total", {}),
        ("readings", "outpost_readings_rejected_total", {}),
        ("readings", "outpost_readings_http_accepted_total", {}),
        ("readings", "outpost_readings_http_refused_total", {"reason": "out_of_range"}),
        ("alerting", "outpost_alerting_readings_evaluated_total", {}),
        ("alerting", "outpost_alerting_evaluation_seconds_count", {}),
        ("readings", "outpost_consumer_info_timestamp_seconds", {"consumer": "readings-telemetry"}),
    ]
    deadline = time.monotonic() + 30
    while True:
        after = _scrape_all(stack)
        still = [
            (process, name, labels)
            for process, name, labels in expected
            if _value(after[process], name, **labels) <= _value(before[process], name, **labels)
        ]
        if not still:
            break
        assert time.monotonic() < deadline, f"these did not move: {still}"
        time.sleep(0.5)


# --- logs ------------------------------------------------------------------------------


def test_no_secret_the_story_created_reaches_any_log(
    http: httpx.Client, tenants: Any, stack: DevStack, platform: dict[str, Any], tmp_path: Path
) -> None:
    secrets: dict[str, str] = {}
    org = tenants.org("secrets")
    key = tenants.key(org["id"])["key"]
    secrets["api key"] = key
    auth = bearer(key)

    # A user, a session, a refresh, a failed login.
    password = "correct horse battery staple " + uuid.uuid4().hex[:8]
    secrets["password"] = password
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    user = http.post(
        "/api/v1/users", json={"email": email, "password": password, "role": "member"}, headers=auth
    )
    assert user.status_code == 201, user.text
    tokens = http.post("/api/v1/auth/login", json={"email": email, "password": password}).json()
    secrets["access token"] = tokens["accessToken"]
    secrets["refresh token"] = tokens["refreshToken"]
    rotated = http.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert rotated.status_code == 200, rotated.text
    secrets["rotated refresh token"] = rotated.json()["refreshToken"]
    reused = http.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert reused.status_code == 401  # reuse: the family is revoked (and logged, without it)
    wrong = password[::-1]
    secrets["wrong password"] = wrong
    assert http.post("/api/v1/auth/login", json={"email": email, "password": wrong}).status_code
    # An OAuth client and a token from it.
    made = http.post(
        "/api/v1/oauth-clients", json={"name": "c", "scopes": ["devices:read"]}, headers=auth
    )
    assert made.status_code == 201, made.text
    client = made.json()
    secrets["client secret"] = client["clientSecret"]
    token = http.post(
        "/auth/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["clientId"], client["clientSecret"]),
    )
    assert token.status_code == 200, token.text
    secrets["client token"] = token.json()["access_token"]
    # A registration token redeemed for a certificate (the device's key stays here).
    issued = http.post(
        "/api/v1/devices/registration/tokens", json={"deviceName": "kept"}, headers=auth
    )
    assert issued.status_code == 201, issued.text
    secrets["registration token"] = issued.json()["token"]
    device = provision(http, auth, org["id"], tmp_path)
    private = serialization.load_pem_private_key(device.key_file.read_bytes(), None)
    pem = device.key_file.read_text()
    secrets["device private key"] = "".join(pem.strip().splitlines()[1:-1])[:64]
    assert private is not None
    # A webhook channel with a secret, tested once.
    receiver = Receiver()
    try:
        webhook_secret = "whsec-" + uuid.uuid4().hex
        secrets["webhook secret"] = webhook_secret
        channel = http.post(
            "/api/v1/notification-channels",
            json={"type": "WEBHOOK", "name": "ops", "url": receiver.url, "secret": webhook_secret},
            headers=auth,
        )
        assert channel.status_code == 201, channel.text
        tested = http.post(
            f"/api/v1/notification-channels/{channel.json()['id']}/test", headers=auth
        )
        assert tested.status_code == 200, tested.text
    finally:
        receiver.close()
    # The platform's own: database and broker passwords, encryption keys, the operator's key.
    for name, value in json.loads((stack.base_dir / SECRETS_NAME).read_text()).items():
        secrets[f"platform secret {name}"] = value
    secrets["operator key"] = platform["operatorKey"]
    secrets["demo organization key"] = platform["organization"]["apiKey"]

    time.sleep(1.5)  # what the processes wrote has reached their logs
    logs = sorted(stack.log_dir.glob("*.log"))
    logs += [stack.base_dir / "nats" / "nats.log", stack.base_dir / "pg" / "postgres.log"]
    logs = [p for p in logs if p.exists()]
    assert {p.stem for p in logs} >= {"identity", "devices", "readings", "gateway", "alerting"}
    found = []
    for path in logs:
        text = path.read_text(errors="replace")
        assert text or path.stem in ("nats", "postgres"), f"{path} is empty"
        found += [f"{what} in {path.name}" for what, value in secrets.items() if value in text]
    assert not found, found

    # And the services' lines are JSON objects carrying ids while they handle something.
    for path in logs:
        if path.stem not in ("identity", "devices", "readings", "alerting", "gateway"):
            continue
        entries = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        assert entries, path
        for entry in entries:
            if "request_id" in entry:
                assert "trace_id" in entry and "span_id" in entry, entry
