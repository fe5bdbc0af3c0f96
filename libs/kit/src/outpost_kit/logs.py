"""Structured JSON logs on stderr, one object per line, with trace, span and request ids.

Every line written while a request or a message is handled carries the ids of what it is
handling: ``trace_id`` and ``span_id`` from the current span (they exist whether or not
spans are recorded, decision 57) and ``request_id`` from a context variable the gateway's
edge, the responders and the consumers set (``request_scope``), so a log call needs no
``extra``. Lines never carry a secret: what the code logs is chosen not to (decision 66),
and as a last guard the formatter masks the password of any URL (``scheme://user:***@``)
and anything shaped like one of Outpost's own credentials (API keys, OAuth client secrets,
registration tokens) wherever it appears in a message or a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import msgspec
from opentelemetry import trace

_encoder = msgspec.json.Encoder()

REQUEST_ID: ContextVar[str | None] = ContextVar("outpost_request_id", default=None)

# ``scheme://user:password@``: the password is masked, the user kept (it says which role).
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)", re.I)
# Outpost's own credential formats: a prefix and a long random tail.
_CREDENTIAL = re.compile(r"\b(?P<kind>sk|cs|rt|ot|opi)_(?P<tail>[A-Za-z0-9_-]{16,})")


def scrub(text: str) -> str:
    """``text`` with URL passwords and credential-shaped strings masked."""
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\g<head>***", text)
    if "_" in text:
        text = _CREDENTIAL.sub(r"\g<kind>_***", text)
    return text


def current_request_id() -> str | None:
    return REQUEST_ID.get()


@contextlib.contextmanager
def request_scope(request_id: str | None) -> Iterator[None]:
    """Log lines written inside carry ``request_id`` (nothing changes for None)."""
    if request_id is None:
        yield
        return
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = f"{ctx.trace_id:032x}"
            entry["span_id"] = f"{ctx.span_id:016x}"
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = str(request_id)
        org_id = getattr(record, "org_id", None)
        if org_id is not None:
            entry["org_id"] = str(org_id)
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return _encoder.encode(entry).decode()


def setup_logging(service: str, level: str = "INFO") -> None:
    import time

    logging.Formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "asyncio"):
        logging.getLogger(noisy).setLevel("WARNING")
