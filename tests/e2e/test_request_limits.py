"""Request limits through the real gateway on granian (ADR 0042)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _keys import bearer, fresh_key

pytestmark = pytest.mark.e2e


def test_headers_over_16_kib_are_400_bad_request(
    platform: dict[str, Any], http: httpx.Client
) -> None:
    h = bearer(fresh_key(http, platform, "limits"))
    big = http.get("/api/v1/devices", headers={**h, "X-Padding": "p" * (17 * 1024)})
    assert big.status_code == 400, big.text
    assert big.json()["type"] == "bad_request" and "headers too large" in big.json()["message"]
    many = {f"X-Pad-{i}": "p" * 200 for i in range(90)}  # 90 headers, about 19 KiB together
    assert http.get("/api/v1/devices", headers={**h, **many}).status_code == 400
    assert http.get("/api/v1/devices", headers={**h, "X-Padding": "p" * 8000}).status_code == 200


def test_a_large_body_is_413(platform: dict[str, Any], http: httpx.Client) -> None:
    h = {**bearer(fresh_key(http, platform, "limits")), "content-type": "application/json"}
    body = b'{"name":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = http.post("/api/v1/devices", content=body, headers=h)
    assert resp.status_code == 413 and resp.json()["type"] == "payload_too_large"


def test_even_very_large_headers_get_the_error_model(
    platform: dict[str, Any], http: httpx.Client
) -> None:
    """A 500 KiB header is read whole (granian's HTTP/1 buffer is set to 2 MiB,
    ``http1_max_buffer_bytes``: at its default of 408 KiB the server itself sometimes cut
    such a head off with a reset the client saw instead of an answer), so the gateway's
    check answers, in the error model."""
    resp = http.get("/api/v1/devices", headers={"X-Padding": "p" * (500 * 1024)})
    assert resp.status_code == 400 and resp.json()["type"] == "bad_request"
    assert resp.json()["request_id"] == resp.headers["x-request-id"]
