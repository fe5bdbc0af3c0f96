"""``outpost device simulate`` following a device's desired state against the running
platform (issue 21, ADR 0091): desired state set through the API reaches the simulated
device over the broker, it applies it and reports it back, and ``GET /devices/{id}/state``
shows an empty delta; run again with the credentials it kept and ``--drift``, the device
reports something else and the delta says what. ``?explain=true`` (``outpost state get
--explain``) names the device as the source of keys set through the API, and a device's
``profileId`` is refused when the fleet does not know it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._cli import Cli
from tests.e2e._poll import eventually
from tests.e2e.conftest import Tenants

pytestmark = pytest.mark.e2e


def test_the_simulator_applies_and_reports_desired_state_then_drifts(
    tenants: Tenants,
    raise_limits: Any,
    platform: dict[str, Any],
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    org = tenants.org("cli-state")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    auth = {"Authorization": f"Bearer {key}"}
    cli = Cli(tmp_path / "config.yaml")
    cli.run(
        "login",
        "--url",
        platform["gatewayUrl"],
        "--api-key",
        key,
        "--broker-ca",
        platform["brokerCaFile"],
    )
    device = cli.json("devices", "create", "gw-state")
    path = f"/api/v1/devices/{device['id']}/state"
    desired = {"led": True, "sampling": {"interval": 10}}
    changed = http.patch(path, json={"desired": desired}, headers=auth)
    assert changed.status_code == 200, changed.text

    keys = tmp_path / "keys"
    first = cli.run(
        "device",
        "simulate",
        "--device",
        "gw-state",
        "--no-telemetry",
        "--states",
        "1",
        "--seconds",
        "60",
        "--keys-dir",
        str(keys),
    )
    assert "1 desired state(s) applied and reported" in first.output, first.output

    def reported(want: dict[str, Any]) -> Any:
        """The device's state once devices recorded the report (it follows the broker)."""

        def check() -> Any:
            state = http.get(path, headers=auth).json()
            return state if state["reported"] == want else None

        return eventually(check) or http.get(path, headers=auth).json()

    state = reported(desired)
    assert state["desired"] == desired
    assert state["reported"] == desired
    assert state["delta"] == {}

    # Explained: both keys were set on the device itself (no binding applies).
    explained = cli.json("state", "get", "gw-state", "--explain")
    assert explained["explain"] == {
        "/led": {"source": "device"},
        "/sampling/interval": {"source": "device"},
    }
    assert "explain" not in state or state["explain"] is None

    # Again with the credentials it kept, reporting a drifted key.
    http.patch(path, json={"desired": {"fan": 2}}, headers=auth).raise_for_status()
    second = cli.run(
        "device",
        "simulate",
        "--connect",
        "--keys-dir",
        str(keys),
        "--no-telemetry",
        "--states",
        "1",
        "--seconds",
        "60",
        "--drift",
        "sampling.interval=5",
    )
    assert "1 desired state(s) applied and reported" in second.output, second.output
    state = reported({"led": True, "sampling": {"interval": 5}, "fan": 2})
    assert state["reported"] == {"led": True, "sampling": {"interval": 5}, "fan": 2}
    assert state["delta"] == {"sampling": {"interval": 10}}


def test_a_profile_id_the_fleet_cannot_resolve_changes_nothing(
    tenants: Tenants, raise_limits: Any, http: httpx.Client
) -> None:
    org = tenants.org("profile-id")
    raise_limits(org["id"])
    auth = {"Authorization": f"Bearer {tenants.key(org['id'])['key']}"}
    created = http.post("/api/v1/devices", json={"name": "gw-profile"}, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["profileId"] is None
    answer = http.patch(
        f"/api/v1/devices/{created.json()['id']}",
        json={"profileId": str(uuid.uuid4())},
        headers=auth,
    )
    # No such profile (400 on the field), or no fleet service answering yet (503): either
    # way a clear error and nothing changed.
    assert answer.status_code in (400, 503), answer.text
    body = answer.json()
    if answer.status_code == 400:
        assert [f["name"] for f in body["fields"]] == ["profileId"], body
    device = http.get(f"/api/v1/devices/{created.json()['id']}", headers=auth).json()
    assert device["version"] == 1 and device["profileId"] is None
    # The collection filters on it.
    none = http.get("/api/v1/devices", params={"profileId": str(uuid.uuid4())}, headers=auth)
    assert none.status_code == 200 and none.json()["data"] == [], none.text
