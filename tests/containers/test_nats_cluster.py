"""docs/design/reliability.md ``nats-node-loss``: the platform on a three-node NATS cluster
(``docker-compose.cluster.yml``: every stream at three replicas, ``sync_interval: always``)
loses one node to SIGKILL, gets it back, then has another node cut off by a partition made
inside that node's own network namespace, while readings are ingested (HTTP batches through
the gateway, and a provisioned device over MQTT at QoS 1), devices are created (each one
an outbox event the readings service must receive) and the API is read. Afterwards every
acknowledged (202) HTTP reading and every PUBACKed MQTT QoS 1 reading is stored exactly once
(readings stores an MQTT reading from nats-server's $MQTT_msgs, whose store precedes the
PUBACK: decision 82), every created device's event reached readings, and every API read was
answered (p99 and error counts are printed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from outpost_contracts import subjects
from outpost_kit.messaging import client_tls, url_credentials
from tests.containers._compose import Platform, compose_platform, report
from tests.e2e._devices import bearer, mqtt_session, provision
from tests.e2e._poll import eventually

pytestmark = pytest.mark.containers

FILES = ("docker-compose.yml", "docker-compose.cluster.yml")
START = int(time.time()) - 3600


def ts(i: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + i))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Platform]:
    with compose_platform("cluster", FILES, 1, extra=("nats-2", "nats-3")) as platform:
        yield platform


class Load:
    """Writers and readers running until ``stop``; what each got acknowledged. Acknowledged
    readings are HTTP batches answered 202 with nothing rejected (the gateway answers once
    readings has them)."""

    def __init__(self, platform: Platform, auth: dict[str, str], device_id: str) -> None:
        self.platform, self.auth, self.device_id = platform, auth, device_id
        self.stop = threading.Event()
        self.acked: list[str] = []  # HTTP batch readings answered 202, nothing rejected
        self.ingest_errors: list[str] = []
        self.created: list[str] = []  # devices answered 201
        self.create_errors: list[str] = []
        self.latencies: list[tuple[float, float]] = []  # API reads: (started, seconds)
        self.read_errors: list[tuple[float, str]] = []
        self.threads = [
            threading.Thread(target=self._ingest, daemon=True),
            threading.Thread(target=self._create, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        self.window: tuple[int, int] = (0, 0)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.platform.gateway_url, timeout=30, headers=self.auth)

    def _ingest(self) -> None:
        with self._client() as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                body = {
                    "readings": [
                        {"deviceId": self.device_id, "sensor": "http", "ts": ts(i), "value": i}
                    ]
                }
                try:
                    got = http.post("/api/v1/readings/batch", json=body)
                except httpx.HTTPError as exc:
                    self.ingest_errors.append(repr(exc))
                    continue
                if got.status_code == 202 and got.json()["rejected"] == []:
                    self.acked.append(ts(i))
                else:
                    self.ingest_errors.append(f"{got.status_code} {got.text[:200]}")
                time.sleep(0.05)

    def _create(self) -> None:
        with self._client() as http:
            while not self.stop.is_set():
                try:
                    got = http.post("/api/v1/devices", json={"name": f"c-{uuid.uuid4().hex[:10]}"})
                except httpx.HTTPError as exc:
                    self.create_errors.append(repr(exc))
                    continue
                if got.status_code == 201:
                    self.created.append(got.json()["id"])
                else:
                    self.create_errors.append(f"{got.status_code} {got.text[:200]}")
                time.sleep(0.3)

    def _read(self) -> None:
        with self._client() as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    got = http.get("/api/v1/devices", params={"limit": 5})
                    if got.status_code != 200:
                        self.read_errors.append((started, f"{got.status_code} {got.text[:200]}"))
                except httpx.HTTPError as exc:
                    self.read_errors.append((started, repr(exc)))
                self.latencies.append((started, time.monotonic() - started))
                time.sleep(0.05)

    def reads(self, window: tuple[float, float] | None = None) -> str:
        """API reads in ``window`` (all without one): count, errors, p99 and max."""
        start, end = window or (0.0, float("inf"))
        took = [s for t, s in self.latencies if start <= t < end]
        errors = [e for t, e in self.read_errors if start <= t < end]
        p99 = max(took, default=0.0)
        if len(took) >= 2:
            p99 = statistics.quantiles(took, n=100)[98]
        return (
            f"API reads {len(took)}, errors {len(errors)}, p99 {p99 * 1000:.0f} ms,"
            f" max {max(took, default=0.0) * 1000:.0f} ms"
        )


def _readings(http: httpx.Client, device_id: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"deviceId": device_id, "limit": 1000}
        if after:
            params["after"] = after
        page = http.get("/api/v1/readings", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        got.extend(body["data"])
        if not body["hasMore"]:
            return got
        after = body["after"]


def _pid(platform: Platform, service: str) -> int:
    [cid] = platform.compose.ids(service)
    got = platform.compose.docker_run("inspect", "-f", "{{.State.Pid}}", cid)
    return int(got.stdout.strip())


def _netns(pid: int, *args: str) -> str:
    """``ip`` inside the container's own network namespace (the host's ip binary)."""
    nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
    got = subprocess.run(
        [nsenter, "-t", str(pid), "-n", "ip", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    return got.stdout


def _streams_at_three_replicas(platform: Platform) -> dict[str, int]:
    [cid] = platform.compose.ids("nats")
    jsz = platform.compose.exec(
        cid,
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:8222/jsz?accounts=true&streams=true&config=true",
    )
    found: dict[str, int] = {}
    for account in json.loads(jsz).get("account_details", []):
        for stream in account.get("stream_detail", []):
            found[stream["name"]] = int(stream["config"]["num_replicas"])
    return found


# What the faults are forced onto (decision 82). TELEMETRY's capture of an MQTT publish is a
# core publish, lost while TELEMETRY has no leader; nats-server stores the publish in
# $MQTT_msgs (read by readings-mqtt) before its PUBACK, and a device's connection waits for
# that store. So the kill takes TELEMETRY's leader while $MQTT_msgs and readings-mqtt are led
# by node 1: the device goes on publishing at full rate while TELEMETRY elects a leader (what
# lost 41 and 64 PUBACKed readings before decision 82). The partition takes all three leaders.
Led = tuple[str, str | None]  # (stream, consumer or None)
TELEMETRY: Led = ("TELEMETRY", None)
MQTT_MESSAGES: Led = (subjects.MQTT_MESSAGES_STREAM, None)
READINGS_MQTT: Led = (subjects.MQTT_MESSAGES_STREAM, "readings-mqtt")


class Administrator:
    """The stream administrator's connection (admin.env, as the streams job has it) through
    the published NATS port of node 1, which no test stops."""

    def __init__(self, platform: Platform, material: Path) -> None:
        raw = platform.compose.copy_out("nats", "/etc/outpost/env/admin.env").decode()
        env = dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)
        for key in ("OUTPOST_NATS_TLS_CERT", "OUTPOST_NATS_TLS_KEY"):
            (material / key).write_bytes(platform.compose.copy_out("nats", env[key]))
        self.user, self.password = url_credentials(env["OUTPOST_NATS_URL"])
        self.url = platform.nats_url
        self.tls = client_tls(
            platform.broker_ca,
            str(material / "OUTPOST_NATS_TLS_CERT"),
            str(material / "OUTPOST_NATS_TLS_KEY"),
        )

    def lead_on(self, server: str, *led: Led) -> dict[str, str]:
        """Move the leaders of ``led`` (streams, and consumers of a stream) to ``server`` (a
        JetStream step-down naming it); the leaders found afterwards."""
        return asyncio.run(self._lead_on(server, led))

    async def _lead_on(self, server: str, led: tuple[Led, ...]) -> dict[str, str]:
        nc = await nats.connect(
            self.url, user=self.user, password=self.password, tls=self.tls, connect_timeout=10
        )
        try:
            js = nc.jetstream(timeout=10)
            leaders: dict[str, str] = {}
            for stream, consumer in led:
                name = f"{stream}/{consumer}" if consumer else stream
                api = (
                    f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}"
                    if consumer
                    else f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}"
                )
                deadline = time.monotonic() + 60
                while True:
                    info = await (
                        js.consumer_info(stream, consumer) if consumer else js.stream_info(stream)
                    )
                    leaders[name] = (info.cluster.leader if info.cluster else None) or ""
                    if leaders[name] == server or time.monotonic() > deadline:
                        break
                    request = {"placement": {"preferred": server}}
                    # Refused while a step-down is in progress: asked again.
                    with contextlib.suppress(Exception):
                        await nc.request(api, json.dumps(request).encode(), timeout=10)
                    await asyncio.sleep(1.0)
            return leaders
        finally:
            await nc.close()


def _wait_healthy(platform: Platform, service: str) -> None:
    def healthy() -> bool:
        return all(
            c["Health"] == "healthy"
            for c in platform.compose.containers()
            if c["Service"] == service
        )

    assert eventually(healthy, timeout=120, every=1.0), f"{service} never became healthy again"


def test_a_node_killed_then_a_node_partitioned_loses_nothing_acknowledged(
    cluster: Platform, tmp_path: Path
) -> None:
    platform = cluster
    operator = bearer(platform.credentials["operatorKey"])
    with httpx.Client(base_url=platform.gateway_url, timeout=30) as http:
        org = http.post(
            "/api/v1/admin/organizations",
            json={"name": f"nl-{uuid.uuid4().hex[:8]}"},
            headers=operator,
        ).json()
        key = http.post(
            "/api/v1/api-keys",
            json={"name": "nl"},
            headers={**operator, "X-Organization": org["id"]},
        ).json()["key"]
        platform.raise_limits([org["id"]])
        auth = bearer(key)
        assert eventually(lambda: http.get("/api/v1/devices", headers=auth).status_code == 200)
        sink = http.post("/api/v1/devices", json={"name": "sink"}, headers=auth).json()
        mqtt_device = provision(http, auth, org["id"], tmp_path)

    replicas = _streams_at_three_replicas(platform)
    assert replicas and set(replicas.values()) == {3}, replicas
    admin = Administrator(platform, tmp_path)

    puback: list[int] = []
    sent_at: dict[int, float] = {}
    phases: dict[str, tuple[float, float]] = {}
    with (
        mqtt_session(mqtt_device, platform.broker_ca, platform.mqtt_port) as client,
        Load(platform, auth, sink["id"]) as load,
    ):
        pending: dict[int, int] = {}
        lock = threading.Lock()

        def on_publish(c: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
            with lock:
                if mid in pending:
                    puback.append(pending.pop(mid))

        client.on_publish = on_publish
        topic = subjects.mqtt_topic(mqtt_device.telemetry)
        seq = 0

        def publish_for(seconds: float) -> None:
            nonlocal seq
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                seq += 1
                payload = {
                    "seq": seq,
                    "readings": [{"sensor": "mqtt", "ts": ts(seq), "value": seq}],
                }
                with lock:
                    sent_at[seq] = time.monotonic()
                    info = client.publish(topic, json.dumps(payload).encode(), qos=1)
                    pending[info.mid] = seq
                time.sleep(0.1)

        publish_for(5)
        # SIGKILL of the node leading TELEMETRY (node 1 leads $MQTT_msgs and readings-mqtt),
        # 10 s of load without it, then it comes back.
        leaders = admin.lead_on("nats-1", MQTT_MESSAGES, READINGS_MQTT)
        leaders.update(admin.lead_on("nats-2", TELEMETRY))
        assert leaders == {
            "TELEMETRY": "nats-2",
            subjects.MQTT_MESSAGES_STREAM: "nats-1",
            f"{subjects.MQTT_MESSAGES_STREAM}/readings-mqtt": "nats-1",
        }, leaders
        killed = platform.compose.ids("nats-2")[0]
        started = time.monotonic()
        platform.compose.docker_run("kill", "--signal", "KILL", killed)
        publish_for(10)
        platform.compose.run("start", "nats-2")
        _wait_healthy(platform, "nats-2")
        publish_for(5)
        phases["node killed until back and 5 s after"] = (started, time.monotonic())
        # A partition of the node leading all three: nats-3's interface down inside its own
        # network namespace for 10 s.
        leaders = admin.lead_on("nats-3", TELEMETRY, MQTT_MESSAGES, READINGS_MQTT)
        assert set(leaders.values()) == {"nats-3"}, leaders
        pid = _pid(platform, "nats-3")
        default = _netns(pid, "route", "show", "default").split()
        started = time.monotonic()
        _netns(pid, "link", "set", "dev", "eth0", "down")
        publish_for(10)
        _netns(pid, "link", "set", "dev", "eth0", "up")
        if len(default) >= 3 and default[0] == "default":
            _netns(pid, "route", "replace", "default", "via", default[2])
        publish_for(5)
        phases["node partitioned until healed and 5 s after"] = (started, time.monotonic())

        def drained() -> bool:
            with lock:
                return not pending

        # The last PUBACKs (a connection nats-server closed is re-established with backoff,
        # and its unacknowledged messages sent again).
        eventually(drained, timeout=60, every=1.0)

    with httpx.Client(base_url=platform.gateway_url, timeout=30, headers=auth) as http:
        # Every acknowledged reading stored exactly once.
        def http_stored() -> list[str] | None:
            got = [r["ts"] for r in _readings(http, sink["id"]) if r["sensor"] == "http"]
            return got if set(load.acked) <= set(got) else None

        stored = eventually(http_stored, timeout=120, every=1.0)
        assert stored, f"acknowledged readings missing: {len(load.acked)} acked"
        duplicated = len(stored) - len(set(stored))

        # A device's MQTT QoS 1 readings: every one PUBACKed is stored once (decision 82).
        def mqtt_values() -> list[float]:
            return [r["value"] for r in _readings(http, mqtt_device.id) if r["sensor"] == "mqtt"]

        def mqtt_stored() -> list[float] | None:
            got = mqtt_values()
            return got if {float(s) for s in puback} <= set(got) else None

        mqtt_got = eventually(mqtt_stored, timeout=120, every=3.0) or mqtt_values()
        mqtt_duplicated = len(mqtt_got) - len(set(mqtt_got))
        mqtt_lost = sorted({float(s) for s in puback} - set(mqtt_got))

        # Every device created during the faults reached readings' registry through the
        # outbox: a reading for each is stored, not quarantined as an unknown device.
        batch = {
            "readings": [
                {"deviceId": d, "sensor": "probe", "ts": ts(0), "value": 1} for d in load.created
            ]
        }
        sent = http.post("/api/v1/readings/batch", json=batch)
        assert sent.status_code == 202 and sent.json()["rejected"] == [], sent.text

        def delivered() -> list[str]:
            return [d for d in load.created if not _readings(http, d)]

        all_delivered = eventually(lambda: not delivered(), timeout=120, every=2.0)
        undelivered = [] if all_delivered else delivered()
        health = http.get(f"/api/v1/devices/{mqtt_device.id}/health").json()

    report(
        f"nats-node-loss: HTTP readings acknowledged {len(load.acked)}, stored"
        f" {len(set(stored))}, lost {len(set(load.acked) - set(stored))}, duplicated"
        f" {duplicated}; ingest errors {len(load.ingest_errors)} {load.ingest_errors[:2]}"
    )
    report(
        f"nats-node-loss: MQTT QoS1 readings PUBACKed {len(puback)} of {seq} sent, stored"
        f" {len(set(mqtt_got))}, PUBACKed but lost {len(mqtt_lost)} (seq"
        f" {[int(v) for v in mqtt_lost[:10]]}), duplicated {mqtt_duplicated}; the device's"
        f" lastSeq {health.get('lastSeq')}, seqGaps {health.get('seqGaps')},"
        f" seqResets {health.get('seqResets')}"
    )
    report(
        f"nats-node-loss: devices created {len(load.created)} (errors"
        f" {len(load.create_errors)}), events not delivered {len(undelivered)}; whole run:"
        f" {load.reads()}"
    )
    acked_mqtt = set(puback)
    for name, (start, end) in phases.items():
        in_window = [q for q, t in sent_at.items() if start <= t < end]
        report(
            f"nats-node-loss, {name}: MQTT sent {len(in_window)}, PUBACKed"
            f" {len(acked_mqtt.intersection(in_window))}, lost"
            f" {len({float(q) for q in acked_mqtt.intersection(in_window)} - set(mqtt_got))};"
            f" {load.reads((start, end))}"
        )
    assert duplicated == 0 and mqtt_duplicated == 0
    assert not mqtt_lost, f"MQTT readings PUBACKed and never stored: seq {mqtt_lost[:20]}"
    assert not undelivered, f"devices whose events never reached readings: {undelivered}"
    assert not load.read_errors, load.read_errors[:10]
