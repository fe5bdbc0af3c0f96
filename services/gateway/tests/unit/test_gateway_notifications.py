"""Notification-channel routes against the fake backend: routing, scopes, body validation
(unknown fields, a short secret), list conventions on channels and delivery logs, ETag and
If-Match, ``/test`` answering 200, and the secret never in an answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world, key_created
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts.base import Empty
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.notifications import (
    CREATE_CHANNEL,
    DELETE_CHANNEL,
    GET_CHANNEL,
    LIST_CHANNELS,
    LIST_DELIVERIES,
    TEST_CHANNEL,
    UPDATE_CHANNEL,
    ChannelTestResult,
    ChannelType,
    DeliveryAttemptView,
    DeliveryKind,
    DeliveryOutcome,
    NotificationChannelView,
)
from outpost_contracts.query import Cmp, Page
from outpost_gateway.domain.credentials import evolve

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "the-webhook-secret-value"


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def channel(version: int = 1) -> NotificationChannelView:
    return NotificationChannelView(
        id=uuid4(),
        type=ChannelType.WEBHOOK,
        name="ops",
        enabled=True,
        created_at=T0,
        updated_at=T0,
        version=version,
        url="https://hooks.example.com/x",
        has_secret=True,
    )


def attempt(**kw: object) -> DeliveryAttemptView:
    base: dict[str, object] = {
        "id": uuid4(),
        "delivery_id": uuid4(),
        "channel_id": uuid4(),
        "event_id": uuid4(),
        "event_type": "alerting.AlertOpened.v1",
        "kind": DeliveryKind.ALERT,
        "attempt": 1,
        "attempted_at": T0,
        "outcome": DeliveryOutcome.FAILED,
        "latency_ms": 12.5,
        "status_code": 500,
        "error": "HTTP 500",
    }
    base.update(kw)
    return DeliveryAttemptView(**base)  # type: ignore[arg-type]


def test_create_passes_the_body_and_answers_201_without_the_secret(env: Env) -> None:
    view = channel()
    env.backend.on(CREATE_CHANNEL, view)
    body = {"type": "WEBHOOK", "name": "ops", "url": view.url, "secret": SECRET}
    resp = env.client.post(
        "/api/v1/notification-channels", json=body, headers=bearer(env.world.full)
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["hasSecret"] is True and resp.json()["object"] == "notificationChannel"
    assert SECRET not in resp.text and "secret" not in resp.json()
    assert env.backend.last.body.secret == SECRET and env.backend.last.ctx.org_id == env.world.org_a


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "WEBHOOK", "name": "n", "url": "https://x.example", "secret": "short"}, "secret"),
        ({"type": "SMS", "name": "n"}, "type"),
        ({"type": "EMAIL", "name": "n", "addresses": ["nope"]}, "addresses"),
        ({"type": "EMAIL", "name": "n", "addresses": []}, "addresses"),
        ({"type": "EMAIL", "name": "n", "addresses": ["a@b.co"], "owner": "x"}, "owner"),
        ({"name": "n"}, "type"),
    ],
)
def test_bodies_are_validated_at_the_edge(env: Env, body: dict[str, object], field: str) -> None:
    resp = env.client.post(
        "/api/v1/notification-channels", json=body, headers=bearer(env.world.full)
    )
    assert_error(resp, 400, "validation_error")
    assert field in resp.text
    assert env.backend.calls == []


def test_an_ssrf_refusal_from_the_service_is_a_validation_error_on_url(env: Env) -> None:
    env.backend.on(CREATE_CHANNEL, validation_error("url", "resolves to a private address"))
    body = {"type": "WEBHOOK", "name": "n", "url": "http://10.0.0.1/", "secret": SECRET}
    resp = env.client.post(
        "/api/v1/notification-channels", json=body, headers=bearer(env.world.full)
    )
    assert_error(resp, 400, "validation_error", field="url")


def test_scopes(env: Env) -> None:
    reader, created = key_created(env.world.org_a, ("notification-channels:read",))
    evolve(env.world.cache, created)
    env.backend.on(LIST_CHANNELS, Page(data=[], limit=50))
    assert (
        env.client.get("/api/v1/notification-channels", headers=bearer(reader)).status_code == 200
    )
    cid = uuid4()
    for method, path in (
        ("POST", "/api/v1/notification-channels"),
        ("PATCH", f"/api/v1/notification-channels/{cid}"),
        ("DELETE", f"/api/v1/notification-channels/{cid}"),
        ("POST", f"/api/v1/notification-channels/{cid}/test"),
    ):
        resp = env.client.request(method, path, json={}, headers=bearer(reader))
        assert_error(resp, 403, "access_denied")
    for path in ("/api/v1/notification-channels", f"/api/v1/alerts/{cid}/deliveries"):
        assert_error(env.client.get(path, headers=bearer(env.world.reader)), 403, "access_denied")
    assert [c.op for c in env.backend.calls] == [LIST_CHANNELS]


def test_list_get_patch_delete(env: Env) -> None:
    view = channel(version=3)
    env.backend.on(LIST_CHANNELS, Page(data=[view], limit=5, total_count=1))
    h = bearer(env.world.full)
    body = env.client.get(
        "/api/v1/notification-channels",
        params={"$filter": "type eq 'WEBHOOK'", "$select": "name", "$top": "5", "$count": "true"},
        headers=h,
    ).json()
    assert body["data"] == [{"id": str(view.id), "name": "ops"}] and body["totalCount"] == 1
    assert env.backend.last.body.query.filter == Cmp(field="type", op="eq", value="WEBHOOK")

    env.backend.on(GET_CHANNEL, view)
    resp = env.client.get(f"/api/v1/notification-channels/{view.id}", headers=h)
    assert resp.status_code == 200 and resp.headers["etag"] == '"3"'

    env.backend.on(UPDATE_CHANNEL, channel(version=4))
    resp = env.client.patch(
        f"/api/v1/notification-channels/{view.id}",
        json={"enabled": False, "secret": SECRET},
        headers={**h, "If-Match": '"3"'},
    )
    assert resp.status_code == 200 and resp.headers["etag"] == '"4"'
    cmd = env.backend.last.body
    assert cmd.expected_version == 3 and cmd.patch.enabled is False and cmd.patch.secret == SECRET
    assert SECRET not in resp.text
    bad = env.client.patch(
        f"/api/v1/notification-channels/{view.id}", json={"type": "EMAIL"}, headers=h
    )
    assert_error(bad, 400, "validation_error")

    env.backend.on(DELETE_CHANNEL, Empty())
    resp = env.client.delete(
        f"/api/v1/notification-channels/{view.id}", headers={**h, "If-Match": '"4"'}
    )
    assert resp.status_code == 204 and env.backend.last.body.expected_version == 4
    env.backend.on(GET_CHANNEL, NotFound("no such notification channel"))
    assert_error(
        env.client.get(f"/api/v1/notification-channels/{view.id}", headers=h), 404, "not_found"
    )


def test_test_answers_200_with_the_outcome(env: Env) -> None:
    cid = uuid4()
    result = ChannelTestResult(
        delivery_id=uuid4(),
        channel_id=cid,
        event_id=uuid4(),
        outcome=DeliveryOutcome.SUCCEEDED,
        attempted_at=T0,
        latency_ms=3.2,
        status_code=204,
    )
    env.backend.on(TEST_CHANNEL, result)
    resp = env.client.post(
        f"/api/v1/notification-channels/{cid}/test", headers=bearer(env.world.full)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == "SUCCEEDED" and resp.json()["statusCode"] == 204
    assert env.backend.last.body.id == cid


def test_delivery_logs_of_a_channel_and_of_an_alert(env: Env) -> None:
    item = attempt()
    env.backend.on(LIST_DELIVERIES, Page(data=[item], limit=50, total_count=1))
    h = bearer(env.world.full)
    cid, aid = uuid4(), uuid4()
    body = env.client.get(
        f"/api/v1/notification-channels/{cid}/deliveries",
        params={"outcome": "DEAD", "include": "totalCount"},
        headers=h,
    ).json()
    assert body["object"] == "list" and body["totalCount"] == 1
    assert body["data"][0]["statusCode"] == 500 and body["data"][0]["latencyMs"] == 12.5
    call = env.backend.last.body
    assert call.channel_id == cid and call.alert_id is None
    assert call.query.filter == Cmp(field="outcome", op="eq", value="DEAD")
    env.client.get(f"/api/v1/alerts/{aid}/deliveries?$orderby=attemptedAt desc", headers=h)
    call = env.backend.last.body
    assert call.alert_id == aid and call.channel_id is None
    assert call.query.order_by[0].field == "attemptedAt" and call.query.order_by[0].desc
