"""The fleet's desired state end to end (issue 21, ADR 0093): artefacts bound at organization,
group and device level reach each device as its effective desired state, explained key by key
(``GET /devices/{id}/state?explain=true``); a simulated device (``outpost device simulate``)
applies and reports it, and the binding's compliance counts move (pending, in sync, drifted);
the drift is on the organization's timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._cli import Cli
from tests.e2e._poll import eventually
from tests.e2e.conftest import Tenants

pytestmark = pytest.mark.e2e


def _created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_bindings_at_three_levels_explained_delivered_and_counted(
    tenants: Tenants,
    raise_limits: Any,
    platform: dict[str, Any],
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    org = tenants.org("fleet-state")
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

    group = _created(http.post("/api/v1/device-groups", json={"name": "north"}, headers=auth))
    d1 = cli.json("devices", "create", "fleet-d1")
    d2 = _created(
        http.post(
            "/api/v1/devices", json={"name": "fleet-d2", "groupId": group["id"]}, headers=auth
        )
    )
    d3 = _created(http.post("/api/v1/devices", json={"name": "fleet-d3"}, headers=auth))
    moved = http.patch(f"/api/v1/devices/{d1['id']}", json={"groupId": group["id"]}, headers=auth)
    assert moved.status_code == 200, moved.text

    def artefact(name: str, document: dict[str, Any]) -> str:
        body = {"name": name, "document": document}
        return str(_created(http.post("/api/v1/config-artefacts", json=body, headers=auth))["id"])

    def bind(artefact_id: str, target: dict[str, Any]) -> str:
        body = {"artefactId": artefact_id, "target": target}
        answer = http.post("/api/v1/desired-state-bindings", json=body, headers=auth)
        return str(_created(answer)["id"])

    base = artefact("base", {"sampling": {"interval": 60, "unit": "s"}, "led": True})
    fast = artefact("fast", {"sampling": {"interval": 10}})
    debug = artefact("debug", {"led": None, "debug": True})
    b_org = bind(base, {"type": "ORGANIZATION"})
    b_group = bind(fast, {"type": "GROUP", "id": group["id"]})
    b_device = bind(debug, {"type": "DEVICE", "id": d1["id"]})

    def state(device: dict[str, Any], explain: bool = False) -> dict[str, Any]:
        params = {"explain": "true"} if explain else {}
        answer = http.get(f"/api/v1/devices/{device['id']}/state", params=params, headers=auth)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    want_d1 = {"sampling": {"interval": 10, "unit": "s"}, "debug": True}
    got = eventually(
        lambda: state(d1, explain=True) if state(d1)["desired"] == want_d1 else None, 60
    )
    assert got, state(d1, explain=True)
    assert got["desired"] == want_d1
    explain = got["explain"]
    assert set(explain) == {"/sampling/interval", "/sampling/unit", "/debug"}
    assert explain["/sampling/interval"]["source"] == "binding"
    assert explain["/sampling/interval"]["bindingId"] == b_group
    assert explain["/sampling/interval"]["targetType"] == "GROUP"
    assert explain["/sampling/interval"]["artefactId"] == fast
    assert explain["/sampling/interval"]["artefactVersion"] == 1
    assert explain["/sampling/unit"]["bindingId"] == b_org
    assert explain["/sampling/unit"]["targetType"] == "ORGANIZATION"
    assert explain["/debug"]["bindingId"] == b_device
    assert explain["/debug"]["targetType"] == "DEVICE"

    want_d2 = {"sampling": {"interval": 10, "unit": "s"}, "led": True}
    want_d3 = {"sampling": {"interval": 60, "unit": "s"}, "led": True}
    assert eventually(lambda: state(d2)["desired"] == want_d2, 60), state(d2)
    assert eventually(lambda: state(d3)["desired"] == want_d3, 60), state(d3)
    explained = state(d3, explain=True)["explain"]
    assert {p: e["bindingId"] for p, e in explained.items()} == {
        "/sampling/interval": b_org,
        "/sampling/unit": b_org,
        "/led": b_org,
    }

    def status(binding: str) -> dict[str, Any]:
        answer = http.get(f"/api/v1/desired-state-bindings/{binding}/status", headers=auth)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    counts = ("targeted", "inSync", "drifted", "pending")
    assert [status(b_org)[k] for k in counts] == [3, 0, 0, 3]
    assert [status(b_device)[k] for k in counts] == [1, 0, 0, 1]

    # d1 applies its desired state and reports it: in sync for every binding it has.
    keys = tmp_path / "keys"
    first = cli.run(
        "device",
        "simulate",
        "--device",
        "fleet-d1",
        "--no-telemetry",
        "--states",
        "1",
        "--seconds",
        "60",
        "--keys-dir",
        str(keys),
    )
    assert "1 desired state(s) applied and reported" in first.output, first.output
    assert eventually(lambda: status(b_org)["inSync"] == 1, 30), status(b_org)
    assert [status(b_org)[k] for k in counts] == [3, 1, 0, 2]
    assert [status(b_group)[k] for k in counts] == [2, 1, 0, 1]
    assert [status(b_device)[k] for k in counts] == [1, 1, 0, 0]
    version = http.get(f"/api/v1/config-artefacts/{fast}/versions/1/status", headers=auth)
    assert version.status_code == 200, version.text
    assert [version.json()[k] for k in counts] == [2, 1, 0, 1]

    # The group's binding gets a new version ("latest"): d1 and d2 get it; d1 reports
    # something else for the group's key: drifted for the group's binding only.
    published = http.post(
        f"/api/v1/config-artefacts/{fast}/versions",
        json={"document": {"sampling": {"interval": 5}}},
        headers=auth,
    )
    assert published.status_code in (200, 201), published.text
    assert eventually(lambda: state(d1)["desired"]["sampling"]["interval"] == 5, 60), state(d1)
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
        "sampling.interval=7",
    )
    assert "1 desired state(s) applied and reported" in second.output, second.output
    assert eventually(lambda: status(b_group)["drifted"] == 1, 30), status(b_group)
    assert [status(b_group)[k] for k in counts] == [2, 0, 1, 1]
    assert status(b_device)["inSync"] == 1  # its key (/debug) is as desired

    # In sync, then something else: the drift is on the timeline. (The second report drifted
    # from a state d1 had not reported yet, so it is not a drift *from in sync*; a third
    # report, in sync, then a fourth that drifts, is.) Each run is given a new desired state
    # by a key of the device's own (``fan``), which the fleet does not compare.
    http.patch(
        f"/api/v1/devices/{d1['id']}/state", json={"desired": {"fan": 1}}, headers=auth
    ).raise_for_status()
    cli.run(
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
    )
    assert eventually(lambda: status(b_group)["inSync"] == 1, 30), status(b_group)
    http.patch(
        f"/api/v1/devices/{d1['id']}/state", json={"desired": {"fan": 2}}, headers=auth
    ).raise_for_status()
    cli.run(
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
        "debug=false",
    )

    def drift_on_timeline() -> list[dict[str, Any]]:
        page = http.get("/api/v1/events", params={"limit": 100}, headers=auth).json()
        return [
            e
            for e in page["data"]
            if e["type"] == "fleet.DeviceConfigDrifted.v1" and e.get("deviceId") == d1["id"]
        ]

    entries = eventually(drift_on_timeline, 60)
    assert entries, http.get("/api/v1/events", headers=auth).json()
    assert "/debug" in entries[0]["summary"]
