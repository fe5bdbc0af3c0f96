"""The whole platform, started exactly as ``make dev`` starts it, in a throwaway directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from outpost_contracts.envelope import PLATFORM_ORG_ID
from outpost_devkit.dev.stack import DevStack
from outpost_devkit.testing.otlp import OtlpReceiver
from outpost_kit.db.engine import plain_dsn

# The operator and the demo organization set up every test's tenants; on a fast machine they
# would exhaust the default 50 writes a minute. They get a per-organization override, the
# mechanism an operator would use (docs/runbook.md); every other tenant keeps the defaults,
# which the rate-limit tests rely on.
_GENEROUS = 100_000


def _raise_limits(
    dev: DevStack,
    org_ids: list[str],
    per_minute: int = _GENEROUS,
    categories: tuple[str, ...] = ("single", "list", "write"),
) -> None:
    assert dev.pg is not None

    async def run() -> None:
        conn = await asyncpg.connect(plain_dsn(dev.pg.admin_dsn))  # type: ignore[union-attr]
        try:
            await conn.executemany(
                "INSERT INTO gateway.rate_limit_overrides (org_id, category, per_minute)"
                " VALUES ($1, $2, $3) ON CONFLICT (org_id, category)"
                " DO UPDATE SET per_minute = excluded.per_minute",
                [(uuid.UUID(o), c, per_minute) for o in org_ids for c in categories],
            )
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    """Where every process of the platform exports its spans during the e2e run, as to an
    OpenTelemetry collector (decision 66: spans are recorded only when something listens,
    so the e2e platform records them, as an operator's would)."""
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


# What no log line may hold, whichever test made it: API keys, OAuth client secrets,
# refresh and one-time tokens in the clear (their shape; the log formatter masks them as
# ``sk_***``), signed JWTs, private keys. test_observability checks one story's secrets by
# value; this checks the whole run's by shape, in every process's log, nats.log and
# postgres.log included (issue 8).
_LEAKS = {
    "credential": re.compile(r"\b(?:sk|cs|rt|ot)_[A-Za-z0-9_-]{16,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def _no_credential_in_any_log(dev: DevStack) -> None:
    time.sleep(1.0)  # what the processes wrote last has reached their logs
    logs = [*dev.log_dir.glob("*.log"), dev.base_dir / "nats" / "nats.log"]
    logs += [dev.base_dir / "pg" / "postgres.log"]
    found = []
    for path in (p for p in logs if p.exists()):
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found += [
                f"{what} in {path.name}:{n}" for what, rx in _LEAKS.items() if rx.search(line)
            ]
    assert not found, f"secrets in the platform's logs after the e2e run: {found[:20]}"


@pytest.fixture(scope="session")
def stack(otlp: OtlpReceiver) -> Iterator[DevStack]:
    base = Path(tempfile.mkdtemp(prefix="outpost-e2e-"))
    # The overrides below apply at once; API keys' lastUsedAt is reported every second.
    quick = {
        **otlp.env(),
        "OUTPOST_GATEWAY_RATELIMIT_OVERRIDE_TTL_SECONDS": "1",
        "OUTPOST_GATEWAY_KEY_USAGE_REPORT_SECONDS": "1",
        # A command for an offline device is offered again at least every 2 s.
        "OUTPOST_DEVICES_COMMAND_BACKOFF_MAX_SECONDS": "2",
        # /events/stream's heartbeat every second: a test's reader notices a close at once.
        "OUTPOST_GATEWAY_STREAM_HEARTBEAT_SECONDS": "1",
        # Export download links live 8 s, so a test can see one expire.
        "OUTPOST_GATEWAY_DOWNLOAD_URL_SECONDS": "8",
        # Every test reaches the public routes from 127.0.0.1, and some log one user in
        # several times a minute: the suite raises the public routes' limits (decision 75)
        # the way an operator would. test_public_throttle runs a replica with tight ones.
        "OUTPOST_GATEWAY_PUBLIC_PER_ADDRESS_PER_MINUTE": "100000",
        "OUTPOST_GATEWAY_PUBLIC_PER_ACCOUNT_PER_MINUTE": "60",
        # Two password hashes at once: test_public_throttle holds identity to that ceiling.
        "OUTPOST_IDENTITY_MAX_CONCURRENT_HASHES": "2",
    }
    previous = {name: os.environ.get(name) for name in quick}
    os.environ.update(quick)
    dev = DevStack(base, gateway_port=None, nats_port=None, pg_port=None, mqtt_port=None)
    try:
        credentials = dev.start()
        _raise_limits(dev, [str(PLATFORM_ORG_ID), credentials["organization"]["id"]])
        time.sleep(1.5)
        yield dev
        _no_credential_in_any_log(dev)
    finally:
        dev.stop()
        shutil.rmtree(base, ignore_errors=True)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def raise_limits(stack: DevStack) -> Any:
    """Give an organization the operator's generous rate limits (for tests whose volume, not
    whose limits, is the point), or the limits given; effective once the gateways' 1 s
    override cache expires."""

    def apply(org_id: str, per_minute: int = _GENEROUS, categories: tuple[str, ...] = ()) -> None:
        _raise_limits(stack, [org_id], per_minute, categories or ("single", "list", "write"))
        time.sleep(1.5)

    return apply


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


# --- fresh organizations and keys ------------------------------------------------------
# Tests that need tenants of their own make them here, so tenants and per-credential rate
# limits never overlap between tests.


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_org(http: httpx.Client, platform: dict[str, Any], prefix: str) -> dict[str, Any]:
    resp = http.post(
        "/api/v1/admin/organizations",
        json={"name": f"{prefix}-{uuid.uuid4().hex[:8]}"},
        headers=_bearer(platform["operatorKey"]),
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def new_key(
    http: httpx.Client, platform: dict[str, Any], org_id: str, scopes: list[str] | None = None
) -> dict[str, Any]:
    """An API key of ``org_id``, returned once every gateway accepts it."""
    body: dict[str, Any] = {"name": f"k-{uuid.uuid4().hex[:6]}"}
    if scopes is not None:
        body["scopes"] = scopes
    resp = http.post(
        "/api/v1/api-keys",
        json=body,
        headers={**_bearer(platform["operatorKey"]), "X-Organization": org_id},
    )
    assert resp.status_code == 201, resp.text
    issued = dict(resp.json())
    wait_until(lambda: http.get("/api/v1/devices", headers=_bearer(issued["key"])).status_code, 200)
    return issued


def wait_until(probe: Any, want: int, seconds: float = 30) -> float:
    """Poll ``probe()`` (a status code) until it is ``want``; the seconds it took."""
    start = time.monotonic()
    while (got := probe()) != want:
        assert time.monotonic() - start < seconds, f"still {got} after {seconds}s, wanted {want}"
        time.sleep(0.1)
    return time.monotonic() - start


class Tenants:
    """``new_org`` / ``new_key`` bound to the session's platform and client."""

    def __init__(self, http: httpx.Client, platform: dict[str, Any]) -> None:
        self.http = http
        self.platform = platform

    def org(self, prefix: str) -> dict[str, Any]:
        return new_org(self.http, self.platform, prefix)

    def key(self, org_id: str, scopes: list[str] | None = None) -> dict[str, Any]:
        return new_key(self.http, self.platform, org_id, scopes)


@pytest.fixture(scope="session")
def tenants(platform: dict[str, Any], http: httpx.Client) -> Tenants:
    return Tenants(http, platform)
