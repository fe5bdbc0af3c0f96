"""The OpenAPI document: security and error responses on every operation, from the policy
table."""

from __future__ import annotations

from typing import Any

import pytest
from gateway_testkit import FakeBackend, build_world
from litestar.testing import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.policy import OPERATOR, PUBLIC, policy_for
from outpost_gateway.domain.public_throttle import public_route
from outpost_gateway.entrypoints.openapi import links
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


def test_openapi_spec_validator_accepts_the_document(doc: dict[str, Any]) -> None:
    """A client no one here wrote reads the document: every response header has a schema
    (OpenAPI 3.1), among everything else the validator checks (decision 77)."""
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in OpenAPIV31SpecValidator(doc).iter_errors()
    ]
    assert errors == []
    etag = doc["paths"]["/api/v1/devices/{id}"]["get"]["responses"]["200"]["headers"]["ETag"]
    assert etag["schema"]["type"] == "string"


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            found
            for key, value in node.items()
            for found in ([value] if key == "pattern" else _patterns(value))
        ]
    if isinstance(node, list):
        return [found for item in node for found in _patterns(item)]
    return []


def test_every_pattern_matches_whole_strings(doc: dict[str, Any]) -> None:
    """``^…$`` accepts a final newline under Python's ``re.search`` (msgspec's check): every
    pattern of the document is written with ``whole`` (decision 77)."""
    found = set(_patterns(doc))
    assert len(found) >= 5
    for pattern in found:
        assert pattern.startswith("^(?:") and pattern.endswith("$(?!\\n)"), pattern


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
        if public_route(method, path) is not None:  # limited per address and account
            expected.add("429")
        if "{" in path:
            expected.add("404")
        if method == "POST":
            expected |= {"409", "413"}
        if method in ("PUT", "PATCH", "DELETE"):
            expected.add("412")
        assert expected <= set(op["responses"]), (method, path, sorted(op["responses"]))
        for status in expected:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            if path == "/auth/oauth/token" and status in ("400", "401", "503"):
                assert {"$ref": "#/components/schemas/Error"} in schema["anyOf"], status
                continue
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_the_token_endpoint_is_documented_as_rfc_6749(doc: dict[str, Any]) -> None:
    """Found by schemathesis: the handler writes its own bytes, so Litestar documented a
    string for 200, no request body and the error model for errors that are RFC 6749's."""
    op = doc["paths"]["/auth/oauth/token"]["post"]
    form = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["grant_type"]
    assert form["properties"]["grant_type"]["const"] == "client_credentials"
    token = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(token["required"]) == {"access_token", "token_type", "expires_in", "scope"}
    oauth_error = doc["components"]["schemas"]["OAuthError"]
    for status in ("400", "401", "503"):
        schema = op["responses"][status]["content"]["application/json"]["schema"]
        assert {"$ref": "#/components/schemas/OAuthError"} in schema["anyOf"], status
    # what the handler answers fits the schema
    app = create_app(GatewaySettings(), FakeBackend(), build_world().cache)
    with TestClient(app) as client:
        resp = client.post("/auth/oauth/token")
    assert resp.status_code == 400
    body = resp.json()
    assert set(oauth_error["required"]) <= set(body) <= set(oauth_error["properties"])
    assert body["error"] in oauth_error["properties"]["error"]["enum"]


def _op(operation_id: str, *statuses: str) -> dict[str, Any]:
    return {"operationId": operation_id, "responses": {s: {"description": s} for s in statuses}}


def test_links_follow_the_collection_rule() -> None:
    paths: dict[str, dict[str, Any]] = {
        "/things": {"post": _op("CreateThing", "201"), "get": _op("ListThings", "200")},
        "/things/{id}": {"get": _op("GetThing", "200"), "delete": _op("DeleteThing", "204")},
        "/things/{id}/archive": {"post": _op("ArchiveThing", "200")},
        "/things/{id}/parts/{partId}": {"get": _op("GetPart", "200")},  # another parameter
        "/things/by-key/{key}": {"get": _op("GetThingByKey", "200")},  # not `{id}`
        "/actions/login": {"post": _op("Login", "200")},  # creates nothing: no 201
        "/widgets": {"post": _op("CreateWidget", "201")},  # nothing on /widgets/{id}
    }
    found = links(paths)
    assert set(found) == {("/things", "post", "201")}
    created = found[("/things", "post", "201")]
    assert set(created) == {"GetThing", "DeleteThing", "ArchiveThing"}
    for name, link in created.items():
        assert link["operationId"] == name
        assert link["parameters"] == {"path.id": "$response.body#/id"}


