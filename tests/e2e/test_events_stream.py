"""``GET /api/v1/events/stream`` through the gateway (ADR 0096): an alert opened after the
stream connected arrives live; a dropped connection resumed with ``Last-Event-ID`` misses
nothing and repeats nothing; filters as ``/events``; a viewer's session follows it and a
credential without ``events:read`` may not; another organization's entries never appear;
one credential's streams are limited (429 beyond); ``outpost watch`` follows the stream and
resumes it after its connection is cut."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from outpost_client import events
from tests.e2e._cli import Cli
from tests.e2e._proxy import CuttableProxy
from tests.e2e._sse import Message, Stream
from tests.e2e.conftest import Tenants, wait_until

pytestmark = pytest.mark.e2e

PATH = "/api/v1/events/stream"
PASSWORD = "correct horse battery staple"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def device(http: httpx.Client, key: str, name: str) -> str:
    made = http.post("/api/v1/devices", json={"name": name}, headers=bearer(key))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def registered(messages: list[Message]) -> list[str]:
    return [m.json()["deviceId"] for m in messages if m.json()["type"].endswith("Registered.v1")]


@pytest.fixture(scope="module")
def org(tenants: Tenants, raise_limits: Any) -> dict[str, Any]:
    made = tenants.org("sse")
    raise_limits(made["id"])
    return {**made, "key": tenants.key(made["id"])["key"]}


def test_an_alert_opened_after_connecting_arrives_live(
    http: httpx.Client, platform: dict[str, Any], org: dict[str, Any]
) -> None:
    key = org["key"]
    boiler = device(http, key, f"boiler-{uuid.uuid4().hex[:6]}")
    rule = http.post(
        "/api/v1/alert-rules",
        json={
            "name": "too hot",
            "scope": {"type": "DEVICE", "id": boiler},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 90},
            "severity": "MAJOR",
        },
        headers=bearer(key),
    )
    assert rule.status_code == 201, rule.text
    params = {"type": "alerting.AlertOpened.v1"}
    with Stream(platform["gatewayUrl"], PATH, bearer(key), params) as stream:
        assert stream.status == 200
        stream.no_message_before("ready")  # starts now: nothing of the past
        at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
        sent = http.post(
            "/api/v1/readings/batch",
            json={"readings": [{"deviceId": boiler, "sensor": "temp", "ts": at, "value": 95}]},
            headers=bearer(key),
        )
        assert sent.status_code == 202, sent.text
        [opened] = stream.messages(1)
    entry = opened.json()
    assert (opened.event, entry["type"], entry["deviceId"]) == (
        "timeline",
        "alerting.AlertOpened.v1",
        boiler,
    )
    assert opened.id == str(entry["seq"]) and entry["alertId"]
    alert = http.get(f"/api/v1/alerts/{entry['alertId']}", headers=bearer(key)).json()
    assert alert["ruleId"] == rule.json()["id"]


def test_a_dropped_stream_resumes_with_last_event_id_without_gap_or_duplicate(
    http: httpx.Client, platform: dict[str, Any], tenants: Tenants, org: dict[str, Any]
) -> None:
    key = org["key"]
    url = platform["gatewayUrl"]
    # Another organization's device, made while this one's stream runs, never appears.
    other = tenants.org("sse-other")
    other_key = tenants.key(other["id"])["key"]
    with Stream(url, PATH, bearer(key)) as first:
        first.no_message_before("ready")
        before = [device(http, key, f"a-{i}") for i in range(3)]
        stranger = device(http, other_key, "not-yours")
        got = first.messages(3)
    assert registered(got) == before and stranger not in registered(got)
    # Dropped; meanwhile more happens; resumed after the last message received.
    during = [device(http, key, f"b-{i}") for i in range(4)]
    last = got[-1].id
    assert last is not None
    with Stream(url, PATH, {**bearer(key), "Last-Event-ID": last}) as second:
        resumed = second.wait_comment("ready")  # the backlog, then live
        after = [device(http, key, f"c-{i}") for i in range(2)]
        resumed += second.messages(2)
    assert registered(resumed) == during + after
    seqs = [int(m.id or 0) for m in got + resumed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # The same entries as /events lists past that point.
    listed = http.get(
        "/api/v1/events", params={"seq__gt": last, "limit": "100"}, headers=bearer(key)
    )
    assert listed.status_code == 200, listed.text
    assert [e["seq"] for e in listed.json()["data"]] == seqs[len(got) :]
    # ?lastEventId= is the same, for a browser's first connection.
    with Stream(url, PATH, bearer(key), {"lastEventId": last}) as third:
        assert registered(third.wait_comment("ready")) == during + after


def test_scopes_a_viewer_follows_a_narrow_key_may_not(
    http: httpx.Client, platform: dict[str, Any], tenants: Tenants, org: dict[str, Any]
) -> None:
    email = f"sse-{uuid.uuid4().hex[:8]}@example.com"
    made = http.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": "viewer"},
        headers=bearer(org["key"]),
    )
    assert made.status_code == 201, made.text
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["accessToken"]
    url = platform["gatewayUrl"]
    with Stream(url, PATH, bearer(token)) as viewer:
        assert viewer.status == 200
        viewer.no_message_before("ready")
        made_id = device(http, org["key"], "seen-by-a-viewer")
        assert registered(viewer.messages(1)) == [made_id]
    narrow = tenants.key(org["id"], ["devices:read", "alerts:read"])["key"]
    with Stream(url, PATH, bearer(narrow)) as refused:
        assert refused.status == 403 and refused.error["type"] == "access_denied"
    with Stream(url, PATH, {}) as anonymous:
        assert anonymous.status == 401
    with Stream(url, PATH, bearer(org["key"]), {"limit": "5"}) as bad:
        assert bad.status == 400 and bad.error["fields"][0]["name"] == "limit"
    with Stream(url, PATH, {**bearer(org["key"]), "Last-Event-ID": "x"}) as bad_id:
        assert bad_id.status == 400 and bad_id.error["type"] == "validation_error"


def test_one_credential_holds_a_limited_number_of_streams(
    platform: dict[str, Any], tenants: Tenants, org: dict[str, Any]
) -> None:
    key = tenants.key(org["id"])["key"]  # a credential of its own
    url = platform["gatewayUrl"]
    held = [Stream(url, PATH, bearer(key)) for _ in range(5)]  # the default limit
    try:
        assert [s.status for s in held] == [200] * 5
        with Stream(url, PATH, bearer(key)) as extra:
            assert extra.status == 429 and extra.error["type"] == "throttled", extra.error
        # Another credential is not counted with it.
        with Stream(url, PATH, bearer(org["key"])) as other:
            assert other.status == 200
        held.pop().close()  # a dropped stream gives its place back

        def reopened() -> int:
            stream = Stream(url, PATH, bearer(key))
            if stream.status == 200:
                held.append(stream)
            else:
                stream.close()
            return stream.status

        wait_until(reopened, 200)
    finally:
        for s in held:
            s.close()


class Observed:
    """What the CLI's stream reader (``outpost_client.events.parse``) saw, in a thread of the
    test's: its ``: ready`` comments and its messages, waited for under a condition."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.readies = 0
        self.messages = 0
        self._cond = threading.Condition()
        parse = events.parse

        def observed(lines: Any) -> Any:
            for message in parse(lines):
                with self._cond:
                    if message.comment == "ready":
                        self.readies += 1
                    elif message.comment is None:
                        self.messages += 1
                    self._cond.notify_all()
                yield message

        monkeypatch.setattr(events, "parse", observed)

    def wait(self, what: Any, timeout: float = 60) -> None:
        with self._cond:
            assert self._cond.wait_for(what, timeout), "the CLI's stream never got there"


