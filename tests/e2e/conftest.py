"""The whole platform, started exactly as ``make dev`` starts it, in a throwaway directory."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from outpost_kit.dev.stack import DevStack


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    base = Path(tempfile.mkdtemp(prefix="outpost-e2e-"))
    dev = DevStack(base, gateway_port=None, nats_port=None, pg_port=None, mqtt_port=None)
    try:
        dev.start()
        yield dev
    finally:
        dev.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def platform(stack: DevStack) -> dict[str, Any]:
    """``dev-credentials.json`` as ``make dev`` wrote it."""
    return dict(json.loads(stack.credentials_path.read_text()))


def _require_request_id(response: httpx.Response) -> None:
    rid = response.headers.get("x-request-id", "")
    assert len(rid) == 32 and all(c in "0123456789abcdef" for c in rid), (
        f"{response.request.method} {response.request.url} answered without a valid X-Request-ID"
    )


@pytest.fixture(scope="session")
def http(platform: dict[str, Any]) -> Iterator[httpx.Client]:
    """Every response through this client is checked for ``X-Request-ID``."""
    with httpx.Client(
        base_url=platform["gatewayUrl"],
        timeout=10,
        event_hooks={"response": [_require_request_id]},
    ) as client:
        yield client
