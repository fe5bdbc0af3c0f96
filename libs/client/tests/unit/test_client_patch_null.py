"""PATCH bodies through the typed client and the CLI (decision 73): a field left out stays
out (the server leaves it unchanged), a field set to None is sent as ``null`` (the server
clears it) wherever the API makes the difference; the bodies are read off the wire of a
fake transport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from outpost_client import AsyncClient, Client, _generated
from outpost_client.cli import context
from outpost_client.cli.app import app
from outpost_client.models import (
    UNSET,
    AlertRulePatch,
    Condition,
    DeviceGroupPatch,
    DevicePatch,
    DeviceView,
    SensorPatch,
    SetRateLimits,
    SitePatch,
)

pytestmark = pytest.mark.unit

DEVICE = "01900000-0000-7000-8000-000000000001"
GROUP = "01900000-0000-7000-8000-0000000000aa"
RULE = "01900000-0000-7000-8000-0000000000bb"


class Wire:
    """A fake gateway that keeps what each request sent (it answers 204: nothing to
    decode, so the test is about the request alone)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        return httpx.Response(204)

    def bodies(self) -> list[Any]:
        return [body for _, _, body in self.sent]


def _device(wire: Wire, patch: DevicePatch) -> None:
    with Client("http://gw", "sk_live_k", transport=httpx.MockTransport(wire)) as api:
        api.update_device(DEVICE, body=patch)


@pytest.mark.parametrize(
    ("patch", "sent"),
    [
        (DevicePatch(), {}),
        (DevicePatch(group_id=None), {"groupId": None}),
        (DevicePatch(site_id=None, group_id=UNSET), {"siteId": None}),
        (DevicePatch(device_type="router"), {"deviceType": "router"}),
        (
            DevicePatch(group_id=UUID(GROUP), tags=None),
            {"groupId": GROUP, "tags": None},
        ),
        # ``name`` cannot be null: None leaves it out, as before
        (DevicePatch(name=None, attributes=None), {"attributes": None}),
    ],
)
def test_a_device_patch_sends_null_only_for_what_was_set_to_none(
    patch: DevicePatch, sent: dict[str, Any]
) -> None:
    wire = Wire()
    _device(wire, patch)
    assert wire.bodies() == [sent]


def test_the_generated_update_methods_send_the_patch_as_given() -> None:
    wire = Wire()
    transport = httpx.MockTransport(wire)
    with Client("http://gw", "sk_live_k", transport=transport) as api:
        api.update_device(DEVICE, body=DevicePatch(group_id=None), if_match='"3"')
        api.update_alert_rule(RULE, body=AlertRulePatch(clear=None, description=None))
        api.update_alert_rule(RULE, body=AlertRulePatch(hysteresis=None, sensor=None))
        api.update_alert_rule(RULE, body=AlertRulePatch(name="renamed"))
        api.update_alert_rule(
            RULE, body=AlertRulePatch(clear=Condition(op="<", threshold=20.0), description="x")
        )
        api.update_device_group(GROUP, body=DeviceGroupPatch(description=None))
        api.update_site(GROUP, body=SitePatch(location=None, timezone=None))
        api.update_sensor(GROUP, body=SensorPatch(valid_range=None, unit=UNSET))
    assert wire.sent == [
        ("PATCH", f"/api/v1/devices/{DEVICE}", {"groupId": None}),
        ("PATCH", f"/api/v1/alert-rules/{RULE}", {"clear": None, "description": None}),
        ("PATCH", f"/api/v1/alert-rules/{RULE}", {"hysteresis": None, "sensor": None}),
        ("PATCH", f"/api/v1/alert-rules/{RULE}", {"name": "renamed"}),
        (
            "PATCH",
            f"/api/v1/alert-rules/{RULE}",
            {"clear": {"op": "<", "threshold": 20.0}, "description": "x"},
        ),
        ("PATCH", f"/api/v1/device-groups/{GROUP}", {"description": None}),
        ("PATCH", f"/api/v1/sites/{GROUP}", {"location": None, "timezone": None}),
        ("PATCH", f"/api/v1/sensors/{GROUP}", {"validRange": None}),
    ]


