"""Reference pairs against real Postgres (ADR 0098): CRUD and its validation against
readings' device and sensor registry, tenant isolation, and the comparison's figures,
computed by Postgres over the rollups, checked against Python's ``statistics`` over the same
bucket means (noise-free data with a known bias and slope, noisy data, the per-minute
rollup re-bucketed into 5m and the hourly one read as it is, the edge cases)."""

from __future__ import annotations

import math
import random
import secrets
import statistics
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from outpost_contracts import reference_pairs as api
from outpost_contracts.devices import DeviceRegistered
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound, PreconditionFailed, ValidationFailed
from outpost_contracts.query import Cmp, ListQuery
from outpost_contracts.readings import TelemetryMessage, TelemetryReading
from outpost_kit import ids
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings import bootstrap
from outpost_readings.adapters.reference_pair_store import (
    PgReferencePairs,
    ReferencePairsProjector,
)
from outpost_readings.app import handlers
from outpost_readings.app import reference_pairs as app
from outpost_readings.domain.readings import Limits

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)
LIMITS = Limits(max_future=timedelta(days=3650), max_past=timedelta(days=3650))


def ctx_of(org: uuid.UUID) -> RequestContext:
    principal = Principal(kind=PrincipalKind.API_KEY, id=ids.new_id(), org_id=org, scopes=("*",))
    return RequestContext(request_id=secrets.token_hex(16), org_id=org, principal=principal)


class Env:
    def __init__(self, deps: app.ReferencePairDeps, ingest: handlers.Deps) -> None:
        self.deps = deps
        self.ingest_deps = ingest

    async def device(self, org: uuid.UUID) -> uuid.UUID:
        device = ids.new_id()
        envelope = EventEnvelope(
            id=ids.new_id(),
            org_id=org,
            stream_id=device,
            stream_type="device",
            version=1,
            occurred_at=ids.now(),
            data=DeviceRegistered(name=f"d-{device}"),
        )
        async with self.ingest_deps.uow(org) as uow:
            await handlers.on_device_event(uow, envelope)
            await uow.commit()
        return device

    async def ingest(
        self, org: uuid.UUID, device: uuid.UUID, readings: list[tuple[str, datetime, Any]]
    ) -> None:
        message = TelemetryMessage(
            seq=0,
            readings=[TelemetryReading(sensor=s, ts=ts, value=v) for s, ts, v in readings],
        )
        item = handlers.Incoming(
            org_id=org,
            device_id=device,
            message=message,
            arrival=ids.now(),
            source="http",
            first_delivery=True,
        )
        [outcome] = await handlers.ingest(self.ingest_deps, [item], ids.now())
        assert outcome.rejected == 0

    async def call(self, handler: Any, org: uuid.UUID, body: Any) -> Any:
        return await handler(self.deps, ctx_of(org), body)


@pytest.fixture
async def env(postgres_dsn: str) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "readings", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "readings", pool_size=4)
    uow = UnitOfWorkFactory(engine, EventCodec(api.EVENT_TYPES), (ReferencePairsProjector(),))

    async def exists(ctx: Any, device_id: uuid.UUID) -> bool:
        return False

    ingest = handlers.Deps(uow=uow, limits=LIMITS, device_exists=exists)
    try:
        yield Env(app.ReferencePairDeps(uow=PgReferencePairs.over(uow)), ingest)
    finally:
        await engine.dispose()


def ref(device: uuid.UUID, sensor: str) -> api.SensorRef:
    return api.SensorRef(device_id=device, sensor=sensor)


async def _pair(
    env: Env, org: uuid.UUID, test: api.SensorRef, reference: api.SensorRef, **kw: Any
) -> api.ReferencePairView:
    name = kw.pop("name", "pm25")
    body = api.CreateReferencePair(name=name, test=test, reference=reference, **kw)
    return await env.call(app.create_pair, org, body)  # type: ignore[no-any-return]


async def _compare(env: Env, org: uuid.UUID, pair: uuid.UUID, **kw: Any) -> api.ComparisonView:
    kw.setdefault("from_", T0)
    kw.setdefault("to", T0 + timedelta(hours=6))
    body = api.CompareReferencePair(id=pair, **kw)
    return await env.call(app.compare_pair, org, body)  # type: ignore[no-any-return]


def reference_figures(xs: list[float], ys: list[float]) -> dict[str, float]:
    """The comparison by Python's ``statistics``: x the test means, y the reference's."""
    diffs = [x - y for x, y in zip(xs, ys, strict=True)]
    fit = statistics.linear_regression(xs, ys)  # y = slope * x + intercept
    return {
        "bias": statistics.fmean(diffs),
        "mae": statistics.fmean(abs(d) for d in diffs),
        "rmse": math.sqrt(statistics.fmean(d * d for d in diffs)),
        "r": statistics.correlation(xs, ys),
        "slope": fit.slope,
        "intercept": fit.intercept,
    }


