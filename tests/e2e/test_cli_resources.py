"""Every resource group of the CLI against the running platform (issue 9's list): the
operator's organizations, users, API keys (a key made by the CLI used through
``OUTPOST_API_KEY``), OAuth clients, groups, sites, registration tokens, commands and
desired state, alert rules, notification channels (a webhook test to a receiver on
loopback), the audit log, events and ``watch devices``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outpost_client import events
from tests.e2e._cli import Cli
from tests.e2e._webhooks import Receiver
from tests.e2e.conftest import Tenants

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def org(tenants: Tenants, raise_limits: Any) -> dict[str, Any]:
    made = tenants.org("cli-res")
    raise_limits(made["id"])
    return {**made, "key": tenants.key(made["id"])["key"]}


@pytest.fixture(scope="module")
def cli(
    tmp_path_factory: pytest.TempPathFactory, platform: dict[str, Any], org: dict[str, Any]
) -> Cli:
    runner = Cli(tmp_path_factory.mktemp("cli-res") / "config.yaml")
    runner.run("login", "--url", platform["gatewayUrl"], "--api-key", org["key"])
    runner.run(
        "--profile", "operator", "login", "--url", platform["gatewayUrl"],
        "--api-key", platform["operatorKey"], "--no-default",
    )  # fmt: skip
    return runner


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def test_profiles_and_the_operator(cli: Cli, org: dict[str, Any]) -> None:
    profiles = {p["name"]: p for p in cli.json("profiles", "list")}
    assert profiles["default"]["default"] is True and profiles["operator"]["default"] is False
    created = cli.json("--profile", "operator", "orgs", "create", "cli-made-org")
    assert created["name"] == "cli-made-org" and created["status"] == "ACTIVE"
    listed = cli.run("--profile", "operator", "orgs", "list", "--all", "-q").stdout.split()
    assert {created["id"], org["id"]} <= set(listed)
    got = cli.json("--profile", "operator", "orgs", "get", created["id"])
    assert got["id"] == created["id"]


def test_api_keys_made_by_the_cli_work_through_the_environment(
    cli: Cli, platform: dict[str, Any]
) -> None:
    key = cli.run("api-keys", "create", "ci", "--scope", "devices:read", "-q").stdout.strip()
    assert key.startswith("sk_live_")
    listed = cli.json("api-keys", "list")
    made = next(k for k in listed if k["name"] == "ci")
    assert made["scopes"] == ["devices:read"]

    def with_key(*args: str) -> Any:
        return cli.runner.invoke(
            __import__("outpost_client.cli.app", fromlist=["app"]).app,
            list(args),
            env={"OUTPOST_CONFIG": str(cli.config), "OUTPOST_API_KEY": key},
        )

    deadline = time.monotonic() + 30  # until every gateway knows the new key
    while (result := with_key("devices", "list", "-o", "json")).exit_code != 0:
        assert time.monotonic() < deadline, result.output
        time.sleep(0.2)
    refused = with_key("devices", "create", "nope")
    assert refused.exit_code == 1 and "access_denied" in refused.output, refused.output
    cli.run("api-keys", "revoke", made["id"])
    revoked = next(k for k in cli.json("api-keys", "list") if k["id"] == made["id"])
    assert revoked["revokedAt"]


def test_users_and_oauth_clients(cli: Cli) -> None:
    user = cli.json(
        "users", "create", "grace@example.com", "--password", "a long enough secret", "--role",
        "viewer",
    )  # fmt: skip
    assert user["role"] == "viewer"
    assert user["id"] in cli.run("users", "list", "-q").stdout.split()
    issued = cli.json("oauth-clients", "create", "etl", "--scope", "readings:read")
    assert issued["clientSecret"] and issued["clientId"]
    rotated = cli.json("oauth-clients", "rotate-secret", issued["id"])
    assert rotated["clientSecret"] != issued["clientSecret"]
    cli.run("oauth-clients", "delete", issued["id"])
    assert issued["id"] not in cli.run("oauth-clients", "list", "-q").stdout.split()


def test_groups_sites_and_a_device_in_them(cli: Cli) -> None:
    group = cli.json("groups", "create", "basement", "--set", "description=Boiler room")
    site = cli.json(
        "sites", "create", "lyon", "--set", "timezone=Europe/Paris",
        "--set", "location.latitude=45.76", "--set", "location.longitude=4.84",
    )  # fmt: skip
    assert site["location"] == {"latitude": 45.76, "longitude": 4.84}
    device = cli.json("devices", "create", "pump-9", "--group", group["id"], "--site", site["id"])
    assert (device["groupId"], device["siteId"]) == (group["id"], site["id"])
    renamed = cli.json("groups", "update", group["id"], "--set", "name=cellar", "--if-match", "1")
    assert renamed["name"] == "cellar" and renamed["version"] == 2
    stale = cli.run("groups", "update", group["id"], "--set", "name=x", "--if-match", "1", ok=False)
    assert stale.exit_code == 1 and "precondition_failed" in stale.output
    tagged = cli.json("devices", "tag", "pump-9", "env=prod", "tier=1")
    assert {(t["key"], t["value"]) for t in tagged["tags"]} == {("env", "prod"), ("tier", "1")}
    untagged = cli.json("devices", "untag", "pump-9", "tier")
    assert [t["key"] for t in untagged["tags"]] == ["env"]
    health = cli.json("devices", "health", "pump-9")
    assert health["online"] is False
    cli.run("devices", "delete", "pump-9")
    assert cli.json("devices", "get", device["id"])["status"] in ("DECOMMISSIONED", "DELETED")


def test_tokens_commands_and_state(cli: Cli) -> None:
    issued = cli.json("tokens", "create", "gw-cmd", "--ttl", "600")
    assert issued["token"] and issued["deviceName"] == "gw-cmd"
    listed = cli.json("tokens", "list")
    assert any(t["deviceId"] == issued["deviceId"] for t in listed)
    sent = cli.json("commands", "send", "gw-cmd", "reboot", "--param", "delay=5", "--ttl", "60")
    assert sent["status"] == "PENDING" and sent["params"] == {"delay": 5}
    assert cli.json("commands", "get", "gw-cmd", sent["id"])["name"] == "reboot"
    assert [c["id"] for c in cli.json("commands", "list", "gw-cmd")] == [sent["id"]]
    state = cli.json("state", "set", "gw-cmd", "fan.speed=3", "led=true")
    assert state["desired"] == {"fan": {"speed": 3}, "led": True}
    state = cli.json("state", "set", "gw-cmd", "led=null")
    assert state["desired"] == {"fan": {"speed": 3}}
    assert cli.json("state", "get", "gw-cmd")["desired"] == {"fan": {"speed": 3}}
    token = next(t for t in listed if t["deviceId"] == issued["deviceId"])
    cli.run("tokens", "revoke", token["id"])


def test_rules_and_channels(cli: Cli, receiver: Receiver) -> None:
    channel = cli.json(
        "channels", "create", "ops", "--url", receiver.url, "--secret", "a-secret-of-16-chars+"
    )
    assert channel["type"] == "WEBHOOK" and channel["hasSecret"] is True
    tested = cli.json("channels", "test", channel["id"])
    assert tested["outcome"] == "SUCCEEDED", tested
    assert receiver.received and "x-outpost-signature" in receiver.received[0][0]
    rule = cli.json(
        "alert-rules", "create", "quiet", "--sensor", "vibration", "--condition", "nodata 300",
        "--channel", channel["id"],
    )  # fmt: skip
    assert rule["scope"]["type"] == "ORGANIZATION"
    assert rule["channelIds"] == [channel["id"]]
    changed = cli.json("alert-rules", "update", rule["id"], "--set", "enabled=false")
    assert changed["enabled"] is False
    condition = cli.json("alert-rules", "get", rule["id"])["condition"]
    assert (condition["op"], condition["seconds"]) == ("nodata", 300)
    cli.run("alert-rules", "delete", rule["id"])
    # An offline rule needs no --sensor (decision 71); every other condition does.
    gone = cli.json("alert-rules", "create", "gone", "--condition", "offline 300")
    assert (gone["sensor"], gone["condition"]["op"]) == (None, "offline")
    hot = cli.run("alert-rules", "create", "hot", "--condition", "> 30", ok=False)
    assert hot.exit_code != 0 and "--sensor" in hot.output
    assert [r["name"] for r in cli.json("alert-rules", "list")].count("hot") == 0
    labelled = cli.json(
        "alert-rules", "create", "gone-2", "--sensor", "temp", "--condition", "offline 60"
    )
    assert labelled["sensor"] == "temp"  # kept as given
    unlabelled = cli.json("alert-rules", "update", labelled["id"], "--set", "sensor=null")
    assert (unlabelled["sensor"], unlabelled["version"]) == (None, 2)
    cli.run("alert-rules", "delete", labelled["id"])
    cli.run("alert-rules", "delete", gone["id"])
    cli.run("channels", "delete", channel["id"])
    assert channel["id"] not in cli.run("channels", "list", "-q").stdout.split()


def test_watch_devices_sees_a_device_appear(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out: dict[str, Any] = {}

    def watch() -> None:
        out["result"] = cli.run("watch", "devices", "--count", "1", "--for", "60", "-o", "json")

    watcher = threading.Thread(target=watch)
    # The device is created once the watcher's stream follows the timeline (its ": ready"),
    # not after a guessed delay, which a loaded machine can overrun.
    following = threading.Event()
    parse = events.parse

    def observed(lines: Any) -> Any:
        for message in parse(lines):
            if message.comment == "ready" and threading.current_thread() is watcher:
                following.set()
            yield message

    monkeypatch.setattr(events, "parse", observed)
    watcher.start()
    assert following.wait(60), "the watcher never followed the timeline"
    device = cli.json("devices", "create", "appears")
    watcher.join(90)
    lines = [json.loads(line) for line in out["result"].stdout.splitlines() if line.strip()]
    assert [d["id"] for d in lines] == [device["id"]]
    assert lines[0]["event"]["type"] == "devices.DeviceRegistered.v1"


def test_audit_log_and_events_lists(cli: Cli) -> None:
    audit = cli.run("audit-log", "list", "--order", "DESC", "--limit", "5", "-o", "csv").stdout
    assert audit.splitlines()[0] == "occurredAt,service,type,streamType,streamId,actorKind"
    assert len(audit.splitlines()) == 6
    counted = cli.run("events", "list", "--count", "--limit", "1")
    assert "totalCount:" in counted.output
