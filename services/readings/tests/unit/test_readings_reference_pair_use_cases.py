"""Reference pairs' use cases on a fake of their port (the kit's shared fake, ADR 0089): what
a creation checks against the registry before it appends, tenant isolation, and what the
comparison makes of the statement's answer: the interval from the pair's window, the rollup
chosen, the null rules, the series and its limit. The statement itself is the integration
test's (``test_readings_reference_pairs.py``, real Postgres)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from outpost_contracts import reference_pairs as api
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.query import ListQuery, Page
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
    update_row,
)
from outpost_readings.app import reference_pairs as app
from outpost_readings.app.ports import ComparisonRows
from outpost_readings.domain.buckets import Buckets

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 2, tzinfo=UTC)
NO_ROWS = ComparisonRows(0, None, None, None, None, None, None, [], [], [], [])


@dataclass
class World(FakeWorld):
    pairs: dict[uuid.UUID, tuple[uuid.UUID, api.ReferencePairView]] = field(default_factory=dict)
    devices: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # device -> organization
    sensors: dict[tuple[uuid.UUID, str], str] = field(default_factory=dict)  # -> valueType
    answer: ComparisonRows = NO_ROWS


class FakeTx(FakeUnitOfWork[World]):
    asked: list[dict[str, Any]]  # what ``compare`` was asked, kept past the transaction

    def project(self, e: EventEnvelope) -> None:
        data, at, v = e.data, e.occurred_at, e.version
        if isinstance(data, api.ReferencePairCreated):
            self.w.pairs[e.stream_id] = (
                e.org_id,
                api.ReferencePairView(
                    id=e.stream_id,
                    name=data.name,
                    description=data.description,
                    test=data.test,
                    reference=data.reference,
                    window_seconds=data.window_seconds,
                    created_at=at,
                    updated_at=at,
                    version=v,
                ),
            )
        elif isinstance(data, api.ReferencePairUpdated):
            names = {"windowSeconds": "window_seconds"}
            changes = {names.get(c, c): getattr(data, names.get(c, c)) for c in data.changed}
            update_row(self.w.pairs, e.stream_id, **changes, updated_at=at, version=v)
        elif isinstance(data, api.ReferencePairDeleted):
            self.w.pairs.pop(e.stream_id, None)

    async def pair(self, pair_id: uuid.UUID) -> api.ReferencePairView | None:
        org, view = self.w.pairs.get(pair_id, (None, None))
        return view if org is not None and self.visible(org) else None

    async def pairs(self, query: ListQuery) -> Page[api.ReferencePairView]:
        mine = [p for org, p in self.w.pairs.values() if self.visible(org)]
        return first_page(mine, query, key=lambda p: p.id)

    async def device_in_registry(self, device_id: uuid.UUID) -> bool:
        org = self.w.devices.get(device_id)
        return org is not None and self.visible(org)

    async def sensor_type(self, device_id: uuid.UUID, sensor: str) -> str | None:
        if not await self.device_in_registry(device_id):
            return None
        return self.w.sensors.get((device_id, sensor))

    async def compare(
        self,
        test: api.SensorRef,
        reference: api.SensorRef,
        *,
        width: int,
        buckets: Buckets,
        dense: bool,
        series: bool,
    ) -> ComparisonRows:
        self.asked.append({"width": width, "buckets": len(buckets), "series": series})
        return self.w.answer


class FakePairs(FakeUnitOfWorkFactory[World, FakeTx]):
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []
        super().__init__(World(), self._tx)

    def _tx(self, world: World, org_id: uuid.UUID | None) -> FakeTx:
        tx = FakeTx(world, org_id)
        tx.asked = self.asked
        return tx


def ctx_of(org: uuid.UUID) -> RequestContext:
    principal = Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",))
    return RequestContext(request_id=secrets.token_hex(16), org_id=org, principal=principal)


class Env:
    def __init__(self) -> None:
        self.fake = FakePairs()
        self.deps = app.ReferencePairDeps(uow=self.fake)
        self.org = uuid.uuid4()

    @property
    def world(self) -> World:
        return self.fake.world

    def sensor(self, value_type: str = "NUMBER", org: uuid.UUID | None = None) -> api.SensorRef:
        device = uuid.uuid4()
        self.world.devices[device] = org or self.org
        self.world.sensors[(device, "pm25")] = value_type
        return api.SensorRef(device_id=device, sensor="pm25")

    async def call(self, handler: Any, body: Any, org: uuid.UUID | None = None) -> Any:
        return await handler(self.deps, ctx_of(org or self.org), body)

    async def pair(self, **kw: Any) -> api.ReferencePairView:
        body = api.CreateReferencePair(
            name="roof", test=self.sensor(), reference=self.sensor(), **kw
        )
        return await self.call(app.create_pair, body)  # type: ignore[no-any-return]


async def test_creation_checks_the_registry_before_it_appends() -> None:
    env = Env()
    mine, text, theirs = env.sensor(), env.sensor("STRING"), env.sensor(org=uuid.uuid4())
    missing = api.SensorRef(device_id=mine.device_id, sensor="co2")
    for test, reference, name in [
        (mine, mine, "reference"),
        (theirs, mine, "test.deviceId"),
        (mine, missing, "reference.sensor"),
        (text, mine, "test.sensor"),
    ]:
        body = api.CreateReferencePair(name="x", test=test, reference=reference)
        with pytest.raises(ValidationFailed) as caught:
            await env.call(app.create_pair, body)
        assert caught.value.fields[0].name == name
    assert env.world.streams == {} and env.world.pairs == {}
    made = await env.pair()
    other = uuid.uuid4()
    with pytest.raises(NotFound):
        await env.call(app.get_pair, api.GetReferencePair(id=made.id), org=other)
    assert (await env.call(app.list_pairs, api.ListReferencePairs(), org=other)).data == []


async def test_the_comparison_of_the_statements_answer() -> None:
    env = Env()
    made = await env.pair(window_seconds=3600)
    ts = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    env.world.answer = ComparisonRows(
        3, 1.0, 1.0, 1.0, 0.99, 0.9, -1.8, ts, [3.0, 4.0, 5.0], [2.0, 3.0, 4.2], [0.9, 1.8, 2.7]
    )
    body = api.CompareReferencePair(id=made.id, from_=T0, to=T0 + timedelta(hours=3))
    view = await env.call(app.compare_pair, body)
    # the pair's window: 1h buckets from the hourly rollup; no series asked for
    assert view.interval == "1h" and env.fake.asked[-1] == {
        "width": 3600,
        "buckets": 3,
        "series": False,
    }
    assert (view.n, view.slope, view.intercept) == (3, 0.9, -1.8)
    assert view.series is msgspec.UNSET
    view = await env.call(
        app.compare_pair, msgspec.structs.replace(body, interval="5m", corrected=True)
    )
    assert env.fake.asked[-1] == {"width": 60, "buckets": 36, "series": True}
    assert [(p.ts, p.test, p.reference, p.corrected) for p in view.series] == [
        (T0, 3.0, 2.0, 0.9),
        (ts[1], 4.0, 3.0, 1.8),
        (ts[2], 5.0, 4.2, 2.7),
    ]
    # one bucket: Postgres' figures are not stated
    env.world.answer = ComparisonRows(
        1, 1.0, 1.0, 1.0, None, None, None, ts[:1], [3.0], [2.0], [None]
    )
    one = await env.call(app.compare_pair, msgspec.structs.replace(body, series=True))
    assert (one.n, one.bias, one.mae, one.rmse) == (1, None, None, None)
    assert [p.corrected for p in one.series] == [msgspec.UNSET]
    # a series of more than MAX_SERIES_POINTS buckets is refused, the figures alone are not
    week = msgspec.structs.replace(body, interval="1m", to=T0 + timedelta(days=4))
    await env.call(app.compare_pair, week)
    with pytest.raises(ValidationFailed) as caught:
        await env.call(app.compare_pair, msgspec.structs.replace(week, series=True))
    assert caught.value.fields[0].name == "interval"
    with pytest.raises(ValidationFailed):
        await env.call(app.compare_pair, msgspec.structs.replace(body, to=T0))
    with pytest.raises(NotFound):
        await env.call(app.compare_pair, body, org=uuid.uuid4())