def test_links_follow_the_version_rule() -> None:
    get = _op("GetThing", "200")
    get["responses"]["200"]["headers"] = {"ETag": {"description": "version"}}
    patch = _op("PatchThing", "200")
    patch["parameters"] = [{"name": "If-Match", "in": "header"}]
    delete = _op("DeleteThing", "204")  # takes no If-Match: no link
    untagged = _op("GetOther", "200")  # no ETag: no links
    other_patch = _op("PatchOther", "200")
    other_patch["parameters"] = [{"name": "If-Match", "in": "header"}]
    paths: dict[str, dict[str, Any]] = {
        "/things/{id}": {"get": get, "patch": patch, "delete": delete},
        "/others/{id}": {"get": untagged, "patch": other_patch},
    }
    found = links(paths)
    assert set(found) == {("/things/{id}", "get", "200")}
    assert found[("/things/{id}", "get", "200")]["PatchThing"]["parameters"] == {
        "path.id": "$request.path.id",
        "header.If-Match": "$response.header.ETag",
    }
    assert set(found[("/things/{id}", "get", "200")]) == {"PatchThing"}


def test_every_creating_operation_links_to_its_object(doc: dict[str, Any]) -> None:
    def linked(path: str) -> set[tuple[str, str]]:
        by_id = {op["operationId"]: (m, p) for m, p, op in operations(doc)}
        found = doc["paths"][path]["post"]["responses"]["201"]["links"]
        for link in found.values():
            assert link["parameters"] == {"path.id": "$response.body#/id"}
        return {by_id[link["operationId"]] for link in found.values()}

    assert linked("/api/v1/devices") == {
        ("GET", "/api/v1/devices/{id}"),
        ("PATCH", "/api/v1/devices/{id}"),
        ("DELETE", "/api/v1/devices/{id}"),
        ("GET", "/api/v1/devices/{id}/certificates"),
        ("GET", "/api/v1/devices/{id}/health"),
        ("POST", "/api/v1/devices/{id}/commands"),
        ("GET", "/api/v1/devices/{id}/commands"),
        ("GET", "/api/v1/devices/{id}/state"),
        ("PATCH", "/api/v1/devices/{id}/state"),
        ("PUT", "/api/v1/devices/{id}/state"),
        ("GET", "/api/v1/devices/{id}/annotations"),
    }
    assert linked("/api/v1/devices/registration/tokens") == {
        ("DELETE", "/api/v1/devices/registration/tokens/{id}")
    }
    assert linked("/api/v1/admin/organizations") == {
        ("GET", "/api/v1/admin/organizations/{id}"),
        ("POST", "/api/v1/admin/organizations/{id}/suspend"),
        ("POST", "/api/v1/admin/organizations/{id}/reinstate"),
        ("GET", "/api/v1/admin/organizations/{id}/rate-limits"),
        ("PUT", "/api/v1/admin/organizations/{id}/rate-limits"),
    }
    assert linked("/api/v1/api-keys") == {("DELETE", "/api/v1/api-keys/{id}")}
    assert linked("/api/v1/users") == {("GET", "/api/v1/users/{id}")}
    assert linked("/api/v1/oauth-clients") == {
        ("POST", "/api/v1/oauth-clients/{id}/rotate-secret"),
        ("DELETE", "/api/v1/oauth-clients/{id}"),
    }
    # A collection under an object: the created command is `{command_id}` under the same device.
    commands = doc["paths"]["/api/v1/devices/{id}/commands"]["post"]["responses"]["201"]["links"]
    assert [link["parameters"] for link in commands.values()] == [
        {"path.id": "$request.path.id", "path.command_id": "$response.body#/id"}
    ]
    read = doc["paths"]["/api/v1/devices/{id}"]["get"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in read.values()} == {
        "ApiV1DevicesIdUpdateDevice",
        "ApiV1DevicesIdDecommissionDevice",
    }
    # Provisioning and renewal answer 201 with a certificate (no `id`, no collection below).
    not_collections = {"/api/v1/devices/provision", "/api/v1/devices/certificates/renew"}
    creating = {
        p
        for m, p, op in operations(doc)
        if m == "POST" and "201" in op["responses"] and p not in not_collections
    }
    with_links = {p for p in creating if "links" in doc["paths"][p]["post"]["responses"]["201"]}
    assert with_links == creating
    # A version under an artefact: its number is the created body's `version` (get, delete,
    # and its compliance `/status`, ADR 0093).
    versions = doc["paths"]["/api/v1/config-artefacts/{id}/versions"]["post"]["responses"]
    assert [link["parameters"] for link in versions["201"]["links"].values()] == [
        {"path.id": "$request.path.id", "path.version": "$response.body#/version"}
    ] * 3
    # every 201 body that a link reads has the field it reads
    for path in creating:
        ref = doc["paths"][path]["post"]["responses"]["201"]["content"]["application/json"]
        name = ref["schema"]["$ref"].rsplit("/", 1)[-1]
        for link in doc["paths"][path]["post"]["responses"]["201"]["links"].values():
            for source in link["parameters"].values():
                if source.startswith("$response.body#/"):
                    field = source.removeprefix("$response.body#/")
                    assert field in doc["components"]["schemas"][name]["required"], path


