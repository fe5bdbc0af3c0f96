"""The ``outpost`` command line against the running platform, the story of issue 9: log
in, create a device, simulate it for a few seconds over the broker, see its readings (the
sparkline, the chart, the table), create a rule, see the alert it opens and acknowledge
it, watch the timeline; both filter styles, output formats and typed errors on the way.
The export part is ``test_cli_exports.py``."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._cli import Cli
from tests.e2e._poll import eventually
from tests.e2e.conftest import Tenants

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenant(tenants: Tenants, raise_limits: Any) -> dict[str, Any]:
    org = tenants.org("cli")
    raise_limits(org["id"])
    return {"org": org, "key": tenants.key(org["id"])["key"]}


@pytest.fixture(scope="module")
def cli(
    tmp_path_factory: pytest.TempPathFactory, platform: dict[str, Any], tenant: dict[str, Any]
) -> Cli:
    runner = Cli(tmp_path_factory.mktemp("cli") / "config.yaml")
    result = runner.run(
        "login",
        "--url",
        platform["gatewayUrl"],
        "--api-key",
        tenant["key"],
        "--broker-ca",
        platform["brokerCaFile"],
    )
    assert "logged in" in result.output
    return runner


def test_login_writes_a_private_profile_and_whoami_names_the_key(
    cli: Cli, tenant: dict[str, Any], platform: dict[str, Any]
) -> None:
    mode = stat.S_IMODE(cli.config.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert tenant["key"] in cli.config.read_text()
    me = cli.json("whoami")
    assert me["kind"] == "api-key"
    assert me["url"] == platform["gatewayUrl"].rstrip("/")
    assert tenant["key"].startswith(me["key"].rstrip("…"))
    assert me["scopes"], me


def test_a_bad_credential_is_one_line_with_the_request_id(cli: Cli) -> None:
    result = cli.runner.invoke(
        __import__("outpost_client.cli.app", fromlist=["app"]).app,
        ["devices", "list"],
        env={"OUTPOST_CONFIG": str(cli.config), "OUTPOST_API_KEY": "sk_live_notakey"},
    )
    assert result.exit_code == 1
    assert "Error: 401 invalid_apikey" in result.output or "Error: 401" in result.output
    assert "request_id" in result.output
    bad = cli.run(
        "alert-rules",
        "create",
        "x",
        "--sensor",
        "t",
        "--condition",
        "> 1",
        "--severity",
        "LOUD",
        ok=False,
    )
    assert bad.exit_code == 1 and "validation_error" in bad.output, bad.output


def test_the_story(cli: Cli, tmp_path: Path) -> None:
    # a device, with tags; found by both filter styles; the CSV and quiet outputs
    device = cli.json("devices", "create", "gw-story", "--type", "gateway", "--tag", "env=test")
    assert device["name"] == "gw-story" and device["status"]
    by_field = cli.json("devices", "list", "--filter", "name__eq=gw-story")
    by_odata = cli.json("devices", "list", "--filter", "name eq 'gw-story'")
    assert [d["id"] for d in by_field] == [d["id"] for d in by_odata] == [device["id"]]
    selected = cli.json("devices", "list", "--select", "name", "-f", "name eq 'gw-story'")
    assert selected == [{"id": device["id"], "name": "gw-story"}]
    assert cli.run("devices", "list", "-q").stdout.split() == [device["id"]]
    csv = cli.run("devices", "list", "-o", "csv").stdout.splitlines()
    assert csv[0].startswith("id,name,status") and "env=test" in csv[1]

    # a rule that the simulated values break
    rule = cli.json(
        "alert-rules",
        "create",
        "too-hot",
        "--sensor",
        "temperature",
        "--condition",
        "> 30",
        "--device",
        "gw-story",
        "--severity",
        "MAJOR",
    )
    assert rule["condition"]["op"] == ">" and rule["scope"]["id"] == device["id"]

    # the device itself, provisioned and publishing over NATS for a few seconds
    simulated = cli.run(
        "device",
        "simulate",
        "--device",
        "gw-story",
        "--rate",
        "4",
        "--seconds",
        "4",
        "--value",
        "35",
        "--amplitude",
        "3",
        "--period",
        "4",
    )
    assert "refused 0" in simulated.output, simulated.output
    found = re.search(r"1 device\(s\) sent (\d+) messages", simulated.output)
    assert found, simulated.output
    sent = int(found.group(1))
    assert sent >= 12, simulated.output  # 4/s for 4 s, give or take the first round

    def stored() -> list[dict[str, Any]]:
        got = cli.json("readings", "gw-story", "--sensor", "temperature", "--since", "10m", "--raw")
        return got if len(got) >= sent else []

    raw = eventually(stored)
    assert len(raw) == sent, raw
    assert all(32 - 0.01 <= r["value"] <= 38 + 0.01 for r in raw)
    buckets = cli.json("readings", "gw-story", "--since", "10m", "--fn", "avg,max,count")
    assert sum(b["count"] for b in buckets) == len(raw)
    shown = cli.run("readings", "gw-story", "--since", "10m").stdout
    assert "temperature avg" in shown and any(c in shown for c in "▁▂▃▄▅▆▇█")
    drawn = cli.run("readings", "gw-story", "--since", "10m", "--raw", "--chart").stdout
    assert "temperature value per reading" in drawn
    axis = [line for line in drawn.splitlines() if "┤" in line]
    assert len(axis) == 8 and "█" in drawn, drawn  # the sine's top reaches the top row
    assert axis[0].split("┤")[1].strip() and axis[-1].split("┤")[1].strip(), drawn
    latest = cli.json("readings", "gw-story", "--latest")
    assert [r["sensor"] for r in latest] == ["temperature"]

    # the alert the rule opened, acknowledged from the terminal
    opened = eventually(
        lambda: [a for a in cli.json("alerts", "list") if a["ruleId"] == rule["id"]]
    )
    assert opened and opened[0]["status"] == "OPEN", opened
    acked = cli.json("alerts", "ack", opened[0]["id"], "--comment", "seen from the CLI")
    assert acked["status"] == "ACKNOWLEDGED"

    # the timeline, as `watch` streams it (the history, one JSON object a line)
    lines = cli.run("watch", "events", "--history", "--for", "0", "-o", "json").stdout
    events = [json.loads(line) for line in lines.splitlines() if line.strip()]
    assert any(e.get("alertId") == opened[0]["id"] for e in events), events

    # the audit log shows what the CLI did, the device and the rule
    audit = cli.json("audit-log", "list", "--all", "--order", "DESC")
    assert {device["id"], rule["id"]} <= {e["streamId"] for e in audit}


def test_a_session_profile_logs_in_by_email_and_refreshes_itself(
    cli: Cli, platform: dict[str, Any], tmp_path: Path
) -> None:
    email = f"ada-{tmp_path.name[-6:].lower()}@example.com"
    password = "correct horse battery staple"
    cli.run("users", "create", email, "--password", password, "--role", "admin")
    session = Cli(tmp_path / "session.yaml")
    session.run("login", "--url", platform["gatewayUrl"], "--email", email, "--password", password)
    me = session.json("whoami")
    assert me["kind"] == "session" and me.get("role") in ("admin", None), me
    assert isinstance(session.json("devices", "list"), list)

    # an access token the gateway refuses (its signature broken): the CLI refreshes it with
    # the refresh token, saves the new pair and carries on
    text = session.config.read_text()
    access = re.search(r"accessToken: (\S+)", text)
    assert access
    broken = access.group(1)[:-4] + ("AAAA" if not access.group(1).endswith("AAAA") else "BBBB")
    session.config.write_text(text.replace(access.group(1), broken))
    assert isinstance(session.json("devices", "list"), list)
    renewed = re.search(r"accessToken: (\S+)", session.config.read_text())
    assert renewed and renewed.group(1) not in (broken, access.group(1))
    assert stat.S_IMODE(session.config.stat().st_mode) == 0o600

    session.run("logout")
    assert "accessToken" not in session.config.read_text()


def test_simulate_over_mqtt_with_qos_1(cli: Cli) -> None:
    result = cli.run(
        "device",
        "simulate",
        "--count",
        "2",
        "--prefix",
        "mq",
        "--protocol",
        "mqtt",
        "--qos",
        "1",
        "--rate",
        "5",
        "--seconds",
        "2",
        "-q",
    )
    found = re.search(r"2 device\(s\) sent (\d+) messages", result.output)
    assert found, result.output
    sent = int(found.group(1))
    ids = [line for line in result.stdout.split() if len(line) == 36]
    assert len(ids) == 2 and sent >= 16, result.output

    def stored() -> int:
        total = 0
        for ident in ids:
            total += len(cli.json("readings", ident, "--since", "10m", "--raw"))
        return total if total >= sent else 0

    assert eventually(stored) == sent
