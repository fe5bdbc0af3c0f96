"""Property-based checks of the running platform against its own OpenAPI document.

Stateless: every operation of the document, a few examples each, with the credential its
policy asks for: the operator's key on operator routes, none on public ones (login, refresh,
the OAuth token endpoint: their credential is in the body), and otherwise an API key of a
fresh organization per operation (so one key's rate limits are not the limit of the run).

Stateful: schemathesis' state machine follows the document's links (a created object's
``id`` into the operations on it) through chains of calls, in one fresh organization.

Both drive hypothesis directly and report every failure at once (schemathesis' pytest
loader, ``from_fixture``, does not work with pytest 9:
``'Function' object has no attribute '_nodeid'``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from _keys import bearer, fresh_key
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Flaky
from schemathesis.checks import not_a_server_error
from schemathesis.config._phases import InferenceConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 8
STATEFUL_EXAMPLES = 10
STATEFUL_STEPS = 6
LINKS_PER_MACHINE = 4
STATEFUL_SUITES = 2  # a suite that Hypothesis ends early (see Flaky below) is followed by one more
ENDLESS = frozenset({"GET /api/v1/events/stream"})  # Server-Sent Events (ADR 0096)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def _security(operation: Any) -> str:
    """``operator``, ``public`` or ``org``: whose credential the operation takes."""
    security = operation.definition.raw.get("security")
    if security == []:
        return "public"
    if security == [{"bearerAuth": []}]:  # bearer only: the operator's routes (decision 43)
        return "operator"
    return "org"


def _schema(url: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{url}/api/v3/api-docs")
    schema.config.update(base_url=url)
    return schema


def _run(operation: Any, headers: dict[str, str], statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=15)
        statuses[response.status_code] += 1

    check()


def test_every_operation_keeps_the_document(platform: dict[str, Any], http: httpx.Client) -> None:
    schema = _schema(platform["gatewayUrl"])
    # Nothing is excluded but the live stream, whose 200 never ends (a request/response
    # fuzzer cannot validate it; tests/e2e/test_events_stream.py covers it, refusals too):
    # no operation can take the run's own credentials away. Each
    # organization key is used for one operation only, so `DELETE /api-keys/{id}` and
    # `POST /auth/logout` cannot end a later operation's key, and the operator's key cannot
    # be revoked through the API. Random ids never name an existing object.
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.label not in ENDLESS
    ]
    assert len(operations) >= 25
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    for operation in operations:
        kind = _security(operation)
        kinds[kind] += 1
        if kind == "public":
            headers: dict[str, str] = {}
        elif kind == "operator":
            headers = bearer(platform["operatorKey"])
        else:
            headers = bearer(fresh_key(http, platform, "schemathesis"))
        try:
            _run(operation, headers, statuses)
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    print(
        f"schemathesis: {len(operations)} operations {dict(kinds)},"
        f" responses by status {dict(statuses)}"
    )
    assert kinds["public"] and kinds["operator"] and kinds["org"], kinds
    assert statuses[200] > 0 and statuses[201] > 0, statuses  # not only refusals
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def _families(document: dict[str, Any]) -> dict[str, set[str]]:
    """Each creating operation, by label, with the operations its links lead to."""
    labels = {
        op["operationId"]: f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    families: dict[str, set[str]] = {}
    for path, item in document["paths"].items():
        links = item.get("post", {}).get("responses", {}).get("201", {}).get("links", {})
        if links:
            families[f"POST {path}"] = {labels[link["operationId"]] for link in links.values()}
    return families


def test_linked_operations_keep_the_document(
    platform: dict[str, Any], tenants: Any, raise_limits: Any
) -> None:
    schema = _schema(platform["gatewayUrl"])
    # only the document's own links, not links schemathesis would infer
    schema.config.phases.stateful.inference = InferenceConfig(algorithms=[])
    families = _families(schema.raw_schema)
    assert len(families) >= 5, families
    org = tenants.org("stateful")
    raise_limits(org["id"])  # the scenarios make more than 50 writes a minute
    org_key = tenants.key(org["id"])["key"]
    operator = platform["operatorKey"]
    followed: Counter[tuple[str, int]] = Counter()
    steps: Counter[int] = Counter()
    failures: list[str] = []
    ended_early: Counter[str] = Counter()

    def workflow(machine: Any) -> Any:
        class Workflow(machine):  # type: ignore[misc, valid-type]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                kind = _security(case.operation)
                key = operator if kind == "operator" else org_key
                return {"headers": {} if kind == "public" else bearer(key), "timeout": 15}

            def validate_response(
                self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
            ) -> None:
                try:
                    case.validate_response(
                        response,
                        checks=CHECKS,
                        transport_kwargs=kwargs or None,
                        recorder=self.recorder,
                    )
                except Exception as exc:
                    failures.append(f"{case.operation.label}\n{type(exc).__name__}: {exc}"[:3000])
                    raise

            def step(self, input: Any) -> Any:
                output = super().step(input)
                steps[output.response.status_code] += 1
                if input.transition is not None:
                    # "<source> -> [<status>] <link> -> <target>"
                    followed[(input.transition.id, output.response.status_code)] += 1
                return output

        return Workflow

    # One state machine per creating operation and the operations it links to: schemathesis
    # starts scenarios only from operations it expects to succeed with generated data, and
    # it does not expect that of `POST /devices` (its `siteId` and `groupId` name resources
    # that no operation creates yet), so in one machine for the whole document no scenario
    # would ever create a device.
    # A creating operation with many links (a device: its state, commands, certificates…)
    # gets one machine per few of them, so each link is tried about as often as in a small
    # family (the scenarios of one machine spread over all its links).
    machines = [
        (source, ordered[i : i + LINKS_PER_MACHINE])
        for source, targets in families.items()
        for ordered in [sorted(targets)]
        for i in range(0, len(ordered), LINKS_PER_MACHINE)
    ]
    for source, targets in machines:
        family = {source, *targets}
        machine = schema.include(lambda ctx, f=family: ctx.operation.label in f).as_state_machine()
        for suite in range(STATEFUL_SUITES):
            try:
                seed(suite)(workflow(machine)).run(
                    settings=settings(
                        # generation only, as schemathesis' own runner does: shrinking replays
                        # scenarios, and the platform keeps what the first run created
                        phases=[Phase.generate],
                        max_examples=STATEFUL_EXAMPLES,
                        stateful_step_count=STATEFUL_STEPS,
                        deadline=None,
                        suppress_health_check=list(HealthCheck),
                        database=None,
                    )
                )
                break
            except Flaky:
                # Hypothesis replays the start of earlier scenarios to find new ones; the
                # platform kept what they created, so the replay differs (a name now taken
                # is 409, which leaves nothing to link from) and Hypothesis stops the suite.
                # schemathesis' own runner ends a suite the same way; a check that failed
                # is in `failures` either way.
                ended_early[source] += 1
    print(f"schemathesis stateful: responses by status {dict(steps)}")
    for (link, status), n in sorted(followed.items()):
        print(f"  {n:3} x {status} {link}")
    print(f"  suites ended early: {dict(ended_early)}")
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    # links were followed to the objects just created, so the run is not vacuous
    reached = {link.rsplit(" -> ", 1)[-1] for (link, status) in followed if status < 300}
    # A device was created and then used through a link (which of its links answered 2xx
    # depends on the data Hypothesis drew for that document: GET /devices/{id} drew only
    # bad query strings in one run after the exports routes joined the document).
    assert any(r.split(" ", 1)[1].startswith("/api/v1/devices/{id}") for r in reached), followed
    assert len(reached) >= 6, followed