def assert_figures(view: api.ComparisonView, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        got = getattr(view, name)
        assert got is not None, name
        assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), (name, got, value)


async def _two_sensors(env: Env, org: uuid.UUID) -> tuple[api.SensorRef, api.SensorRef]:
    a, c = await env.device(org), await env.device(org)
    return ref(a, "pm25"), ref(c, "pm25")


async def test_crud_validation_and_tenant_isolation(env: Env) -> None:
    org, other = ids.new_id(), ids.new_id()
    test, reference = await _two_sensors(env, org)
    await env.ingest(org, test.device_id, [("pm25", T0, 1.0), ("on", T0, True)])
    await env.ingest(org, reference.device_id, [("pm25", T0, 1.0)])

    made = await _pair(env, org, test, reference, description="co-located on the roof")
    assert made.version == 1 and made.window_seconds == 300
    assert made.test == test and made.reference == reference

    # the sensors: the same one twice, an unknown device, a missing sensor, not a NUMBER
    cases = [
        (test, test, "reference"),
        (ref(ids.new_id(), "pm25"), reference, "test.deviceId"),
        (test, ref(reference.device_id, "nope"), "reference.sensor"),
        (ref(test.device_id, "on"), reference, "test.sensor"),
    ]
    for t, r, field in cases:
        with pytest.raises(ValidationFailed) as caught:
            await _pair(env, org, t, r)
        assert caught.value.fields[0].name == field, caught.value.fields
    # another organization's devices are not found
    with pytest.raises(ValidationFailed):
        await _pair(env, other, test, reference)

    page = await env.call(
        app.list_pairs,
        org,
        api.ListReferencePairs(
            query=ListQuery(filter=Cmp(field="test.deviceId", op="eq", value=str(test.device_id)))
        ),
    )
    assert [p.id for p in page.data] == [made.id]
    assert (await env.call(app.list_pairs, other, api.ListReferencePairs())).data == []

    patched = await env.call(
        app.update_pair,
        org,
        api.UpdateReferencePair(
            id=made.id,
            patch=api.ReferencePairPatch(window_seconds=3600, description=None),
            expected_version=1,
        ),
    )
    assert patched.version == 2 and patched.window_seconds == 3600
    assert patched.description is None
    with pytest.raises(PreconditionFailed):
        await env.call(
            app.update_pair,
            org,
            api.UpdateReferencePair(
                id=made.id, patch=api.ReferencePairPatch(name="x"), expected_version=1
            ),
        )
    for handler, body in [
        (app.get_pair, api.GetReferencePair(id=made.id)),
        (app.delete_pair, api.DeleteReferencePair(id=made.id)),
        (app.compare_pair, api.CompareReferencePair(id=made.id, from_=T0, to=T0 + timedelta(1))),
    ]:
        with pytest.raises(NotFound):
            await env.call(handler, other, body)
    await env.call(app.delete_pair, org, api.DeleteReferencePair(id=made.id, expected_version=2))
    with pytest.raises(NotFound):
        await env.call(app.get_pair, org, api.GetReferencePair(id=made.id))


async def test_a_known_bias_and_slope_from_the_rollups(env: Env) -> None:
    """test = 1.1 * ref + 2, noise-free, several readings a bucket: the reference on the
    test sensor is ref = (test - 2) / 1.1, so slope 1/1.1 and intercept -2/1.1; r = 1."""
    org = ids.new_id()
    test, reference = await _two_sensors(env, org)
    rng = random.Random(24)
    refs: list[tuple[str, datetime, Any]] = []
    tests: list[tuple[str, datetime, Any]] = []
    for minute in range(6 * 60):
        for second in (5, 35):
            at = T0 + timedelta(minutes=minute, seconds=second)
            value = 10 + 5 * math.sin(minute / 17) + rng.uniform(-3, 3)
            refs.append(("pm25", at, value))
            tests.append(("pm25", at, 1.1 * value + 2))
    await env.ingest(org, reference.device_id, refs)
    await env.ingest(org, test.device_id, tests)
    pair = await _pair(env, org, test, reference)

    for interval in ("5m", "1h", "1m"):
        view = await _compare(env, org, pair.id, interval=interval, corrected=True)
        width = {"1m": 60, "5m": 300, "1h": 3600}[interval]
        assert view.n == 6 * 3600 // width and view.interval == interval
        assert view.slope is not None and math.isclose(view.slope, 1 / 1.1, rel_tol=1e-9)
        assert view.intercept is not None and math.isclose(view.intercept, -2 / 1.1, rel_tol=1e-9)
        assert view.r is not None and math.isclose(view.r, 1.0, rel_tol=1e-9)
        # the series: each corrected test mean lands on the reference's
        series = view.series
        assert isinstance(series, list) and len(series) == view.n
        for point in series:
            assert isinstance(point.corrected, float)
            assert math.isclose(point.corrected, point.reference, rel_tol=1e-9, abs_tol=1e-9)
        xs = [p.test for p in series]
        ys = [p.reference for p in series]
        assert_figures(view, reference_figures(xs, ys))
    # the default interval is the pair's window (5m); no series unless asked
    plain = await _compare(env, org, pair.id)
    assert plain.interval == "5m" and plain.n == 72 and plain.series is msgspec.UNSET


