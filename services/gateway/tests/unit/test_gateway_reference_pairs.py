"""Reference pair routes against the fake backend (ADR 0098): the group's create body checked
at the edge, the comparison's parameters as the request readings gets, bad parameters as
``validation_error``s, the scope readings:read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world, key_created
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts.reference_pairs import (
    COMPARE_REFERENCE_PAIR,
    CREATE_REFERENCE_PAIR,
    ComparisonPoint,
    ComparisonView,
    ReferencePairView,
    SensorRef,
)
from outpost_gateway.domain.credentials import evolve
from outpost_gateway.domain.policy import policy_for, rate_category
from outpost_gateway.domain.ratelimit import Category

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def pair() -> ReferencePairView:
    return ReferencePairView(
        id=uuid4(),
        name="roof pm2.5",
        test=SensorRef(device_id=uuid4(), sensor="pm25"),
        reference=SensorRef(device_id=uuid4(), sensor="pm25"),
        window_seconds=300,
        created_at=T0,
        updated_at=T0,
        version=1,
    )


def comparison(pair_id: Any) -> ComparisonView:
    return ComparisonView(
        pair_id=pair_id,
        from_=T0,
        to=T1,
        interval="1h",
        timezone="UTC",
        n=2,
        bias=1.0,
        mae=1.0,
        rmse=1.0,
        r=1.0,
        slope=0.5,
        intercept=1.0,
        series=[
            ComparisonPoint(ts=T0, test=2.0, reference=2.0, corrected=2.0),
            ComparisonPoint(ts=T1, test=4.0, reference=3.0, corrected=3.0),
        ],
    )


def test_create_checks_the_body(env: Env) -> None:
    h = bearer(env.world.full)
    sensor = {"deviceId": str(uuid4()), "sensor": "pm25"}
    for body, field in [
        ({"name": "x", "test": sensor}, "reference"),
        ({"name": "x", "test": sensor, "reference": sensor, "windowSeconds": 7}, "window"),
        ({"name": "x", "test": {"deviceId": "nope", "sensor": "a"}, "reference": sensor}, "test"),
        ({"name": "", "test": sensor, "reference": sensor}, "name"),
    ]:
        resp = env.client.post("/api/v1/reference-pairs", json=body, headers=h)
        assert field in assert_error(resp, 400, "validation_error")["message"], body
    assert env.backend.calls == []
    made = pair()
    env.backend.on(CREATE_REFERENCE_PAIR, made)
    resp = env.client.post(
        "/api/v1/reference-pairs",
        json={"name": made.name, "test": sensor, "reference": sensor},
        headers=h,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["object"] == "referencePair" and resp.json()["windowSeconds"] == 300


def test_the_comparison_sends_its_parameters(env: Env) -> None:
    pair_id = uuid4()
    env.backend.on(COMPARE_REFERENCE_PAIR, comparison(pair_id))
    resp = env.client.get(
        f"/api/v1/reference-pairs/{pair_id}/comparison",
        params={
            "from": "20260101T000000Z",
            "to": "2026-01-02T00:00:00Z",
            "interval": "1h",
            "timezone": "Europe/Paris",
            "corrected": "true",
        },
        headers=bearer(env.world.full),
    )
    assert resp.status_code == 200, resp.text
    body = env.backend.last.body
    assert (body.id, body.from_, body.to) == (pair_id, T0, T1)
    assert (body.interval, body.timezone, body.corrected, body.series) == (
        "1h",
        "Europe/Paris",
        True,
        False,
    )
    answer = resp.json()
    assert answer["object"] == "referencePairComparison" and answer["pairId"] == str(pair_id)
    assert answer["series"][1] == {
        "ts": "2026-01-02T00:00:00Z",
        "test": 4.0,
        "reference": 3.0,
        "corrected": 3.0,
    }
    # no interval: the pair's window, decided by readings
    env.client.get(
        f"/api/v1/reference-pairs/{pair_id}/comparison",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
        headers=bearer(env.world.full),
    )
    assert env.backend.last.body.interval is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-01-02T00:00:00Z"}, "from"),
        ({"from": "yesterday", "to": "2026-01-02T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "interval": "2m"}, None),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "corrected": "x"}, None),
    ],
)
def test_bad_parameters_are_validation_errors(
    env: Env, params: dict[str, str], field: str | None
) -> None:
    resp = env.client.get(
        f"/api/v1/reference-pairs/{uuid4()}/comparison",
        params=params,
        headers=bearer(env.world.full),
    )
    assert_error(resp, 400, "validation_error", field)
    assert env.backend.calls == []


def test_scope_and_category(env: Env) -> None:
    path = "/api/v1/reference-pairs/{id}/comparison"
    assert policy_for("GET", path) == "readings:read"
    assert policy_for("POST", "/api/v1/reference-pairs") == "readings:write"
    assert rate_category("GET", "/api/v1/reference-pairs") is Category.LIST
    reader, e = key_created(env.world.org_a, ("readings:read",))
    evolve(env.world.cache, e)
    pair_id = uuid4()
    env.backend.on(COMPARE_REFERENCE_PAIR, comparison(pair_id))
    url = f"/api/v1/reference-pairs/{pair_id}/comparison"
    params = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
    assert env.client.get(url, params=params, headers=bearer(reader)).status_code == 200
    assert_error(
        env.client.get(url, params=params, headers=bearer(env.world.reader)),
        403,
        "access_denied",
    )
    assert_error(
        env.client.post("/api/v1/reference-pairs", json={}, headers=bearer(reader)),
        403,
        "access_denied",
    )
