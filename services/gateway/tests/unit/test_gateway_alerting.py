"""Alerting routes against the fake backend: the optional comment body of /acknowledge and
/resolve (absent, JSON, or refused), If-Match, ETag, rule bodies checked at the edge,
scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts.alerting import (
    ACKNOWLEDGE_ALERT,
    LIST_EVENTS,
    RESOLVE_ALERT,
    AlertAction,
    AlertStatus,
    AlertTrigger,
    AlertView,
    Severity,
)
from outpost_contracts.query import Page

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def alert(status: AlertStatus, version: int) -> Any:
    def reply(_ctx: Any, body: AlertAction) -> AlertView:
        return AlertView(
            id=body.id,
            rule_id=uuid4(),
            rule_version=1,
            device_id=uuid4(),
            sensor="temp",
            status=status,
            severity=Severity.MINOR,
            opened_at=T0,
            trigger=AlertTrigger(value=1, ts=T0, since=T0, condition="temp > 0", rule_version=1),
            version=version,
        )

    return reply


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_a_transition_takes_no_body_or_a_json_comment(env: Env, action: str) -> None:
    op = ACKNOWLEDGE_ALERT if action == "acknowledge" else RESOLVE_ALERT
    env.backend.on(op, alert(AlertStatus.ACKNOWLEDGED, 2))
    alert_id = uuid4()
    path = f"/api/v1/alerts/{alert_id}/{action}"
    bare = env.client.post(path, headers=bearer(env.world.full))
    assert bare.status_code == 200, bare.text
    assert env.backend.last.body == AlertAction(id=alert_id)
    assert bare.headers["etag"] == '"2"'
    said = env.client.post(
        path, json={"comment": "on it"}, headers={**bearer(env.world.full), "If-Match": '"1"'}
    )
    assert said.status_code == 200, said.text
    assert env.backend.last.body == AlertAction(id=alert_id, comment="on it", expected_version=1)
    calls = len(env.backend.calls)
    text = env.client.post(
        path, content=b"on it", headers={**bearer(env.world.full), "Content-Type": "text/plain"}
    )
    assert_error(text, 415, "unsupported_media_type")
    unknown = env.client.post(
        path, json={"comment": "x", "by": "me"}, headers=bearer(env.world.full)
    )
    assert_error(unknown, 400, "validation_error")
    assert len(env.backend.calls) == calls


def test_rule_bodies_are_checked_at_the_edge(env: Env) -> None:
    h = bearer(env.world.full)
    base = {
        "name": "r",
        "scope": {"type": "ORGANIZATION"},
        "sensor": "temp",
        "condition": {"op": ">", "threshold": 1},
        "severity": "MINOR",
    }
    for bad, field in [
        ({"severity": "LOUD"}, "severity"),
        ({"condition": {"op": "~", "threshold": 1}}, "condition.op"),
        ({"forSeconds": 86_401}, "forSeconds"),
        ({"sensor": "has space"}, "sensor"),
        ({"channelIds": ["nope"]}, "channelIds[0]"),
    ]:
        resp = env.client.post("/api/v1/alert-rules", json={**base, **bad}, headers=h)
        assert_error(resp, 400, "validation_error", field)
    assert env.backend.calls == []


def test_the_timeline_is_a_collection(env: Env) -> None:
    env.backend.on(LIST_EVENTS, Page(data=[], limit=50))
    ok = env.client.get("/api/v1/events", headers=bearer(env.world.full))
    assert ok.status_code == 200 and ok.json()["data"] == []
