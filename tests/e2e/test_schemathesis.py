"""Property-based checks of the running platform against its own OpenAPI document: the GET
operations and ``POST /api/v1/devices``, a few examples each, with a fresh API key per
operation (so one key's list rate limit is not the limit of the run).

One test drives hypothesis per operation and reports every failing operation at once
(schemathesis' pytest loader, ``from_fixture``, does not work with pytest 9:
``'Function' object has no attribute '_nodeid'``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from _keys import bearer, fresh_key
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, response_schema_conformance]


def _selected(ctx: Any) -> bool:
    method, path = ctx.operation.method.upper(), ctx.operation.path
    return method == "GET" or (method, path) == ("POST", "/api/v1/devices")


def _run(operation: Any, key: str, statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(headers=bearer(key), checks=CHECKS, timeout=15)
        statuses[response.status_code] += 1

    check()


def test_the_api_keeps_its_document(platform: dict[str, Any], http: httpx.Client) -> None:
    url = platform["gatewayUrl"]
    schema = schemathesis.openapi.from_url(f"{url}/api/v3/api-docs")
    schema.config.update(base_url=url)
    operations = [result.ok() for result in schema.include(_selected).get_all_operations()]
    assert len(operations) >= 8
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    for operation in operations:
        key = fresh_key(http, platform, "schemathesis")
        try:
            _run(operation, key, statuses)
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    print(f"schemathesis: {len(operations)} operations, responses by status {dict(statuses)}")
    assert statuses[200] > 0 and statuses[201] > 0, statuses  # not only refusals
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
