"""Readings' queries (decision 60): raw pages, aggregates from the rollups, statistics and
the latest reading per sensor, of one device or of a group's or a site's devices."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from outpost_contracts import readings as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_kit.db.uow import UnitOfWork
from outpost_readings.adapters import queries as sql
from outpost_readings.adapters import store
from outpost_readings.app.handlers import Deps
from outpost_readings.domain import buckets as b
from outpost_readings.domain.readings import value_of

T = TypeVar("T")


def _reading_views(rows: list[Any]) -> list[api.ReadingView]:
    """Rows of ``readings`` (raw or latest) as the API shows them."""
    return [
        api.ReadingView(
            device_id=r["device_id"],
            sensor=r["sensor"],
            ts=r["ts"],
            value=value_of(r["kind"], r["num"], r["txt"]),
        )
        for r in rows
    ]


def _encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(parts)).decode().rstrip("=")


def _decode_cursor(text: str, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=type_
        )
    except (ValueError, msgspec.DecodeError) as exc:
        raise validation_error("after", "not a cursor from a previous page") from exc


class _Target(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID | None = None
    group_id: UUID | None = None
    site_id: UUID | None = None


def _target_of(q: Any) -> _Target:
    target = _Target(device_id=q.device_id, group_id=q.group_id, site_id=q.site_id)
    given = [x for x in (target.device_id, target.group_id, target.site_id) if x is not None]
    if len(given) != 1:
        raise validation_error("deviceId", "give exactly one of deviceId, groupId, siteId")
    return target


async def _devices(deps: Deps, ctx: RequestContext, uow: UnitOfWork, target: _Target) -> list[UUID]:
    """The device ids a query covers, under the tenant's RLS. A device readings does not
    know is this tenant's (no reading stored yet: empty) or not (404), as the devices
    service says; a group or site resolves through readings' registry (an unknown or empty
    one covers nothing)."""
    if target.device_id is not None:
        if await store.device_known(uow, target.device_id):
            return [target.device_id]
        # Not in the registry yet, or not this tenant's: only the devices service knows.
        # Either way no reading of it is stored (ingest waits for the registry).
        if not await deps.device_exists(ctx, target.device_id):
            raise NotFound("no such device")
        return []
    found = await sql.devices_in(
        uow, group_id=target.group_id, site_id=target.site_id, limit=b.MAX_DEVICES + 1
    )
    if len(found) > b.MAX_DEVICES:
        raise validation_error(
            "groupId" if target.group_id is not None else "siteId",
            f"covers more than {b.MAX_DEVICES} devices; query fewer at a time",
        )
    return found


def _zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (read from the zone database); a ``validation_error`` naming
    ``timezone`` when there is no such zone."""
    refused = validation_error("timezone", f"{name!r} is not an IANA time zone name")
    if not name or name.startswith(("/", ".")) or ".." in name or "\0" in name:
        raise refused
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise refused from None


def _limit_error(exc: b.QueryLimit) -> Exception:
    return validation_error(exc.field, exc.message)


def _page(data: list[T], limit: int, has_more: bool, after: str | None) -> Page[T]:
    return Page(data=data, limit=limit, order="ASC", has_more=has_more, after=after)


# --- raw ------------------------------------------------------------------------------


