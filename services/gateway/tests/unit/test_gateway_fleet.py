"""Config artefacts, their versions and desired-state bindings (ADR 0090) against the fake
backend: bodies checked at the edge, what each route sends (the version routes are written
by hand), If-Match and ETag, the filters of the bindings' list, the body limit, scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import pytest
from gateway_testkit import FakeBackend, bearer, build_world, key_created
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts import fleet as api
from outpost_contracts.base import Empty
from outpost_contracts.query import Cmp, Page
from outpost_gateway.domain.credentials import evolve
from outpost_gateway.domain.policy import policy_for

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def artefact(version: int = 1) -> api.ConfigArtefactView:
    return api.ConfigArtefactView(
        id=uuid4(),
        name="sampling",
        version=version,
        version_count=version,
        created_at=T0,
        updated_at=T0,
        document={"interval": 60},
    )


def version_view(n: int = 2) -> api.ConfigArtefactVersionView:
    return api.ConfigArtefactVersionView(
        artefact_id=uuid4(), version=n, size_bytes=15, created_at=T0, document={"interval": 5}
    )


def binding(version: int = 1) -> api.DesiredStateBindingView:
    return api.DesiredStateBindingView(
        id=uuid4(),
        artefact_id=uuid4(),
        artefact_version="latest",
        target=api.Target(type=api.TargetType.GROUP, id=uuid4()),
        priority=0,
        created_at=T0,
        updated_at=T0,
        version=version,
    )


def test_artefacts_are_created_and_read_with_their_latest_version(env: Env) -> None:
    h = bearer(env.world.full)
    for body, field in [
        ({"name": "x"}, "document"),
        ({"name": "", "document": {}}, "name"),
        ({"name": "x", "document": [1]}, "document"),
        ({"name": "x", "document": {}, "version": 3}, "version"),
    ]:
        resp = env.client.post("/api/v1/config-artefacts", json=body, headers=h)
        assert field in assert_error(resp, 400, "validation_error")["message"]
    assert env.backend.calls == []
    made = artefact()
    env.backend.on(api.CREATE_CONFIG_ARTEFACT, made)
    resp = env.client.post(
        "/api/v1/config-artefacts",
        json={"name": "sampling", "document": {"interval": 60}, "schema": {"type": "object"}},
        headers=h,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["object"] == "configArtefact" and resp.json()["document"] == {"interval": 60}
    assert env.backend.last.body.schema == {"type": "object"}
    env.backend.on(api.GET_CONFIG_ARTEFACT, artefact(version=3))
    got = env.client.get(f"/api/v1/config-artefacts/{made.id}", headers=h)
    assert got.status_code == 200 and got.headers["etag"] == '"3"'
    env.backend.on(api.DELETE_CONFIG_ARTEFACT, Empty())
    gone = env.client.delete(
        f"/api/v1/config-artefacts/{made.id}", headers={**h, "If-Match": '"3"'}
    )
    assert gone.status_code == 204
    assert env.backend.last.body == api.DeleteConfigArtefact(id=made.id, expected_version=3)
    # No PATCH: every change is a new version.
    patched = env.client.patch(f"/api/v1/config-artefacts/{made.id}", json={}, headers=h)
    assert patched.status_code == 405


def test_versions_are_published_listed_read_and_deleted(env: Env) -> None:
    h = bearer(env.world.full)
    artefact_id = uuid4()
    base = f"/api/v1/config-artefacts/{artefact_id}/versions"
    env.backend.on(api.PUBLISH_CONFIG_ARTEFACT_VERSION, version_view(2))
    resp = env.client.post(base, json={"document": {"a": 1}}, headers={**h, "If-Match": '"1"'})
    assert resp.status_code == 201 and resp.headers["etag"] == '"2"'
    sent = env.backend.last.body
    assert (sent.id, sent.document, sent.expected_version) == (artefact_id, {"a": 1}, 1)
    assert sent.schema is msgspec.UNSET  # absent: the latest schema is kept
    env.client.post(base, json={"document": {"a": 1}, "schema": None}, headers=h)
    assert env.backend.last.body.schema is None  # null: dropped
    for body in ({}, {"document": {}, "name": "x"}, {"document": "text"}):
        assert_error(env.client.post(base, json=body, headers=h), 400, "validation_error")
    env.backend.on(api.LIST_CONFIG_ARTEFACT_VERSIONS, Page(data=[version_view(1)], limit=50))
    listed = env.client.get(base, params={"after": "1", "limit": "5"}, headers=h)
    assert listed.status_code == 200, listed.text
    q = env.backend.last.body
    assert (q.id, q.query.after, q.query.limit) == (artefact_id, "1", 5)
    env.backend.on(api.GET_CONFIG_ARTEFACT_VERSION, version_view(2))
    got = env.client.get(f"{base}/2", headers=h)
    assert got.status_code == 200 and got.json()["document"] == {"interval": 5}
    assert env.backend.last.body == api.GetConfigArtefactVersion(id=artefact_id, version=2)
    env.backend.on(api.DELETE_CONFIG_ARTEFACT_VERSION, Empty())
    assert env.client.delete(f"{base}/2", headers=h).status_code == 204
    calls = len(env.backend.calls)
    for bad in ("0", "x", "-1"):
        assert env.client.get(f"{base}/{bad}", headers=h).status_code in (400, 404)
    assert len(env.backend.calls) == calls


def test_bindings_check_the_body_pass_if_match_and_filter(env: Env) -> None:
    h = bearer(env.world.full)
    artefact_id, group = str(uuid4()), str(uuid4())
    for body in (
        {"artefactId": artefact_id},  # no target
        {"artefactId": artefact_id, "target": {"type": "FLEET"}},
        {"artefactId": artefact_id, "target": {"type": "GROUP", "id": group}, "priority": 1001},
        {"artefactId": artefact_id, "target": {"type": "GROUP"}, "artefactVersion": "newest"},
        {"artefactId": artefact_id, "target": {"type": "GROUP"}, "artefactVersion": 0},
        {"artefactId": artefact_id, "target": {"type": "GROUP", "name": "g"}},
    ):
        resp = env.client.post("/api/v1/desired-state-bindings", json=body, headers=h)
        assert_error(resp, 400, "validation_error")
    assert env.backend.calls == []
    made = binding()
    env.backend.on(api.CREATE_DESIRED_STATE_BINDING, made)
    resp = env.client.post(
        "/api/v1/desired-state-bindings",
        json={"artefactId": artefact_id, "target": {"type": "GROUP", "id": group}},
        headers=h,
    )
    assert resp.status_code == 201 and resp.json()["artefactVersion"] == "latest"
    sent = env.backend.last.body
    assert (sent.artefact_version, sent.priority, str(sent.target.id)) == ("latest", 0, group)
    env.backend.on(api.UPDATE_DESIRED_STATE_BINDING, binding(version=2))
    resp = env.client.patch(
        f"/api/v1/desired-state-bindings/{made.id}",
        json={"artefactVersion": 3, "priority": -5},
        headers={**h, "If-Match": '"1"'},
    )
    assert resp.status_code == 200 and resp.headers["etag"] == '"2"'
    cmd = env.backend.last.body
    assert (cmd.patch.artefact_version, cmd.patch.priority, cmd.expected_version) == (3, -5, 1)
    moved = env.client.patch(
        f"/api/v1/desired-state-bindings/{made.id}", json={"target": {"type": "DEVICE"}}, headers=h
    )
    assert_error(moved, 400, "validation_error")
    env.backend.on(api.LIST_DESIRED_STATE_BINDINGS, Page(data=[made], limit=50))
    resp = env.client.get(
        "/api/v1/desired-state-bindings",
        params={"target.type": "GROUP", "artefactId": artefact_id},
        headers=h,
    )
    assert resp.status_code == 200, resp.text
    leaves = env.backend.last.body.query.filter.items
    assert Cmp(field="target.type", op="eq", value="GROUP") in leaves
    assert Cmp(field="artefactId", op="eq", value=artefact_id) in leaves


def test_a_body_over_the_gateway_limit_is_413(env: Env) -> None:
    big = {"name": "big", "document": {"blob": "x" * (2 * 1024 * 1024)}}
    resp = env.client.post("/api/v1/config-artefacts", json=big, headers=bearer(env.world.full))
    assert_error(resp, 413, "payload_too_large")
    assert env.backend.calls == []


def test_scopes(env: Env) -> None:
    reader, e = key_created(env.world.org_a, ("fleet:read",))
    evolve(env.world.cache, e)
    env.backend.on(api.LIST_CONFIG_ARTEFACTS, Page(data=[], limit=50))
    env.backend.on(api.LIST_CONFIG_ARTEFACT_VERSIONS, Page(data=[], limit=50))
    assert env.client.get("/api/v1/config-artefacts", headers=bearer(reader)).status_code == 200
    versions = f"/api/v1/config-artefacts/{uuid4()}/versions"
    assert env.client.get(versions, headers=bearer(reader)).status_code == 200
    for method, path, body in (
        ("POST", "/api/v1/config-artefacts", {"name": "x", "document": {}}),
        ("POST", versions, {"document": {}}),
        ("DELETE", f"{versions}/1", None),
        ("PATCH", f"/api/v1/desired-state-bindings/{uuid4()}", {"priority": 1}),
    ):
        resp = env.client.request(method, path, json=body, headers=bearer(reader))
        assert_error(resp, 403, "access_denied")
    # devices:read (the world's reader) reads no fleet configuration
    resp = env.client.get("/api/v1/desired-state-bindings", headers=bearer(env.world.reader))
    assert_error(resp, 403, "access_denied")
    assert policy_for("GET", "/api/v1/config-artefacts/{id}/versions/{version}") == "fleet:read"
    assert policy_for("POST", "/api/v1/desired-state-bindings") == "fleet:write"