def test_the_async_client_sends_null_too() -> None:
    wire = Wire()

    async def run() -> None:
        transport = httpx.MockTransport(wire)
        async with AsyncClient("http://gw", "sk_live_k", transport=transport) as api:
            await api.update_device(DEVICE, body=DevicePatch(group_id=None))
            await api.update_alert_rule(RULE, body=AlertRulePatch(enabled=False))

    asyncio.run(run())
    assert wire.bodies() == [{"groupId": None}, {"enabled": False}]


def test_a_mapping_body_is_sent_as_it_is() -> None:
    wire = Wire()
    with Client("http://gw", "sk_live_k", transport=httpx.MockTransport(wire)) as api:
        api.update_device(DEVICE, body={"groupId": None})
    assert wire.bodies() == [{"groupId": None}]


def test_only_patch_bodies_tell_absent_from_null() -> None:
    """UNSET defaults are for what is sent in a PATCH; a response model reads an absent
    field as None, and a body whose null means the default (PUT rate limits) leaves None
    out."""
    unset = {
        name
        for name in _generated.SCHEMAS
        for f in msgspec.structs.fields(getattr(_generated, name))
        if f.default is UNSET
    }
    assert unset == {
        "AlertRulePatch", "AnnotationClassPatch", "AnnotationPatch", "ComponentPatch",
        "DeviceGroupPatch", "DevicePatch", "SensorPatch", "SitePatch",
        "DeviceProfilePatch", "PackPatch", "SensorProfilePatch", "ReferencePairPatch",
    }  # fmt: skip
    view = msgspec.json.decode(
        b'{"id": "%s", "name": "gw", "status": "ACTIVE", "version": 1,'
        b' "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}'
        % DEVICE.encode(),
        type=DeviceView,
    )
    assert view.group_id is None and view.site_id is None
    assert msgspec.json.encode(SetRateLimits(single=None, list_=5)) == b'{"list":5}'


# -- the CLI: ``--set field=null`` ------------------------------------------------------


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wire: Wire, *args: str) -> Any:
    def client(self: context.State, profile: Any = None) -> Client:
        chosen = profile or self.profile()
        return Client(chosen.url, chosen.token, transport=httpx.MockTransport(wire))

    monkeypatch.setattr(context.State, "client", client)
    env = {"OUTPOST_CONFIG": str(tmp_path / "c.yaml"), "OUTPOST_API_KEY": "sk_live_k"}
    return CliRunner().invoke(app, [*args, "-o", "json"], env=env)


@pytest.mark.parametrize(
    ("args", "path", "sent"),
    [
        (
            ["devices", "update", DEVICE, "--set", "groupId=null", "--set", "siteId=null"],
            f"/api/v1/devices/{DEVICE}",
            {"groupId": None, "siteId": None},
        ),
        (
            ["devices", "update", DEVICE, "--set", "deviceType=router"],
            f"/api/v1/devices/{DEVICE}",
            {"deviceType": "router"},
        ),
        (
            ["alert-rules", "update", RULE, "--set", "clear=null", "--set", "description=null"],
            f"/api/v1/alert-rules/{RULE}",
            {"clear": None, "description": None},
        ),
        (
            ["alert-rules", "update", RULE, "--set", "hysteresis=null", "--set", "sensor=null"],
            f"/api/v1/alert-rules/{RULE}",
            {"hysteresis": None, "sensor": None},
        ),
        # the text "null" is quoted JSON
        (
            ["alert-rules", "update", RULE, "--set", 'description="null"'],
            f"/api/v1/alert-rules/{RULE}",
            {"description": "null"},
        ),
        (
            ["groups", "update", GROUP, "--set", "description=null"],
            f"/api/v1/device-groups/{GROUP}",
            {"description": None},
        ),
        (
            ["sites", "update", GROUP, "--set", "timezone=null", "--set", "location=null"],
            f"/api/v1/sites/{GROUP}",
            {"timezone": None, "location": None},
        ),
        (
            ["sensors", "update", GROUP, "--set", "validRange=null"],
            f"/api/v1/sensors/{GROUP}",
            {"validRange": None},
        ),
        (
            ["devices", "update", DEVICE, "--data", '{"groupId": null}'],
            f"/api/v1/devices/{DEVICE}",
            {"groupId": None},
        ),
    ],
)
def test_update_with_set_null_sends_null(
    args: list[str],
    path: str,
    sent: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = Wire()
    result = _cli(monkeypatch, tmp_path, wire, *args)
    assert result.exit_code == 0, result.output
    assert wire.sent == [("PATCH", path, sent)]
