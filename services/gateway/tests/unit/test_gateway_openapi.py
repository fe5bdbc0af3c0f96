"""The OpenAPI document: security and error responses on every operation, from the policy
table."""

from __future__ import annotations

from typing import Any

import pytest
from gateway_testkit import FakeBackend, build_world
from litestar.testing import TestClient

from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.policy import OPERATOR, PUBLIC, policy_for
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    app = create_app(GatewaySettings(), FakeBackend(), build_world().cache)
    with TestClient(app) as client:
        resp = client.get("/api/v3/api-docs")
        assert resp.status_code == 200
        again = client.get("/api/v3/openapi.json").json()
        body: dict[str, Any] = resp.json()
        assert again == body
        return body


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_it_is_openapi_3_1_with_the_schemes(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert "sk_live_" in schemes["bearerAuth"]["description"]
    flow = schemes["oauth2ClientCredentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/auth/oauth/token"
    assert "devices:write" in flow["scopes"]
    assert doc["components"]["schemas"]["Error"]["properties"]["object"]["const"] == "error"


def test_every_operation_has_security_unless_public(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    assert len(ops) > 10
    for method, path, op in ops:
        policy = policy_for(method, path)
        assert policy is not None, (method, path)
        if policy == PUBLIC:
            assert op["security"] == [], (method, path)
            continue
        assert {"bearerAuth": []} in op["security"], (method, path)
        if policy != OPERATOR and ":" in policy:
            assert {"oauth2ClientCredentials": [policy]} in op["security"], (method, path)


def test_every_operation_documents_its_errors(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        policy = policy_for(method, path)
        expected = {"400", "503"}
        if policy != PUBLIC:
            expected |= {"401", "403", "404", "429"}
        if "{" in path:
            expected.add("404")
        if method == "POST":
            expected |= {"409", "413"}
        if method in ("PUT", "PATCH", "DELETE"):
            expected.add("412")
        assert expected <= set(op["responses"]), (method, path, sorted(op["responses"]))
        for status in expected:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