def test_outpost_watch_resumes_after_its_connection_is_cut(
    http: httpx.Client,
    platform: dict[str, Any],
    tenants: Tenants,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = tenants.org("sse-watch")
    key = tenants.key(mine["id"])["key"]
    cli = Cli(tmp_path / "config.yaml")
    cli.run("login", "--url", platform["gatewayUrl"], "--api-key", key)
    seen = Observed(monkeypatch)
    gateway = urlparse(platform["gatewayUrl"])
    assert gateway.hostname is not None and gateway.port is not None
    with CuttableProxy(gateway.hostname, gateway.port) as proxy:
        out: dict[str, Any] = {}

        def watch() -> None:
            out["result"] = cli.run(
                "--url", proxy.url, "watch", "events", "--count", "6", "--for", "120", "-o", "json"
            )

        watcher = threading.Thread(target=watch)
        watcher.start()
        seen.wait(lambda: seen.readies == 1)
        before = [device(http, key, f"w-{i}") for i in range(3)]
        seen.wait(lambda: seen.messages >= 1)
        assert proxy.cut() >= 2  # mid-stream: the watcher had one entry at least
        during = [device(http, key, f"x-{i}") for i in range(3)]
        watcher.join(120)
        assert not watcher.is_alive()
        assert proxy.accepted >= 2  # it connected again (its 6th entry may precede ": ready")
    printed = [
        json.loads(line) for line in out["result"].stdout.splitlines() if line.startswith("{")
    ]
    assert [e["deviceId"] for e in printed] == before + during
    assert [e["seq"] for e in printed] == sorted({e["seq"] for e in printed})
