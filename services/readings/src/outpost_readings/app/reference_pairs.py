"""Use cases of reference pairs and their comparison (ADR 0098), and their handler table
(merged with readings' own in entrypoints/rpc.py).

Every change goes load → decide → append through the kit's event store (the events go to
the READINGS stream through the outbox, the read model is written in the same transaction:
adapters/reference_pair_store.py). The comparison plans its buckets as the aggregated
queries do (the same intervals, zones, rollups and limits) and has Postgres compute it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import reference_pairs as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_kit import aggregate, ids
from outpost_readings.app.ports import ReferencePairsTx, ReferencePairsUnitOfWork
from outpost_readings.app.queries import plan
from outpost_readings.domain import buckets as b
from outpost_readings.domain import reference_pairs as domain


@dataclass(frozen=True)
class ReferencePairDeps:
    uow: ReferencePairsUnitOfWork


PAIRS = aggregate.Aggregate(domain.REFERENCE_PAIR, domain.decide, domain.evolve)


async def _require(uow: ReferencePairsTx, pair_id: UUID) -> domain.ReferencePair:
    """404 before anything else (If-Match included) for what this tenant cannot see."""
    state, _version = await PAIRS.load(uow, pair_id)
    if state is None or state.deleted:
        raise NotFound("no such reference pair")
    assert isinstance(state, domain.ReferencePair)
    return state


async def _require_sensor(uow: ReferencePairsTx, ref: api.SensorRef, field: str) -> None:
    """The device is the tenant's (readings' registry, under RLS) and has the sensor, a
    NUMBER one (as readings knows it: declared, or declared by a first reading)."""
    if not await uow.device_in_registry(ref.device_id):
        raise validation_error(f"{field}.deviceId", "no such device in this organization")
    kind = await uow.sensor_type(ref.device_id, ref.sensor)
    if kind is None:
        raise validation_error(f"{field}.sensor", "the device has no such sensor")
    if kind != api.NUMBER:
        raise validation_error(f"{field}.sensor", f"must be a {api.NUMBER} sensor, not {kind}")


async def create_pair(
    deps: ReferencePairDeps, ctx: RequestContext, cmd: api.CreateReferencePair
) -> api.ReferencePairView:
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        if domain.same_sensor(cmd.test, cmd.reference):
            raise validation_error("reference", "must not be the sensor under test")
        await _require_sensor(uow, cmd.test, "test")
        await _require_sensor(uow, cmd.reference, "reference")
        await PAIRS.execute(uow, ctx, stream_id=new_id, command=cmd, org_id=ctx.org_id)
        view = await uow.pair(new_id)
        await uow.commit()
    assert view is not None
    return view


async def get_pair(
    deps: ReferencePairDeps, ctx: RequestContext, q: api.GetReferencePair
) -> api.ReferencePairView:
    async with deps.uow(ctx.org_id) as uow:
        view = await uow.pair(q.id)
    if view is None:
        raise NotFound("no such reference pair")
    return view


async def list_pairs(
    deps: ReferencePairDeps, ctx: RequestContext, q: api.ListReferencePairs
) -> Page[api.ReferencePairView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.pairs(q.query)


async def update_pair(
    deps: ReferencePairDeps, ctx: RequestContext, cmd: api.UpdateReferencePair
) -> api.ReferencePairView:
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, cmd.id)
        await PAIRS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=cmd.patch,
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        view = await uow.pair(cmd.id)
        await uow.commit()
    assert view is not None
    return view


async def delete_pair(
    deps: ReferencePairDeps, ctx: RequestContext, cmd: api.DeleteReferencePair
) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, cmd.id)
        await PAIRS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=domain.Delete(),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await uow.commit()
    return Empty()


async def compare_pair(
    deps: ReferencePairDeps, ctx: RequestContext, q: api.CompareReferencePair
) -> api.ComparisonView:
    """The statistics of the pair over ``[from, to)`` (widened to whole buckets); 404 for
    another organization's pair, a ``validation_error`` for a range or interval the
    aggregated queries would refuse."""
    async with deps.uow(ctx.org_id) as uow:
        pair = await uow.pair(q.id)
        if pair is None:
            raise NotFound("no such reference pair")
        interval = domain.interval_of(q.interval, pair.window_seconds)
        grid, width = plan(q.from_, q.to, interval, q.timezone)
        try:
            b.check_source_rows(2, grid.end - grid.first, width)
        except b.QueryLimit as exc:
            raise validation_error(exc.field, exc.message) from None
        series = q.series or q.corrected
        if series and len(grid) > api.MAX_SERIES_POINTS:
            raise validation_error(
                "interval",
                f"a series has at most {api.MAX_SERIES_POINTS:,} points and this range has"
                f" {len(grid):,} buckets; narrow the range, choose a longer interval, or ask"
                " for the statistics alone",
            )
        rows = await uow.compare(
            pair.test,
            pair.reference,
            width=width,
            buckets=grid,
            dense=grid.dense(width),
            series=series,
        )
    stats = domain.settle(
        domain.Statistics(
            n=rows.n,
            bias=rows.bias,
            mae=rows.mae,
            rmse=rows.rmse,
            r=rows.r,
            slope=rows.slope,
            intercept=rows.intercept,
        )
    )
    points: list[api.ComparisonPoint] | msgspec.UnsetType = msgspec.UNSET
    if series:
        points = [
            api.ComparisonPoint(
                ts=ts,
                test=x,
                reference=y,
                corrected=(
                    (None if stats.slope is None else corrected) if q.corrected else msgspec.UNSET
                ),
            )
            for ts, x, y, corrected in zip(
                rows.ts, rows.test, rows.reference, rows.corrected, strict=True
            )
        ]
    return api.ComparisonView(
        pair_id=pair.id,
        from_=grid.first,
        to=grid.end,
        interval=interval,
        timezone=q.timezone,
        n=stats.n,
        bias=stats.bias,
        mae=stats.mae,
        rmse=stats.rmse,
        r=stats.r,
        slope=stats.slope,
        intercept=stats.intercept,
        series=points,
    )


Handler = Callable[[ReferencePairDeps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_REFERENCE_PAIR: create_pair,
    api.GET_REFERENCE_PAIR: get_pair,
    api.LIST_REFERENCE_PAIRS: list_pairs,
    api.UPDATE_REFERENCE_PAIR: update_pair,
    api.DELETE_REFERENCE_PAIR: delete_pair,
    api.COMPARE_REFERENCE_PAIR: compare_pair,
}
