"""The web console's page, assets and cookie session routes (decision 99)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import LOGIN, LOGOUT, REFRESH, Login, Refresh, TokenIssued
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain import console
from outpost_gateway.domain.policy import PUBLIC, policy_for
from outpost_gateway.entrypoints.console import assets
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

CONSOLE = {"X-Outpost-Console": "1"}


def issued(n: int) -> TokenIssued:
    return TokenIssued(
        access_token=f"access-{n}", token_type="Bearer", expires_in=900, refresh_token=f"rt-{n}"
    )


@pytest.fixture
def env() -> Iterator[tuple[TestClient[Litestar], FakeBackend, World]]:
    world = build_world()
    backend = FakeBackend()
    app = create_app(GatewaySettings(), backend, world.cache, clock=lambda: NOW)
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        yield client, backend, world


# --- the pure rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host", "secure"),
    [
        ("http", "127.0.0.1:8080", False),
        ("http", "localhost:8080", False),
        ("http", "[::1]:8080", False),
        ("http", "console.example.com", True),  # a proxy terminating TLS: Secure regardless
        ("https", "127.0.0.1", True),
        ("https", "console.example.com", True),
    ],
)
def test_the_cookie_is_secure_except_plain_http_to_loopback(
    scheme: str, host: str, secure: bool
) -> None:
    assert console.cookie_is_secure(scheme, host) is secure
    cookie = console.refresh_cookie("t", secure=secure)
    assert cookie.startswith("outpost_console_refresh=t; Path=/console/session; HttpOnly")
    assert "SameSite=Strict" in cookie and ("Secure" in cookie) is secure


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"x-outpost-console": "1"}, False),
        ({"x-outpost-console": "1", "origin": "http://127.0.0.1:8080"}, False),
        ({}, True),  # a cross-site form cannot set the header
        ({"x-outpost-console": "yes"}, True),
        ({"x-outpost-console": "1", "origin": "https://evil.example"}, True),
        ({"x-outpost-console": "1", "origin": "null"}, True),
    ],
)
def test_csrf_wants_the_header_and_this_origin(headers: dict[str, str], refused: bool) -> None:
    assert (console.csrf_refusal(headers, "127.0.0.1:8080") is not None) is refused


# --- the page and its assets ---------------------------------------------------------------


def test_the_page_and_assets_are_public_with_a_strict_policy(env: Any) -> None:
    client, _, _ = env
    assert policy_for("GET", "/") == PUBLIC and policy_for("GET", "/console/{path}") == PUBLIC
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/console/app.js">' in page.text
    js = client.get("/console/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    chart = client.get("/console/vendor/uplot/uPlot.iife.min.js")
    assert chart.status_code == 200 and len(chart.content) > 10_000
    again = client.get("/console/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert set(assets()) >= {"index.html", "app.js", "session.js", "style.css"}


@pytest.mark.parametrize(
    "path", ["/console/nope.js", "/console/../bootstrap.py", "/console/%2e%2e/bootstrap.py"]
)
def test_only_the_console_files_are_served(env: Any, path: str) -> None:
    client, _, _ = env
    resp = client.get(path)
    assert resp.status_code == 404
    assert "import" not in resp.text


# --- the cookie session ----------------------------------------------------------------------


def test_login_answers_the_access_token_and_sets_the_refresh_cookie(env: Any) -> None:
    client, backend, _ = env
    backend.on(LOGIN, issued(1))
    resp = client.post(
        "/console/session/login",
        json={"email": "ada@example.com", "password": "pw"},
        headers=CONSOLE,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accessToken": "access-1", "tokenType": "Bearer", "expiresIn": 900}
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("outpost_console_refresh=rt-1; Path=/console/session; HttpOnly")
    assert "Secure" not in cookie  # plain HTTP to 127.0.0.1 (make dev)
    assert resp.headers["cache-control"] == "no-store"
    assert backend.last.body == Login(email="ada@example.com", password="pw")


def test_refresh_reads_the_cookie_and_rotates_it(env: Any) -> None:
    client, backend, _ = env
    backend.on(LOGIN, issued(1)).on(REFRESH, issued(2))
    client.post("/console/session/login", json={"email": "a@b.c", "password": "p"}, headers=CONSOLE)
    resp = client.post("/console/session/refresh", headers=CONSOLE)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accessToken"] == "access-2"
    assert backend.last.body == Refresh(refresh_token="rt-1")
    assert resp.headers["set-cookie"].startswith("outpost_console_refresh=rt-2;")


def test_refresh_refuses_without_cookie_header_or_with_a_foreign_origin(env: Any) -> None:
    client, backend, _ = env
    backend.on(REFRESH, issued(2))
    none = client.post("/console/session/refresh", headers=CONSOLE)
    assert none.status_code == 401 and none.json()["type"] == "invalid_token"
    client.cookies.set(console.REFRESH_COOKIE, "rt-1", path="/console/session")
    no_header = client.post("/console/session/refresh")
    assert no_header.status_code == 403 and "X-Outpost-Console" in no_header.json()["message"]
    foreign = client.post(
        "/console/session/refresh", headers={**CONSOLE, "Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert backend.calls == []


def test_a_refused_refresh_is_the_identity_answer(env: Any) -> None:
    client, backend, _ = env
    backend.on(REFRESH, OutpostError("session ended", type=ErrorType.INVALID_TOKEN))
    client.cookies.set(console.REFRESH_COOKIE, "rt-old", path="/console/session")
    resp = client.post("/console/session/refresh", headers=CONSOLE)
    assert resp.status_code == 401 and resp.json()["type"] == "invalid_token"


def test_logout_needs_the_access_token_ends_the_session_and_clears_the_cookie(env: Any) -> None:
    client, backend, world = env
    backend.on(LOGOUT, lambda ctx, body: None)
    anonymous = client.post("/console/session/logout", headers=CONSOLE)
    assert anonymous.status_code == 401
    resp = client.post("/console/session/logout", headers={**CONSOLE, **bearer(world.full)})
    assert resp.status_code == 204
    assert backend.last.op == LOGOUT
    assert "Max-Age=0" in resp.headers["set-cookie"]
