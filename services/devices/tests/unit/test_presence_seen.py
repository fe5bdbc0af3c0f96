"""Telemetry as "last seen": the subject is all that is read, one statement per tenant per
flush, and a failed flush keeps its times for the next one."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import pytest

from outpost_contracts import subjects
from outpost_devices.app.presence import SeenRecorder

pytestmark = pytest.mark.unit


class _Result:
    rowcount = 1


class FakeUow:
    def __init__(self, log: list[tuple[Any, str, Any]], org_id: Any, fail: bool) -> None:
        self.log, self.org_id, self.fail = log, org_id, fail

    async def __aenter__(self) -> FakeUow:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def execute(self, sql: str, params: Any = None) -> _Result:
        if self.fail:
            raise ConnectionError("postgres is away")
        self.log.append((self.org_id, sql, params))
        return _Result()

    async def record_seen(self, seen: Any) -> int:
        """The port's one call per tenant (``PresenceRecords.record_seen``, ADR 0085), logged
        as the one statement the Postgres adapter makes of it."""
        params = {"ids": list(seen), "ats": list(seen.values())}
        return (await self.execute("UPDATE devices SET last_seen_at ...", params)).rowcount

    async def commit(self) -> None:
        self.log.append((self.org_id, "COMMIT", None))


class FakeUowFactory:
    def __init__(self) -> None:
        self.log: list[tuple[Any, str, Any]] = []
        self.fail = False

    def __call__(self, org_id: Any) -> FakeUow:
        return FakeUow(self.log, org_id, self.fail)


async def test_one_statement_per_tenant_and_nothing_for_other_subjects() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    d1, d2, d3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    recorder = SeenRecorder()
    for org, device in ((a, d1), (a, d2), (b, d3), (a, d1)):
        recorder.note(subjects.telemetry(org, device))
    recorder.note("outpost.tel.not-a-uuid.x")
    recorder.note("outpost.cmd.x")
    assert len(recorder) == 4  # three devices, and one well-shaped subject that is no device
    uows = FakeUowFactory()
    await recorder.flush(uows)  # type: ignore[arg-type]
    updates = [(org, params) for org, sql, params in uows.log if sql != "COMMIT"]
    assert sorted(str(org) for org, _ in updates) == sorted([str(a), str(b)])
    by_org = {org: set(params["ids"]) for org, params in updates}
    assert by_org == {a: {d1, d2}, b: {d3}}
    assert len(recorder) == 0


async def test_a_failed_flush_keeps_its_times() -> None:
    org, device = uuid.uuid4(), uuid.uuid4()
    recorder = SeenRecorder()
    recorder.note(subjects.telemetry(org, device))
    uows = FakeUowFactory()
    uows.fail = True
    await recorder.flush(uows)  # type: ignore[arg-type]
    assert len(recorder) == 1
    uows.fail = False
    await recorder.flush(uows)  # type: ignore[arg-type]
    assert [params["ids"] for _, sql, params in uows.log if sql != "COMMIT"] == [[device]]


def test_an_http_batch_published_for_a_device_is_not_the_device_seen() -> None:
    from outpost_contracts.readings import SOURCE_HEADER, SOURCE_HTTP
    from outpost_devices.entrypoints.presence import from_device

    assert from_device(None) and from_device({}) and from_device({"Nats-Msg-Id": "x"})
    assert not from_device({SOURCE_HEADER: SOURCE_HTTP, "Nats-Msg-Id": "x"})
