"""The compose platform, built from the project's Dockerfile and run in real containers,
used through its published ports (``make test-containers``, decision 80). Each test runs
against one replica of everything, then against two (``docker-compose.scale.yml``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import msgspec
import pytest

from outpost_contracts import subjects
from tests.containers._compose import SERVICES, Platform, report
from tests.e2e._devices import bearer, connect, mqtt_session, provision
from tests.e2e._poll import eventually

pytestmark = pytest.mark.containers

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def ts(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json() if response.content else None


@pytest.fixture
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway_url, timeout=15) as client:
        yield client


@pytest.fixture
def tenant(platform: Platform, http: httpx.Client) -> tuple[str, dict[str, str]]:
    """A fresh organization and an admin key of it (made with the operator key the
    credentials job printed), with generous limits, once every gateway accepts the key."""
    operator = bearer(platform.credentials["operatorKey"])
    org = ok(
        http.post(
            "/api/v1/admin/organizations",
            json={"name": f"ct-{uuid.uuid4().hex[:8]}"},
            headers=operator,
        ),
        201,
    )
    key = ok(
        http.post(
            "/api/v1/api-keys",
            json={"name": "ct"},
            headers={**operator, "X-Organization": org["id"]},
        ),
        201,
    )["key"]
    platform.raise_limits([org["id"]])
    for url in platform.gateway_urls:
        assert eventually(
            lambda url=url: (
                httpx.get(f"{url}/api/v1/devices", headers=bearer(key)).status_code == 200
            )
        ), f"{url} never accepted the new key"
    return org["id"], bearer(key)


def test_the_credentials_job_prints_keys_the_gateway_accepts(
    platform: Platform, http: httpx.Client
) -> None:
    creds = platform.credentials
    logs = platform.compose.run("logs", "--no-color", "credentials").stdout
    assert "Outpost is running. Development credentials:" in logs
    assert creds["gatewayUrl"] == platform.gateway_url
    assert creds["natsUrl"] == platform.nats_url
    operator = bearer(creds["operatorKey"])
    listed = ok(http.get("/api/v1/admin/organizations?name=demo", headers=operator))
    assert creds["organization"]["id"] in {o["id"] for o in listed["data"]}
    assert (
        http.get("/api/v1/devices", headers=bearer(creds["organization"]["apiKey"])).status_code
        == 200
    )
    # The job is idempotent: run again, it prints the same keys.
    again = platform.compose.run("run", "--rm", "--no-deps", "credentials")
    assert creds["operatorKey"] in again.stdout


def test_every_service_is_healthy_and_its_metrics_are_scraped(platform: Platform) -> None:
    containers = platform.compose.containers()
    for service in SERVICES:
        replicas = [c for c in containers if c["Service"] == service]
        assert len(replicas) == platform.replicas, (service, replicas)
        port = 8080 if service == "gateway" else 9090
        for c in replicas:
            assert c["State"] == "running" and c["Health"] == "healthy", c
            probe = (
                "import urllib.request as u, sys;"
                f"[sys.stdout.write(u.urlopen('http://127.0.0.1:{port}'+p, timeout=5).read()"
                ".decode()[:100000]) for p in ('/healthz', '/readyz', '/metrics')]"
            )
            text = platform.compose.exec(c["ID"], "python", "-c", probe)
            assert "# TYPE" in text and "outpost_" in text, (service, text[:500])
    for url in platform.gateway_urls:
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200 and "# TYPE" in metrics.text


def _readings(http: httpx.Client, auth: dict[str, str], device_id: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"deviceId": device_id, "limit": 100}
        if after:
            params["after"] = after
        body = ok(http.get("/api/v1/readings", params=params, headers=auth))
        got.extend(body["data"])
        if not body["hasMore"]:
            return got
        after = body["after"]


def test_a_provisioned_device_publishes_over_mqtt_and_nats_and_its_readings_are_queried_back(
    platform: Platform,
    http: httpx.Client,
    tenant: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = tenant
    device = provision(http, auth, org_id, tmp_path)

    async def over_nats() -> None:
        nc = await connect(platform.nats_url, device.tls(platform.broker_ca))
        try:
            payload = {"seq": 1, "readings": [{"sensor": "nats", "ts": ts(1), "value": 1.5}]}
            await nc.publish(device.telemetry, msgspec.json.encode(payload))
            await nc.flush()
            assert not nc.errors, nc.errors
        finally:
            await nc.close()

    asyncio.run(over_nats())
    with mqtt_session(device, platform.broker_ca, platform.mqtt_port) as client:
        assert not client.connack.is_failure, client.connack
        payload = {"seq": 2, "readings": [{"sensor": "mqtt", "ts": ts(2), "value": 2.5}]}
        info = client.publish(
            subjects.mqtt_topic(device.telemetry), json.dumps(payload).encode(), qos=1
        )
        info.wait_for_publish(10)
        assert info.is_published()

    def both() -> list[tuple[str, str, float]] | None:
        got = sorted((r["sensor"], r["ts"], r["value"]) for r in _readings(http, auth, device.id))
        return got if len(got) >= 2 else None

    assert eventually(both, timeout=60) == [("mqtt", ts(2), 2.5), ("nats", ts(1), 1.5)]
    # Through every gateway replica alike.
    for url in platform.gateway_urls[1:]:
        with httpx.Client(base_url=url, timeout=15) as other:
            assert len(_readings(other, auth, device.id)) == 2


class Receiver:
    """A webhook receiver on the host, reachable from the compose network."""

    def __init__(self, host_address: str) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host_address, 0), Handler)
        self.url = f"http://{host_address}:{self.server.server_address[1]}/outpost"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_alert_is_delivered_to_a_webhook_receiver_once(
    platform: Platform, http: httpx.Client, tenant: tuple[str, dict[str, str]]
) -> None:
    _, auth = tenant
    secret = "containers-webhook-secret-42"
    receiver = Receiver(platform.compose.network_gateway())
    try:
        device = ok(http.post("/api/v1/devices", json={"name": "boiler"}, headers=auth), 201)
        channel = ok(
            http.post(
                "/api/v1/notification-channels",
                json={"type": "WEBHOOK", "name": "ops", "url": receiver.url, "secret": secret},
                headers=auth,
            ),
            201,
        )
        rule = ok(
            http.post(
                "/api/v1/alert-rules",
                json={
                    "name": "boiler too hot",
                    "scope": {"type": "DEVICE", "id": device["id"]},
                    "sensor": "temp",
                    "condition": {"op": ">", "threshold": 90},
                    "severity": "CRITICAL",
                    "channelIds": [channel["id"]],
                },
                headers=auth,
            ),
            201,
        )
        body = {
            "readings": [
                {"deviceId": device["id"], "sensor": "temp", "ts": ts(s), "value": v}
                for s, v in ((0, 70), (1, 95.5), (2, 99))
            ]
        }
        sent = ok(http.post("/api/v1/readings/batch", json=body, headers=auth), 202)
        assert sent["rejected"] == []
        [(headers, payload)] = eventually(lambda: receiver.received, timeout=60)
        want = "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-outpost-signature"], want)
        event = msgspec.json.decode(payload)
        assert event["data"]["type"] == "alerting.AlertOpened.v1"
        alerts = ok(
            http.get("/api/v1/alerts", params={"$filter": f"ruleId eq {rule['id']}"}, headers=auth)
        )["data"]
        assert [a["id"] for a in alerts] == [event["streamId"]]
        # Delivered once, whichever alerting replica evaluated and delivered it.
        time.sleep(3)
        assert len(receiver.received) == 1
    finally:
        receiver.close()


def test_an_export_is_requested_and_downloaded(
    platform: Platform, http: httpx.Client, tenant: tuple[str, dict[str, str]]
) -> None:
    _, auth = tenant
    device = ok(http.post("/api/v1/devices", json={"name": "pump"}, headers=auth), 201)
    readings = [
        {"deviceId": device["id"], "sensor": "flow", "ts": ts(s), "value": float(s)}
        for s in range(50)
    ]
    ok(http.post("/api/v1/readings/batch", json={"readings": readings}, headers=auth), 202)
    assert eventually(lambda: len(_readings(http, auth, device["id"])) == 50, timeout=60)
    created = ok(
        http.post(
            "/api/v1/exports",
            json={
                "scopeType": "DEVICE",
                "scopeId": device["id"],
                "from": ts(0),
                "to": ts(60),
                "includes": ["READINGS"],
                "format": "CSV",
            },
            headers=auth,
        ),
        201,
    )

    def ready() -> dict[str, Any] | None:
        got = http.get(f"/api/v1/exports/{created['id']}", headers=auth)
        if got.status_code == 503:
            # exports did not answer within the RPC timeout (two replicas of everything on
            # a loaded two-core machine): asked again, as a client would.
            return None
        view = ok(got)
        assert view["status"] in ("PENDING", "RUNNING", "READY"), view
        return view if view["status"] == "READY" else None

    view = eventually(ready, timeout=90)
    assert view, "the export never became READY"
    assert view["readingCount"] == 50
    # The link alone, as a browser would, through each gateway replica.
    link = urlparse(view["downloadUrl"])
    for url in platform.gateway_urls:
        got = httpx.get(f"{url}{link.path}?{link.query}", timeout=30)
        assert got.status_code == 200, got.text
        archive = zipfile.ZipFile(io.BytesIO(got.content))
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["counts"]["readings"] == 50


def test_the_write_limit_holds_across_gateway_replicas(
    platform: Platform, http: httpx.Client
) -> None:
    """docs/design/reliability.md ``ratelimit`` in containers: the default write limit (50 a minute
    per credential) is counted once across every gateway replica: requests spread over the
    replicas' published ports admit exactly 50."""
    operator = bearer(platform.credentials["operatorKey"])
    org = ok(
        http.post(
            "/api/v1/admin/organizations", json={"name": f"rl-{uuid.uuid4().hex[:8]}"},
            headers=operator,
        ),
        201,
    )  # fmt: skip
    key = ok(
        http.post(
            "/api/v1/api-keys", json={"name": "rl"},
            headers={**operator, "X-Organization": org["id"]},
        ),
        201,
    )["key"]  # fmt: skip
    for url in platform.gateway_urls:
        assert eventually(
            lambda url=url: (
                httpx.get(f"{url}/api/v1/devices", headers=bearer(key)).status_code == 200
            )
        )
    # Until the first refusal: requests spread over the replicas, each answer's window
    # (X-RateLimit-Reset) noted, so a minute that ends during the run is seen, not assumed.
    answers: list[tuple[int, str]] = []
    for i in range(300):
        url = platform.gateway_urls[i % len(platform.gateway_urls)]
        got = httpx.post(
            f"{url}/api/v1/devices", json={"name": f"d-{i}"}, headers=bearer(key), timeout=15
        )
        assert got.status_code in (201, 429), got.text
        answers.append((got.status_code, got.headers["x-ratelimit-reset"]))
        if got.status_code == 429:
            break
    windows: dict[str, list[int]] = {}
    for status, reset in answers:
        windows.setdefault(reset, []).append(status)
    assert all(statuses.count(201) <= 50 for statuses in windows.values()), windows
    refused_in = answers[-1][1]
    assert answers[-1][0] == 429 and windows[refused_in].count(201) == 50, windows
    report(
        f"{'scaled' if platform.replicas > 1 else 'single'}: write limit over"
        f" {len(platform.gateway_urls)} gateway(s): 50 admitted in the window, then 429"
    )
