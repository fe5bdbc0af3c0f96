"""JSON log lines: the request id from the context, trace ids from the current span, and
no URL password or Outpost credential in a message or a traceback."""

from __future__ import annotations

import json
import logging
import secrets

import pytest
from opentelemetry.sdk.resources import Resource

from outpost_kit.logs import JsonFormatter, request_scope, scrub
from outpost_kit.telemetry import OutpostTracerProvider

pytestmark = pytest.mark.unit


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_secrets_are_masked_wherever_they_appear() -> None:
    password = secrets.token_urlsafe(24)
    api_key = "sk_live_" + secrets.token_urlsafe(32)
    client_secret = "cs_" + secrets.token_urlsafe(32)
    refresh = f"rt_{'ab' * 32}_{secrets.token_urlsafe(32)}"
    registration = f"rt_{'cd' * 16}_{secrets.token_urlsafe(32)}"
    text = (
        f"postgresql+asyncpg://identity_app:{password}@127.0.0.1:5432/outpost and "
        f"tls://outpost-gateway:{password}@127.0.0.1:4222 key {api_key}, secret "
        f"{client_secret}; tokens {refresh} {registration}"
    )
    masked = scrub(text)
    for secret in (password, api_key, client_secret, refresh, registration):
        assert secret not in masked
    assert "identity_app:***@127.0.0.1" in masked
    assert "outpost-gateway:***@127.0.0.1" in masked
    assert "sk_***" in masked and "cs_***" in masked and masked.count("rt_***") == 2
    # Ordinary text is left alone.
    plain = "devices.CreateDevice failed for http://example.com/x with task_id=12"
    assert scrub(plain) == plain

    formatter = JsonFormatter("svc")
    try:
        raise RuntimeError(f"could not connect to tls://u:{password}@h:1 with {api_key}")
    except RuntimeError as exc:
        line = formatter.format(_record("connect %s failed", f"tls://u:{password}@h", exc=exc))
    assert password not in line and api_key not in line
    entry = json.loads(line)
    assert entry["msg"] == "connect tls://u:***@h failed"
    assert "RuntimeError" in entry["exc"]


def test_lines_carry_the_request_id_of_their_scope_and_the_current_trace() -> None:
    formatter = JsonFormatter("svc")
    outside = json.loads(formatter.format(_record("outside")))
    assert "request_id" not in outside and "trace_id" not in outside

    tracer = OutpostTracerProvider(Resource.create({})).get_tracer("t")
    with request_scope("req-1"), tracer.start_as_current_span("unrecorded") as span:
        inside = json.loads(formatter.format(_record("inside")))
        with request_scope(None):  # None leaves the scope's id in place
            still = json.loads(formatter.format(_record("still")))
    after = json.loads(formatter.format(_record("after")))
    context = span.get_span_context()
    assert inside["request_id"] == still["request_id"] == "req-1"
    # Ids exist though the span is not recorded (nothing listens: decision 57).
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert "request_id" not in after

    explicit = _record("explicit")
    explicit.request_id = "req-2"
    assert json.loads(formatter.format(explicit))["request_id"] == "req-2"
