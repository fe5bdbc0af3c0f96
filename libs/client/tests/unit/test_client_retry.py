"""The client's retries (429 after Retry-After, 503 with backoff), its typed errors and
pagination, against ``httpx.MockTransport`` answers and a fake sleep: no network."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from outpost_client import AsyncClient, Client, RetryPolicy, errors
from outpost_client.retry import parse_retry_after

pytestmark = pytest.mark.unit

RID = "0123456789abcdef0123456789abcdef"


def error(status: int, kind: str, **extra: Any) -> httpx.Response:
    body = {
        "object": "error",
        "code": status,
        "type": kind,
        "message": f"{kind} happened",
        "fields": extra.pop("fields", []),
        "request_id": RID,
    }
    return httpx.Response(status, json=body, headers={"X-Request-ID": RID, **extra})


def device(n: int) -> dict[str, Any]:
    return {
        "id": f"01900000-0000-7000-8000-{n:012d}",
        "name": f"d{n}",
        "status": "ACTIVE",
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
        "version": 1,
        "futureField": {"clients": "ignore it"},
    }


class Script:
    """Answers in order; records requests."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer


def client(script: Script, slept: list[float], policy: RetryPolicy | None = None) -> Client:
    return Client(
        "http://gw.test",
        "sk_live_x",
        transport=httpx.MockTransport(script),
        sleep=slept.append,
        retry=policy,
    )


def test_429_waits_what_retry_after_says_then_succeeds() -> None:
    script = Script(
        error(429, "throttled", **{"Retry-After": "7"}),
        httpx.Response(200, json=device(1)),
    )
    slept: list[float] = []
    got = client(script, slept).get_device("01900000-0000-7000-8000-000000000001")
    assert slept == [7.0]
    assert got.name == "d1" and got.status == "ACTIVE"
    assert len(script.requests) == 2


def test_503_backs_off_exponentially_and_gives_up_with_the_request_id() -> None:
    script = Script(*[error(503, "service_unavailable") for _ in range(4)])
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, base=0.5, cap=8)
    with pytest.raises(errors.ServiceUnavailable) as caught:
        client(script, slept, policy).list_devices()
    assert slept == [0.5, 1.0, 2.0]
    assert caught.value.request_id == RID and caught.value.status == 503
    assert RID in str(caught.value)


def test_a_retried_post_keeps_its_idempotency_key() -> None:
    script = Script(error(503, "service_unavailable"), httpx.Response(201, json=device(2)))
    slept: list[float] = []
    created = client(script, slept).create_device(body={"name": "d2"})
    assert created.name == "d2"
    keys = [r.headers.get("idempotency-key") for r in script.requests]
    assert keys[0] and keys[0] == keys[1]
    assert script.requests[0].headers["authorization"] == "Bearer sk_live_x"


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (400, "validation_error", errors.ValidationError),
        (401, "invalid_apikey", errors.Unauthorized),
        (403, "access_denied", errors.AccessDenied),
        (404, "not_found", errors.NotFound),
        (409, "conflict", errors.Conflict),
        (410, "gone", errors.Gone),
        (412, "precondition_failed", errors.PreconditionFailed),
        (500, "internal_server_error", errors.ServerError),
    ],
)
def test_errors_are_typed_and_not_retried(status: int, kind: str, cls: type) -> None:
    fields = [{"name": "name", "message": "required"}] if status == 400 else []
    script = Script(error(status, kind, fields=fields))
    slept: list[float] = []
    with pytest.raises(cls) as caught:
        client(script, slept).create_device(body={"name": "x"})
    assert slept == [] and len(script.requests) == 1
    assert caught.value.type == kind and caught.value.request_id == RID
    if fields:
        assert caught.value.fields == (errors.FieldError("name", "required"),)


def test_an_answer_outside_the_error_model_still_raises_by_status() -> None:
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(errors.ServerError) as caught:
        client(script, []).list_devices()
    assert caught.value.status == 502


def test_retry_after_as_an_http_date_and_garbled() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon", now) is None
    policy = RetryPolicy(base=0.5, max_retry_after=60)
    assert policy.delay(1, 429, "soon") == 0.5  # garbled: the backoff
    assert policy.delay(1, 429, "3600") == 60  # capped
    assert policy.delay(5, 429, "1") is None  # out of attempts
    assert policy.delay(1, 500, None) is None  # not retried


def test_pagination_follows_after_until_the_last_page() -> None:
    def page(items: list[int], after: str | None, more: bool) -> httpx.Response:
        body = {
            "object": "list",
            "data": [device(i) for i in items],
            "limit": 2,
            "after": after,
            "order": "ASC",
            "hasMore": more,
        }
        return httpx.Response(200, json=body)

    script = Script(page([1, 2], "a2", True), page([3, 4], "a4", True), page([5], None, False))
    api = client(script, [])
    names = [d.name for d in api.paginate(api.list_devices, limit=2)]
    assert names == ["d1", "d2", "d3", "d4", "d5"]
    assert [r.url.params.get("after") for r in script.requests] == [None, "a2", "a4"]
    assert all(r.url.params["limit"] == "2" for r in script.requests)


async def test_the_async_client_retries_and_paginates_the_same() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    answers = [
        error(429, "throttled", **{"Retry-After": "2"}),
        httpx.Response(
            200,
            json={
                "object": "list",
                "data": [device(1)],
                "limit": 50,
                "after": None,
                "order": "ASC",
                "hasMore": False,
            },
        ),
    ]
    script = Script(*answers)
    api = AsyncClient(
        "http://gw.test", "sk_live_x", transport=httpx.MockTransport(script), sleep=sleep
    )
    got = [d.name async for d in api.paginate(api.list_devices)]
    await api.aclose()
    assert got == ["d1"] and slept == [2.0]


def test_an_expired_session_token_is_refreshed_once_and_the_request_repeated() -> None:
    script = Script(
        error(401, "invalid_token"),
        httpx.Response(200, json=device(3)),
        error(401, "invalid_token"),
        error(401, "invalid_token"),
    )
    renewed: list[str] = []

    def refresh() -> str | None:
        renewed.append(f"jwt-{len(renewed) + 1}")
        return renewed[-1]

    api = Client("http://gw.test", "jwt-0", transport=httpx.MockTransport(script), refresh=refresh)
    assert api.get_device("01900000-0000-7000-8000-000000000003").name == "d3"
    auth = [r.headers["authorization"] for r in script.requests]
    assert auth == ["Bearer jwt-0", "Bearer jwt-1"]
    with pytest.raises(errors.Unauthorized):  # refused again after a refresh: give up
        api.get_device("01900000-0000-7000-8000-000000000003")
    assert renewed == ["jwt-1", "jwt-2"] and len(script.requests) == 4


def test_a_refused_api_key_is_not_refreshed() -> None:
    script = Script(error(401, "invalid_apikey"))
    called: list[int] = []

    def refresh() -> str | None:
        called.append(1)
        return "x"

    api = Client(
        "http://gw.test", "sk_live_x", transport=httpx.MockTransport(script), refresh=refresh
    )
    with pytest.raises(errors.Unauthorized):
        api.list_devices()
    assert called == []
