"""Export routes against the fake backend: 201 on create, bodies checked at the edge, a
READY export's fresh signed ``downloadUrl``, the download streamed without an Authorization
header from a fake object store, refused links (403) and an archive gone (404), scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import urlparse
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world, key_created
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error

from outpost_contracts.base import Empty
from outpost_contracts.errors import NotFound
from outpost_contracts.exports import (
    CREATE_EXPORT,
    DELETE_EXPORT,
    GET_ARTIFACT,
    GET_EXPORT,
    ArtifactLocation,
    ExportStatus,
    ExportView,
    Format,
    Include,
    ScopeType,
)
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.credentials import evolve
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ARCHIVE = [b"PK\x03\x04 first chunk ", b"second chunk ", b"the end"]


class FakeArtifacts:
    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []

    async def open(self, bucket: str, name: str) -> AsyncIterator[bytes]:
        self.opened.append((bucket, name))

        async def chunks() -> AsyncIterator[bytes]:
            for chunk in ARCHIVE:
                yield chunk

        return chunks()


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    app = create_app(
        GatewaySettings(max_body_bytes=4096),
        backend,
        world.cache,
        clock=lambda: T0,
        artifacts=FakeArtifacts(),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def view(status: ExportStatus = ExportStatus.READY) -> ExportView:
    return ExportView(
        id=uuid4(),
        scope_type=ScopeType.DEVICE,
        scope_id=uuid4(),
        from_=T0,
        to=T0,
        includes=[Include.READINGS],
        format=Format.CSV,
        status=status,
        requested_by=uuid4(),
        created_at=T0,
        updated_at=T0,
        version=3,
        size_bytes=sum(map(len, ARCHIVE)),
    )


def test_create_answers_201_and_checks_bodies_at_the_edge(env: Env) -> None:
    env.backend.on(CREATE_EXPORT, view(ExportStatus.PENDING))
    body = {
        "scopeType": "DEVICE",
        "scopeId": str(uuid4()),
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
    }
    resp = env.client.post("/api/v1/exports", json=body, headers=bearer(env.world.full))
    assert resp.status_code == 201 and resp.json()["status"] == "PENDING", resp.text
    assert resp.headers["etag"] == '"3"'
    sent = env.backend.last.body
    assert sent.format == Format.CSV and sent.includes == [Include.READINGS]
    calls = len(env.backend.calls)
    for bad, field in (
        ({**body, "format": "XLSX"}, "format"),
        ({**body, "from": "2026-01-01T00:00:00"}, "from"),
        ({**body, "status": "READY"}, "status"),
        ({**body, "scopeType": "PLANET"}, "scopeType"),
    ):
        resp = env.client.post("/api/v1/exports", json=bad, headers=bearer(env.world.full))
        assert_error(resp, 400, "validation_error")
        assert field in resp.text
    assert len(env.backend.calls) == calls


def test_a_ready_export_gets_a_fresh_link_that_downloads_without_a_header(env: Env) -> None:
    ready = view()
    env.backend.on(GET_EXPORT, ready)
    env.backend.on(
        GET_ARTIFACT,
        ArtifactLocation(
            id=ready.id,
            bucket="outpost-exports",
            object_name=f"o/{ready.id}/1.zip",
            size_bytes=ready.size_bytes or 0,
            file_name=f"export-{ready.id}.zip",
        ),
    )
    got = env.client.get(f"/api/v1/exports/{ready.id}", headers=bearer(env.world.full)).json()
    url = urlparse(got["downloadUrl"])
    assert url.path == f"/api/v1/exports/{ready.id}/download" and "signature=" in url.query
    resp = env.client.get(f"{url.path}?{url.query}")  # no Authorization header
    assert resp.status_code == 200, resp.text
    assert resp.content == b"".join(ARCHIVE)
    assert resp.headers["content-type"] == "application/zip"
    assert resp.headers["content-length"] == str(ready.size_bytes)
    assert f"export-{ready.id}.zip" in resp.headers["content-disposition"]
    # The service was asked in the organization the link was signed for.
    assert env.backend.last.op == GET_ARTIFACT and env.backend.last.ctx.org_id == env.world.org_a
    # A flipped byte, another export's id: 403, and the service is not asked.
    calls = len(env.backend.calls)
    sig = url.query.split("signature=")[1]
    flipped = url.query.replace(sig, sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    assert_error(env.client.get(f"{url.path}?{flipped}"), 403, "access_denied")
    other = f"/api/v1/exports/{uuid4()}/download?{url.query}"
    assert_error(env.client.get(other), 403, "access_denied")
    assert_error(env.client.get(url.path), 403, "access_denied")
    assert len(env.backend.calls) == calls
    # A good link to an export whose archive is gone: 404.
    env.backend.on(GET_ARTIFACT, NotFound("the export has no archive to download"))
    assert_error(env.client.get(f"{url.path}?{url.query}"), 404, "not_found")


def test_only_ready_exports_get_a_link(env: Env) -> None:
    for status in (ExportStatus.PENDING, ExportStatus.RUNNING, ExportStatus.EXPIRED):
        env.backend.on(GET_EXPORT, view(status))
        got = env.client.get(f"/api/v1/exports/{uuid4()}", headers=bearer(env.world.full)).json()
        assert got.get("downloadUrl") is None


def test_delete_passes_if_match_and_scopes_apply(env: Env) -> None:
    env.backend.on(DELETE_EXPORT, Empty())
    export_id = uuid4()
    resp = env.client.delete(
        f"/api/v1/exports/{export_id}", headers={**bearer(env.world.full), "If-Match": '"4"'}
    )
    assert resp.status_code == 204, resp.text
    assert env.backend.last.body.expected_version == 4 and env.backend.last.body.id == export_id
    reader, created = key_created(env.world.org_a, ("exports:read",))
    evolve(env.world.cache, created)
    for method, path in (("POST", "/api/v1/exports"), ("DELETE", f"/api/v1/exports/{export_id}")):
        resp = env.client.request(method, path, json={}, headers=bearer(reader))
        assert_error(resp, 403, "access_denied")
