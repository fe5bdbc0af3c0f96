"""The public routes' limits (docs/design/reliability.md ``public-throttle``, decision 75): the pure
parts (backoff periods, the client's address behind trusted proxies, account keys), then
the HTTP app over an in-process store and a fake identity."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_testkit import NOW, FakeBackend, build_world
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import ISSUE_CLIENT_TOKEN, LOGIN, REFRESH, TokenIssued
from outpost_contracts.provisioning import PROVISION, RENEW_CERTIFICATE
from outpost_gateway.app.rate_limiter import MemoryStore
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.policy import PUBLIC, ROUTE_POLICIES
from outpost_gateway.domain.public_throttle import (
    PUBLIC_ROUTES,
    Backoff,
    PublicRoute,
    account_of,
    client_address,
    is_failure,
    key_id,
    parse_networks,
    period_window,
    store_key,
    tighter,
)
from outpost_gateway.domain.ratelimit import decide
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])

# --- backoff ---------------------------------------------------------------------------


def test_backoff_is_free_then_doubles_up_to_the_maximum() -> None:
    b = Backoff(free_failures=5, base_seconds=2, max_seconds=900)
    assert [b.period(n) for n in range(5)] == [0, 0, 0, 0, 0]
    assert [b.period(n) for n in range(5, 12)] == [2, 4, 8, 16, 32, 64, 128]
    assert b.period(14) == 900  # 1024 capped
    assert b.period(10_000) == 900  # no overflow however many failures


def test_long_windows_are_stored_under_their_end_so_the_purge_keeps_them() -> None:
    assert store_key(period_window(3_725.0, 60)) == 3_720
    hour = period_window(3_725.0, 3600)
    assert (hour.start, hour.end) == (3_600, 7_200)
    assert store_key(hour) == 7_200


def test_only_a_refused_credential_is_a_failure() -> None:
    assert is_failure(ErrorType.INVALID_AUTH) and is_failure(ErrorType.INVALID_TOKEN)
    assert is_failure(ErrorType.GONE)  # a used, expired or unknown registration token
    for other in (ErrorType.VALIDATION_ERROR, ErrorType.ACCESS_DENIED, ErrorType.THROTTLED):
        assert not is_failure(other)
    assert not is_failure(ErrorType.SERVICE_UNAVAILABLE)


def test_the_tighter_decision_is_reported() -> None:
    roomy, tight = decide("a", 60, 1, 0.0), decide("b", 10, 9, 0.0)
    refused = decide("c", 60, 61, 0.0)
    assert tighter(None, roomy) is roomy
    assert tighter(roomy, tight) is tight and tighter(tight, roomy) is tight
    assert tighter(refused, tight) is refused and tighter(tight, refused) is refused


# --- accounts --------------------------------------------------------------------------


def test_accounts_are_what_the_request_names_normalised() -> None:
    assert account_of(PublicRoute.LOGIN, "  Ada@Example.COM ") == "ada@example.com"
    token = "rt_" + "a" * 32 + "b" * 32 + "_secretpart"
    assert account_of(PublicRoute.REFRESH, token) == "rt_" + "a" * 32 + "b" * 32
    assert account_of(PublicRoute.REFRESH, "rt_" + "a" * 64 + "_other") == account_of(
        PublicRoute.REFRESH, "rt_" + "a" * 64 + "_guess"
    )
    # the secret (token_urlsafe) may hold underscores: a guess with them is the same session
    assert account_of(PublicRoute.REFRESH, "rt_" + "a" * 64 + "_x_y_z") == "rt_" + "a" * 64
    assert account_of(PublicRoute.REFRESH, "no-underscore") == "no-underscore"
    assert account_of(PublicRoute.OAUTH_TOKEN, "client-1") == "client-1"
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n"
    assert account_of(PublicRoute.RENEW, pem) == account_of(
        PublicRoute.RENEW, pem.replace("\n", "\r\n")
    )


def test_keys_are_stable_distinct_and_hold_nothing_in_the_clear() -> None:
    a = key_id(PublicRoute.LOGIN, "account", "ada@example.com")
    assert a == key_id(PublicRoute.LOGIN, "account", "ada@example.com")
    assert a != key_id(PublicRoute.LOGIN, "address", "ada@example.com")
    assert a != key_id(PublicRoute.REFRESH, "account", "ada@example.com")
    assert "ada" not in str(a)


def test_every_public_route_that_checks_a_credential_is_limited() -> None:
    public_posts = {k for k, v in ROUTE_POLICIES.items() if v == PUBLIC and k[0] == "POST"}
    assert set(PUBLIC_ROUTES) == public_posts


# --- the client's address --------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_address("203.0.113.9", ["1.2.3.4"], ()) == "203.0.113.9"
    # a peer that is not a trusted proxy cannot name another address either
    assert client_address("203.0.113.9", ["10.1.1.1"], PROXIES) == "203.0.113.9"


def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() -> None:
    assert client_address("10.0.0.2", ["198.51.100.7"], PROXIES) == "198.51.100.7"
    # the client wrote "1.2.3.4" itself; the proxy appended what it saw
    assert client_address("10.0.0.2", ["1.2.3.4, 198.51.100.7"], PROXIES) == "198.51.100.7"
    # two proxies, the headers of each
    assert client_address("10.0.0.2", ["1.2.3.4, 198.51.100.7", "10.0.0.9"], PROXIES) == (
        "198.51.100.7"
    )
    # every hop trusted: the leftmost is the client
    assert client_address("10.0.0.2", ["10.9.9.9, 10.0.0.9"], PROXIES) == "10.9.9.9"
    # no header: the proxy itself
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_garbage_in_the_header_never_becomes_the_client() -> None:
    assert client_address("10.0.0.2", ["not-an-ip, 10.0.0.9"], PROXIES) == "10.0.0.9"
    assert client_address("10.0.0.2", ["unknown"], PROXIES) == "10.0.0.2"
    assert client_address(None, [], PROXIES) == "unknown"


def test_addresses_with_ports_mapped_v4_and_ipv6_prefixes() -> None:
    assert client_address("10.0.0.2", ["198.51.100.7:4711"], PROXIES) == "198.51.100.7"
    assert client_address("10.0.0.2", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::/64"
    assert client_address("::ffff:198.51.100.7", [], PROXIES) == "198.51.100.7"
    # one IPv6 subscriber (a /64) is one client, whatever addresses it rotates through
    assert client_address("2001:db8:0:1::5", [], ()) == client_address("2001:db8:0:1::9", [], ())
    assert client_address("fd00::1", ["2001:db8::7"], PROXIES) == "2001:db8::/64"


def test_bad_proxy_networks_are_refused() -> None:
    assert parse_networks([" 10.0.0.0/8 ", ""]) == (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])


# --- through the HTTP app --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_010.0

    def __call__(self) -> float:
        return self.now


BAD_LOGIN = OutpostError("the email or password is not valid", type=ErrorType.INVALID_AUTH)
ISSUED = TokenIssued(access_token="a", token_type="Bearer", refresh_token="r", expires_in=900)


def _login(ctx: Any, body: Any) -> TokenIssued:
    if body.password != "right":
        raise BAD_LOGIN
    return ISSUED


@pytest.fixture
def app_env() -> Iterator[tuple[TestClient[Litestar], Clock, FakeBackend]]:
    world = build_world()
    backend = FakeBackend()
    backend.on(LOGIN, _login)
    backend.on(REFRESH, OutpostError("bad token", type=ErrorType.INVALID_TOKEN))
    backend.on(ISSUE_CLIENT_TOKEN, OutpostError("bad client", type=ErrorType.INVALID_AUTH))
    backend.on(PROVISION, OutpostError("gone", type=ErrorType.GONE))
    backend.on(RENEW_CERTIFICATE, OutpostError("bad signature", type=ErrorType.INVALID_AUTH))
    clock = Clock()
    settings = GatewaySettings(
        public_per_address_per_minute=8,
        public_per_account_per_minute=5,
        public_backoff_free_failures=3,
        public_backoff_base_seconds=60,
        public_backoff_max_seconds=600,
        trusted_proxies=["127.0.0.0/8"],
    )
    app = create_app(
        settings, backend, world.cache, clock=lambda: NOW, store=MemoryStore(), epoch_clock=clock
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, clock, backend


def test_settings_refuse_a_bad_trusted_proxy() -> None:
    from outpost_kit.settings import SettingsError

    with pytest.raises(SettingsError):
        create_app(
            GatewaySettings(trusted_proxies=["nonsense"]), FakeBackend(), build_world().cache
        )


def _wrong(client: TestClient[Litestar], email: str) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": "wrong"})


def test_an_account_is_limited_per_minute_with_headers_and_retry_after(app_env: Any) -> None:
    client, _clock, backend = app_env
    statuses = []
    for _ in range(5):
        resp = client.post("/api/v1/auth/login", json={"email": "a@x.io", "password": "right"})
        statuses.append(resp.status_code)
        assert resp.headers["x-ratelimit-limit"] == "5"
    assert statuses == [200] * 5
    refused = client.post("/api/v1/auth/login", json={"email": "A@X.io ", "password": "right"})
    assert refused.status_code == 429
    assert refused.json()["type"] == "throttled"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(backend.calls) == 5  # the refused attempt never reached identity
    # another account is not affected
    assert (
        client.post("/api/v1/auth/login", json={"email": "b@x.io", "password": "right"}).status_code
        == 200
    )


def test_the_address_is_limited_across_accounts(app_env: Any) -> None:
    client, clock, _backend = app_env
    statuses = [_wrong(client, f"user{i}@x.io").status_code for i in range(10)]
    assert statuses == [401] * 8 + [429] * 2
    # an invalid body counts against the address too, before it is read
    clock.now += 60
    for _ in range(8):
        assert client.post("/api/v1/auth/login", json={"nope": 1}).status_code == 400
    assert _wrong(client, "fresh@x.io").status_code == 429


def test_repeated_failures_back_off_the_same_for_known_and_unknown_accounts(app_env: Any) -> None:
    client, clock, _backend = app_env

    def story(email: str) -> list[int]:
        seen = [_wrong(client, email).status_code for _ in range(3)]  # the free failures
        clock.now += 60
        seen.append(_wrong(client, email).status_code)  # one attempt in the backoff period
        seen.append(_wrong(client, email).status_code)  # then refused until it ends
        clock.now += 120  # past the next (doubled) period's window
        seen.append(_wrong(client, email).status_code)
        seen.append(_wrong(client, email).status_code)
        clock.now += 600
        return seen

    known = story("known@x.io")  # the fake identity answers both the same, as identity does
    unknown = story("nobody@x.io")
    assert known == unknown == [401, 401, 401, 401, 429, 401, 429]
    # a correct password for the locked account waits its turn too, then succeeds
    ok = client.post("/api/v1/auth/login", json={"email": "known@x.io", "password": "right"})
    assert ok.status_code == 200


def test_a_backoff_refusal_says_when_to_retry(app_env: Any) -> None:
    client, clock, _backend = app_env
    for _ in range(3):
        _wrong(client, "c@x.io")
    clock.now += 60
    _wrong(client, "c@x.io")
    refused = _wrong(client, "c@x.io")
    assert refused.status_code == 429
    assert "failed attempts" in refused.json()["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 120


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/refresh", {"refreshToken": "rt_" + "a" * 64 + "_guess"}),
        ("/api/v1/devices/provision", {"token": "reg-token", "csr": "x"}),
    ],
)
def test_refresh_and_provisioning_are_limited_per_account(
    app_env: Any, path: str, body: dict[str, str]
) -> None:
    client, _clock, _backend = app_env
    statuses = [client.post(path, json=body).status_code for _ in range(6)]
    assert 429 in statuses and statuses[-1] == 429


def test_renewal_is_limited_per_certificate(app_env: Any) -> None:
    client, _clock, _backend = app_env
    body = {"certificate": "-----BEGIN CERTIFICATE-----\nAA\n", "csr": "x", "signature": "s"}
    statuses = [
        client.post("/api/v1/devices/certificates/renew", json=body).status_code for _ in range(6)
    ]
    assert statuses == [401, 401, 401, 429, 429, 429]  # 3 free failures, then backoff


def test_the_token_endpoint_is_limited_per_client_with_the_api_error_model(app_env: Any) -> None:
    client, _clock, _backend = app_env
    form = {"grant_type": "client_credentials", "client_id": "c1", "client_secret": "bad"}
    answers = [client.post("/auth/oauth/token", data=form) for _ in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert answers[0].json()["error"] == "invalid_client"
    assert answers[-1].json()["type"] == "throttled"
    assert "retry-after" in answers[-1].headers