async def test_noisy_data_and_gaps_against_python(env: Env) -> None:
    """Random readings, missing in either sensor in some buckets: the figures are those of
    Python over the buckets both have, whose means it computes from the raw values."""
    org = ids.new_id()
    test, reference = await _two_sensors(env, org)
    rng = random.Random(7)
    raw: dict[str, dict[datetime, list[float]]] = {"t": {}, "r": {}}
    rows: dict[str, list[tuple[str, datetime, Any]]] = {"t": [], "r": []}
    for minute in range(0, 4 * 60, 3):
        bucket = T0 + timedelta(minutes=minute - minute % 15)
        for side in ("t", "r"):
            if rng.random() < 0.1:
                continue  # a gap
            at = T0 + timedelta(minutes=minute, seconds=rng.randrange(60))
            value = rng.gauss(20, 4) if side == "r" else rng.gauss(23, 6)
            rows[side].append(("pm25", at, value))
            raw[side].setdefault(bucket, []).append(value)
    await env.ingest(org, test.device_id, rows["t"])
    await env.ingest(org, reference.device_id, rows["r"])
    pair = await _pair(env, org, test, reference, window_seconds=900)
    view = await _compare(env, org, pair.id, series=True)
    both = sorted(set(raw["t"]) & set(raw["r"]))
    xs = [statistics.fmean(raw["t"][k]) for k in both]
    ys = [statistics.fmean(raw["r"][k]) for k in both]
    assert view.interval == "15m" and view.n == len(both) > 2
    assert_figures(view, reference_figures(xs, ys))
    assert isinstance(view.series, list)
    assert [p.ts for p in view.series] == both
    assert all(p.corrected is msgspec.UNSET for p in view.series)  # not asked for


async def test_edge_cases(env: Env) -> None:
    org = ids.new_id()
    test, reference = await _two_sensors(env, org)
    before = T0 - timedelta(days=1)  # declares both sensors (auto-declare), out of the range
    await env.ingest(org, test.device_id, [("pm25", before, 1.0)])
    await env.ingest(org, reference.device_id, [("pm25", before, 1.0)])
    pair = await _pair(env, org, test, reference, window_seconds=60)
    # no readings: n = 0, every figure null, an empty series
    empty = await _compare(env, org, pair.id, corrected=True)
    assert empty.n == 0 and empty.bias is None and empty.slope is None and empty.series == []
    # one bucket both have: statistics null, with n
    await env.ingest(org, test.device_id, [("pm25", T0, 5.0)])
    await env.ingest(org, reference.device_id, [("pm25", T0, 3.0)])
    one = await _compare(env, org, pair.id)
    assert one.n == 1
    assert (one.bias, one.mae, one.rmse, one.r, one.slope, one.intercept) == (None,) * 6
    # the test sensor does not vary: bias and errors, no fit, no r
    await env.ingest(org, test.device_id, [("pm25", T0 + timedelta(minutes=1), 5.0)])
    await env.ingest(org, reference.device_id, [("pm25", T0 + timedelta(minutes=1), 4.0)])
    flat = await _compare(env, org, pair.id, corrected=True)
    assert flat.n == 2 and flat.bias == 1.5 and flat.mae == 1.5
    assert flat.slope is None and flat.intercept is None and flat.r is None
    assert isinstance(flat.series, list) and [p.corrected for p in flat.series] == [None, None]
    # bad ranges and intervals: the aggregated queries' errors
    bad: list[tuple[dict[str, Any], str]] = [
        ({"to": T0}, "from"),
        ({"interval": "1m", "to": T0 + timedelta(days=8)}, "interval"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"interval": "1m", "to": T0 + timedelta(days=4), "series": True}, "interval"),
    ]
    for kw, field in bad:
        with pytest.raises(ValidationFailed) as caught:
            await _compare(env, org, pair.id, **kw)
        assert caught.value.fields[0].name == field
    # four days of minutes: too many points for a series, not for the statistics
    four_days = await _compare(env, org, pair.id, interval="1m", to=T0 + timedelta(days=4))
    assert four_days.n == 2