def test_request_bodies_are_documented_as_msgspec_decodes_them(doc: dict[str, Any]) -> None:
    """Seen in schemathesis' stateful runs: bodies it generated from the document were refused
    (so nothing was created to follow links from), because
    Litestar's rendering left out that request structs forbid unknown fields and the pattern
    of each scope in a list."""
    schemas = doc["components"]["schemas"]

    def body_of(schema: dict[str, Any]) -> str:
        """A body's struct; an optional body (``/acknowledge``) is one of it and null."""
        options = schema.get("anyOf") or schema.get("oneOf") or [schema]
        refs = [s["$ref"] for s in options if "$ref" in s]
        assert len(refs) == 1, schema
        return str(refs[0]).rsplit("/", 1)[-1]

    bodies = {
        body_of(op["requestBody"]["content"]["application/json"]["schema"])
        for _, _, op in operations(doc)
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    assert {"CreateDevice", "DevicePatch", "CreateApiKey", "CreateOAuthClient"} <= bodies
    assert {"CreateAlertRule", "AlertRulePatch", "AlertTransition"} <= bodies
    for name in bodies:
        assert schemas[name]["additionalProperties"] is False, name
    scopes = schemas["CreateOAuthClient"]["properties"]["scopes"]["items"]
    assert scopes["pattern"] == r"^(?:[a-z][a-z-]*:(read|write|\*)|\*(:(read|write))?)$(?!\n)"
    expires = schemas["CreateApiKey"]["properties"]["expiresAt"]["anyOf"][0]
    assert expires == {"type": "string", "format": "date-time"}


def test_query_parameters_have_their_wire_names(doc: dict[str, Any]) -> None:
    """`GET /readings` documented `from_`, which the gateway refuses as an unknown field."""
    params = {p["name"] for p in doc["paths"]["/api/v1/readings"]["get"]["parameters"]}
    assert {"deviceId", "from", "to"} <= params and "from_" not in params
    for _, _, op in operations(doc):
        assert not any(p["name"].endswith("_") for p in op.get("parameters", [])), op


def test_a_devices_state_documents_explain(doc: dict[str, Any]) -> None:
    """`GET /devices/{id}/state?explain=true` (ADR 0091): a boolean query parameter, and the
    answer's `explain` maps JSON Pointers to their source."""
    get = doc["paths"]["/api/v1/devices/{id}/state"]["get"]
    [explain] = [p for p in get["parameters"] if p["name"] == "explain"]
    assert explain["in"] == "query" and explain["schema"]["type"] == "boolean"
    view = doc["components"]["schemas"]["DeviceStateView"]["properties"]["explain"]
    assert "KeySource" in str(view)
