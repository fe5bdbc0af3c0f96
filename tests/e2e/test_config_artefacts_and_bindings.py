"""Config artefacts, their versions and desired-state bindings through the gateway (ADR
0090): an artefact with a JSON Schema, new versions with If-Match (412 when stale), old
versions readable, documents checked (schema, 256 KiB, the body limit), bindings on the
organization, a group and a device, the list filters, deletes refused while in use (409),
another organization's ids (404), the audit log, and the scopes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._cli import Cli
from tests.e2e._keys import scoped_key

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "properties": {"sampling": {"type": "object", "properties": {"interval": {"type": "integer"}}}},
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["object"] == "error" and body["type"] == kind, body
    return body


def test_artefacts_versions_bindings_and_isolation(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org, other = tenants.org("fleet"), tenants.org("fleet-other")
    raise_limits(org["id"])
    key = bearer(tenants.key(org["id"])["key"])
    their_key = bearer(tenants.key(other["id"])["key"])
    artefacts = "/api/v1/config-artefacts"

    made = ok(
        http.post(
            artefacts,
            json={"name": "sampling", "document": {"sampling": {"interval": 60}}, "schema": SCHEMA},
            headers=key,
        ),
        201,
    )
    assert (made["object"], made["version"], made["versionCount"]) == ("configArtefact", 1, 1)
    error(
        http.post(artefacts, json={"name": "sampling", "document": {}}, headers=key),
        409,
        "conflict",
    )
    # A document the schema refuses, one over 256 KiB, a body over the gateway's limit.
    bad = error(
        http.post(
            artefacts,
            json={"name": "b", "document": {"sampling": {"interval": "often"}}, "schema": SCHEMA},
            headers=key,
        ),
        400,
        "validation_error",
    )
    assert bad["fields"][0]["name"] == "document" and "/sampling/interval" in str(bad["fields"])
    big = {"name": "big", "document": {"blob": "x" * (300 * 1024)}}
    error(http.post(artefacts, json=big, headers=key), 400, "validation_error")
    huge = {"name": "huge", "document": {"blob": "x" * (2 * 1024 * 1024)}}
    error(http.post(artefacts, json=huge, headers=key), 413, "payload_too_large")

    item = f"{artefacts}/{made['id']}"
    got = http.get(item, headers=key)
    assert ok(got)["document"] == {"sampling": {"interval": 60}} and got.headers["etag"] == '"1"'
    versions = f"{item}/versions"
    v2 = http.post(
        versions,
        json={"document": {"sampling": {"interval": 10}}},
        headers={**key, "If-Match": '"1"'},
    )
    assert ok(v2, 201)["version"] == 2 and v2.headers["etag"] == '"2"'
    assert ok(v2, 201)["schema"] == SCHEMA  # kept from version 1
    error(
        http.post(versions, json={"document": {}}, headers={**key, "If-Match": '"1"'}),
        412,
        "precondition_failed",
    )
    listed = ok(http.get(versions, headers=key))
    assert [v["version"] for v in listed["data"]] == [1, 2]
    assert "document" not in listed["data"][0]
    first = ok(http.get(f"{versions}/1", headers=key))
    assert first["document"] == {"sampling": {"interval": 60}}
    summary = ok(http.get(artefacts, params={"name": "sampling"}, headers=key))
    assert [(a["name"], a["version"]) for a in summary["data"]] == [("sampling", 2)]

    # Bindings on the organization (latest), a group (version 1) and a device.
    group = ok(http.post("/api/v1/device-groups", json={"name": "north"}, headers=key), 201)
    device = ok(http.post("/api/v1/devices", json={"name": "fleet-d1"}, headers=key), 201)
    bindings = "/api/v1/desired-state-bindings"

    def bind(**body: Any) -> dict[str, Any]:
        return dict(
            ok(http.post(bindings, json={"artefactId": made["id"], **body}, headers=key), 201)
        )

    on_org = bind(target={"type": "ORGANIZATION"})
    on_group = bind(target={"type": "GROUP", "id": group["id"]}, artefactVersion=1, priority=10)
    on_device = bind(target={"type": "DEVICE", "id": device["id"]})
    assert on_org["artefactVersion"] == "latest" and on_group["artefactVersion"] == 1
    assert on_group["object"] == "desiredStateBinding"
    error(
        http.post(
            bindings,
            json={"artefactId": made["id"], "target": {"type": "DEVICE", "id": str(uuid.uuid4())}},
            headers=key,
        ),
        404,
        "not_found",
    )
    page = ok(http.get(bindings, params={"target.type": "GROUP"}, headers=key))
    assert [b["id"] for b in page["data"]] == [on_group["id"]]
    page = ok(http.get(bindings, params={"$filter": f"targetId eq {device['id']}"}, headers=key))
    assert [b["id"] for b in page["data"]] == [on_device["id"]]
    changed = http.patch(
        f"{bindings}/{on_group['id']}",
        json={"priority": 20},
        headers={**key, "If-Match": '"1"'},
    )
    assert ok(changed)["priority"] == 20 and changed.headers["etag"] == '"2"'
    error(
        http.patch(
            f"{bindings}/{on_group['id']}",
            json={"priority": 30},
            headers={**key, "If-Match": '"1"'},
        ),
        412,
        "precondition_failed",
    )

    # In use: version 1 (pinned), version 2 (the latest, followed), the artefact.
    for path in (f"{versions}/1", f"{versions}/2", item):
        used = error(http.delete(path, headers=key), 409, "conflict")
        assert used["details"]["usedBy"], used

    # Another organization sees none of it, and cannot bind it.
    error(http.get(item, headers=their_key), 404, "not_found")
    error(http.get(f"{bindings}/{on_org['id']}", headers=their_key), 404, "not_found")
    error(
        http.post(
            bindings,
            json={"artefactId": made["id"], "target": {"type": "ORGANIZATION"}},
            headers=their_key,
        ),
        404,
        "not_found",
    )
    error(
        http.delete(f"{bindings}/{on_org['id']}", headers={**their_key, "If-Match": '"9"'}),
        404,
        "not_found",
    )

    # Unbind, then the artefact goes with its versions.
    for b in (on_org, on_group, on_device):
        ok(http.delete(f"{bindings}/{b['id']}", headers=key), 204)
    ok(http.delete(item, headers={**key, "If-Match": '"2"'}), 204)
    error(http.get(f"{versions}/1", headers=key), 404, "not_found")

    # The audit log has each change, by whom.
    log = ok(http.get("/api/v1/audit-log", params={"limit": 100}, headers=key))
    fleet = [e["type"] for e in log["data"] if e["service"] == "fleet"]
    for kind in (
        "fleet.ConfigArtefactCreated.v1",
        "fleet.ConfigArtefactVersionPublished.v1",
        "fleet.DesiredStateBindingCreated.v1",
        "fleet.DesiredStateBindingChanged.v1",
        "fleet.DesiredStateBindingRemoved.v1",
        "fleet.ConfigArtefactDeleted.v1",
    ):
        assert kind in fleet, fleet


def test_fleet_scopes(http: httpx.Client, tenants: Any, platform: dict[str, Any]) -> None:
    org = tenants.org("fleet-scopes")
    reader = bearer(scoped_key(http, platform, org["id"], ["fleet:read"]))
    devices_only = bearer(scoped_key(http, platform, org["id"], ["devices:*", "fleet:read"]))
    ok(http.get("/api/v1/config-artefacts", headers=reader))
    ok(http.get("/api/v1/desired-state-bindings", headers=devices_only))
    error(
        http.post("/api/v1/config-artefacts", json={"name": "x", "document": {}}, headers=reader),
        403,
        "access_denied",
    )
    error(
        http.post(
            "/api/v1/desired-state-bindings",
            json={"artefactId": str(uuid.uuid4()), "target": {"type": "ORGANIZATION"}},
            headers=devices_only,
        ),
        403,
        "access_denied",
    )


def test_the_cli_creates_an_artefact_and_binds_it(
    tmp_path: Path, platform: dict[str, Any], tenants: Any
) -> None:
    org = tenants.org("fleet-cli")
    cli = Cli(tmp_path / "config.yaml")
    cli.run("login", "--url", platform["gatewayUrl"], "--api-key", tenants.key(org["id"])["key"])
    made = cli.json("config-artefacts", "create", "sampling", "--set", 'document={"interval": 60}')
    assert made["version"] == 1 and made["document"] == {"interval": 60}
    bound = cli.json(
        "bindings", "create",
        "--set", f"artefactId={made['id']}", "--set", "target.type=ORGANIZATION",
    )  # fmt: skip
    assert bound["artefactVersion"] == "latest"
    assert bound["target"] == {"type": "ORGANIZATION", "id": None}
    listed = cli.json("bindings", "list", "--filter", f"artefactId={made['id']}")
    assert [b["id"] for b in listed] == [bound["id"]]
