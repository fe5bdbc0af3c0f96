"""Rate-limit and idempotency domain: window math, categories, headers, verdicts."""

from __future__ import annotations

from uuid import uuid4

import pytest

from outpost_gateway.domain.idempotency import (
    Record,
    StoredResponse,
    Verdict,
    fingerprint,
    judge,
    keep_headers,
    worth_keeping,
)
from outpost_gateway.domain.policy import PUBLIC, ROUTE_POLICIES, UNRECOGNIZED, rate_category
from outpost_gateway.domain.ratelimit import (
    Category,
    Limits,
    LocalWindows,
    decide,
    local_share,
    window_at,
)

pytestmark = pytest.mark.unit


def test_windows_are_fixed_minutes_in_utc_epoch_seconds() -> None:
    assert window_at(1_800_000_000.0) == window_at(1_800_000_059.999)
    w = window_at(1_800_000_030.5)
    assert (w.start, w.end) == (1_800_000_000, 1_800_000_060)
    assert window_at(1_800_000_060.0).start == 1_800_000_060


def test_a_decision_reports_limit_remaining_reset_and_retry_after() -> None:
    first = decide(Category.LIST, 50, 1, 1_800_000_010.2)
    assert first.admitted and first.remaining == 49
    assert first.headers() == [
        ("X-RateLimit-Limit", "50"),
        ("X-RateLimit-Remaining", "49"),
        ("X-RateLimit-Reset", "1800000060"),
    ]
    last = decide(Category.LIST, 50, 50, 1_800_000_010.2)
    assert last.admitted and last.remaining == 0 and "Retry-After" not in dict(last.headers())
    over = decide(Category.LIST, 50, 51, 1_800_000_010.2)
    assert not over.admitted and over.remaining == 0
    assert dict(over.headers())["Retry-After"] == "50"  # ceil(60 - 10.2)
    assert "rate limit 'list' of 50 requests per minute exceeded" in over.message()
    at_edge = decide(Category.WRITE, 1, 2, 1_800_000_059.99)
    assert at_edge.retry_after == 1


def test_categories_come_from_the_route() -> None:
    assert rate_category("GET", "/api/v1/devices/{id}") is Category.SINGLE
    assert rate_category("GET", "/api/v1/devices") is Category.LIST
    assert rate_category("GET", "/api/v1/readings") is Category.LIST
    assert rate_category("POST", "/api/v1/devices") is Category.WRITE
    assert rate_category("DELETE", "/api/v1/api-keys/{id}") is Category.WRITE
    assert rate_category("GET", "/healthz") is None
    assert rate_category("GET", "/api/v3/api-docs") is None
    assert rate_category("GET", "/api/v3/{path}") is None
    assert rate_category("GET", "/not/a/route") is None


def test_every_credentialed_route_has_a_category() -> None:
    for (method, path), required in ROUTE_POLICIES.items():
        category = rate_category(method, path)
        assert (category is None) == (required in (PUBLIC, UNRECOGNIZED)), (method, path)


def test_limits_default_to_api_md_and_take_overrides() -> None:
    limits = Limits()
    assert [limits.for_category(c) for c in Category] == [500, 50, 50]
    changed = limits.with_overrides({Category.WRITE: 5})
    assert [changed.for_category(c) for c in Category] == [500, 50, 5]


def test_the_local_fallback_counts_per_window_and_forgets_old_ones() -> None:
    windows = LocalWindows()
    cred = uuid4()
    w0, w1, w2 = (window_at(t) for t in (0.0, 60.0, 120.0))
    assert [windows.hit(cred, Category.WRITE, w0) for _ in range(3)] == [1, 2, 3]
    assert windows.hit(cred, Category.LIST, w0) == 1
    assert windows.hit(cred, Category.WRITE, w1) == 1
    windows.hit(cred, Category.WRITE, w2)
    assert all(k[2] >= w1.start for k in windows._counts)
    assert local_share(50, 3) == 16 and local_share(2, 3) == 1 and local_share(500, 0) == 500


def test_fingerprints_differ_by_route_query_and_body() -> None:
    base = fingerprint("POST", "/api/v1/devices", "", b'{"name":"a"}')
    assert base == fingerprint("post", "/api/v1/devices", "", b'{"name":"a"}')
    assert base != fingerprint("POST", "/api/v1/devices", "", b'{"name":"b"}')
    assert base != fingerprint("POST", "/api/v1/api-keys", "", b'{"name":"a"}')
    assert base != fingerprint("POST", "/api/v1/devices", "x=1", b'{"name":"a"}')


def test_verdicts_on_a_key_already_seen() -> None:
    done = StoredResponse(201, (("content-type", "application/json"),), b"{}")
    assert judge(Record(b"h", done), b"h") is Verdict.REPLAY
    assert judge(Record(b"h", done), b"other") is Verdict.MISMATCH
    assert judge(Record(b"h", None), b"h") is Verdict.IN_FLIGHT
    assert judge(Record(b"h", None), b"other") is Verdict.MISMATCH
    assert worth_keeping(201) and worth_keeping(409) and not worth_keeping(503)
    kept = keep_headers([("content-type", "a"), ("x-ratelimit-limit", "5"), ("Location", "/x")])
    assert kept == (("content-type", "a"), ("Location", "/x"))