async def list_readings(
    deps: Deps, ctx: RequestContext, q: api.ListReadings
) -> Page[api.ReadingView]:
    if q.from_ is not None and q.to is not None and q.from_ >= q.to:
        raise validation_error("from", "must be before 'to'")
    target = _target_of(q)
    many = target.device_id is None
    after_one: tuple[datetime, str] | None = None
    after_many: tuple[datetime, UUID, str] | None = None
    if q.after:
        if many:
            ts, sensor, device = _decode_cursor(q.after, tuple[datetime, str, UUID])
            after_many = (ts, device, sensor)
        else:
            after_one = _decode_cursor(q.after, tuple[datetime, str])
    async with deps.uow(ctx.org_id) as uow:
        devices = await _devices(deps, ctx, uow, target)
        if many:
            try:
                b.check_raw_many(max(len(devices), 1), q.from_, q.to)
            except b.QueryLimit as exc:
                raise _limit_error(exc) from None
        if not devices:
            return _page([], q.limit, False, None)
        if after_one is not None:
            after_many = (after_one[0], devices[0], after_one[1])
        rows = await sql.raw(
            uow,
            device_ids=devices,
            sensor=q.sensor,
            start=q.from_,
            end=q.to,
            after=after_many,
            descending=q.order == "DESC",
            limit=q.limit + 1,
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    data = _reading_views(rows)
    after = None
    if has_more and rows:  # readings have no ids: the cursor names the last row of the page
        last = rows[-1]
        after = (
            _encode_cursor(last["ts"], last["sensor"], last["device_id"])
            if many
            else _encode_cursor(last["ts"], last["sensor"])
        )
    return Page(data=data, limit=q.limit, order=q.order, has_more=has_more, after=after)


# --- aggregates -----------------------------------------------------------------------


def plan_aggregates(
    q: api.GetAggregates,
) -> tuple[b.Buckets, int]:
    """The buckets and the rollup (its width in seconds) that serves them: the hourly one
    for 1h/1d when every boundary is a whole UTC hour, else the per-minute one."""
    return plan(q.from_, q.to, q.interval, q.timezone)


def plan(
    start: datetime, end: datetime, interval_name: str, timezone: str
) -> tuple[b.Buckets, int]:
    """``plan_aggregates`` of a range, an interval and a zone (reference pairs' comparison
    plans its buckets so too)."""
    try:
        tz = _zone(timezone)
        interval = b.Interval(interval_name)
        grid = b.buckets(start, end, interval, tz)
    except b.QueryLimit as exc:
        raise _limit_error(exc) from None
    if interval in (b.Interval.H1, b.Interval.D1) and grid.on_grid(b.HOUR):
        return grid, b.HOUR
    if grid.on_grid(b.MINUTE):
        return grid, b.MINUTE
    raise validation_error(
        "timezone", "this zone's offset over the range is not a whole number of minutes"
    )


async def get_aggregates(
    deps: Deps, ctx: RequestContext, q: api.GetAggregates
) -> Page[api.AggregateView]:
    functions = set(q.fn.split(","))
    grid, width = plan_aggregates(q)
    after = None
    if q.after:
        ts, device, sensor = _decode_cursor(q.after, tuple[datetime, UUID, str])
        after = (ts, device, sensor)
    target = _target_of(q)
    async with deps.uow(ctx.org_id) as uow:
        devices = await _devices(deps, ctx, uow, target)
        try:
            b.check_source_rows(max(len(devices), 1), grid.end - grid.first, width)
        except b.QueryLimit as exc:
            raise _limit_error(exc) from None
        if not devices:
            return _page([], q.limit, False, None)
        rows = await sql.aggregates(
            uow,
            width=width,
            device_ids=devices,
            sensor=q.sensor,
            buckets=grid,
            dense=grid.dense(width),
            after=after,
            limit=q.limit + 1,
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    data = [_aggregate_view(r, functions) for r in rows]
    cursor = None
    if has_more and rows:
        last = rows[-1]
        cursor = _encode_cursor(last["ts"], last["device_id"], last["sensor"])
    return _page(data, q.limit, has_more, cursor)


def _aggregate_view(r: Any, functions: set[str]) -> api.AggregateView:
    unset: Any = msgspec.UNSET
    count = r["count"]
    total = r["sum"]
    return api.AggregateView(
        device_id=r["device_id"],
        sensor=r["sensor"],
        ts=r["ts"],
        avg=total / count if "avg" in functions else unset,
        min=r["min"] if "min" in functions else unset,
        max=r["max"] if "max" in functions else unset,
        sum=total if "sum" in functions else unset,
        count=count if "count" in functions else unset,
        first=r["first"] if "first" in functions else unset,
        last=r["last"] if "last" in functions else unset,
    )


# --- statistics -----------------------------------------------------------------------


async def get_stats(deps: Deps, ctx: RequestContext, q: api.GetStats) -> Page[api.StatsView]:
    try:
        b.check_stats(1, q.from_, q.to)
    except b.QueryLimit as exc:
        raise _limit_error(exc) from None
    after = _decode_cursor(q.after, tuple[UUID, str]) if q.after else None
    target = _target_of(q)
    async with deps.uow(ctx.org_id) as uow:
        devices = await _devices(deps, ctx, uow, target)
        try:
            b.check_stats(max(len(devices), 1), q.from_, q.to)
        except b.QueryLimit as exc:
            raise _limit_error(exc) from None
        if not devices:
            return _page([], q.limit, False, None)
        rows = await sql.stats(
            uow,
            device_ids=devices,
            sensor=q.sensor,
            start=q.from_,
            end=q.to,
            after=after,
            limit=q.limit + 1,
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    data = [
        api.StatsView(
            device_id=r["device_id"],
            sensor=r["sensor"],
            count=r["count"],
            min=r["min"],
            max=r["max"],
            avg=r["avg"],
            stddev=r["stddev"],
            p50=r["p"][0],
            p95=r["p"][1],
            p99=r["p"][2],
        )
        for r in rows
    ]
    cursor = None
    if has_more and rows:
        cursor = _encode_cursor(rows[-1]["device_id"], rows[-1]["sensor"])
    return _page(data, q.limit, has_more, cursor)


# --- latest ---------------------------------------------------------------------------


async def get_latest(deps: Deps, ctx: RequestContext, q: api.GetLatest) -> Page[api.ReadingView]:
    after = _decode_cursor(q.after, tuple[UUID, str]) if q.after else None
    target = _target_of(q)
    async with deps.uow(ctx.org_id) as uow:
        devices = await _devices(deps, ctx, uow, target)
        if not devices:
            return _page([], q.limit, False, None)
        rows = await sql.latest(
            uow, device_ids=devices, sensor=q.sensor, after=after, limit=q.limit + 1
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    data = _reading_views(rows)
    cursor = None
    if has_more and rows:
        cursor = _encode_cursor(rows[-1]["device_id"], rows[-1]["sensor"])
    return _page(data, q.limit, has_more, cursor)


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

# --- exports' chunks (decision 65) ------------------------------------------------------


async def stream_readings(
    deps: Deps, ctx: RequestContext, q: api.StreamReadings
) -> api.ReadingsChunk:
    """One chunk of one device's readings for an export (keyset on ``(ts, sensor)``)."""
    if q.from_ >= q.to:
        raise validation_error("from", "must be before 'to'")
    if (q.after_ts is None) != (q.after_sensor is None):
        raise validation_error("afterTs", "give both afterTs and afterSensor, or neither")
    after = (q.after_ts, q.after_sensor) if q.after_ts is not None else None
    async with deps.uow(ctx.org_id) as uow:
        row = await sql.export_chunk(
            uow,
            device_id=q.device_id,
            start=q.from_,
            end=q.to,
            after=after,  # type: ignore[arg-type]
            limit=q.limit,
        )
        estimate = (
            await sql.export_estimate(uow, device_id=q.device_id, start=q.from_, end=q.to)
            if q.estimate
            else None
        )
    sensors_col: list[str] = row["sensor"] or []
    if not sensors_col:
        return api.ReadingsChunk(
            sensors=[], sensor_index=[], ts=[], value=[], next=False, estimate=estimate
        )
    ts_col: list[str] = row["ts"]
    kinds: list[int] = row["kind"]
    nums: list[Any] = row["num"]
    txts: list[str | None] = row["txt"]
    index: dict[str, int] = {}
    sensor_index = [index.setdefault(s, len(index)) for s in sensors_col]
    if all(k == 0 for k in kinds):  # numbers only: the common case, without a call per row
        values: list[float | int | bool | str] = [
            int(n) if n.is_integer() and abs(n) < 2**53 else n for n in nums
        ]
    else:
        values = [value_of(k, n, t) for k, n, t in zip(kinds, nums, txts, strict=True)]
    full = len(sensors_col) == q.limit
    if any(k == 2 for k in kinds):  # text values: keep the answer under the message limit
        used = 0
        for i, t in enumerate(txts):
            used += 64 + 2 * len(t or "")
            if used > api.MAX_CHUNK_BYTES and i > 0:
                del sensors_col[i:], ts_col[i:], values[i:], sensor_index[i:]
                full = True
                break
    return api.ReadingsChunk(
        sensors=list(index),
        sensor_index=sensor_index,
        ts=ts_col,
        value=values,
        next=full,
        last_ts=datetime.fromisoformat(ts_col[-1]),
        last_sensor=sensors_col[-1],
        estimate=estimate,
    )


QUERY_HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.STREAM_READINGS: stream_readings,
    api.LIST_READINGS: list_readings,
    api.GET_AGGREGATES: get_aggregates,
    api.GET_STATS: get_stats,
    api.GET_LATEST: get_latest,
}
