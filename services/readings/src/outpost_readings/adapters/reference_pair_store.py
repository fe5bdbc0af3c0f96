"""Reference pairs (ADR 0098): their read model (one row per live pair, written in the
transaction that appends its events), the collection clients filter and order, the checks
the use cases need of readings' device and sensor registry, and the comparison's SQL over
the rollups. Every statement runs in the caller's tenant transaction, under RLS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import reference_pairs as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_kit.db.listing import Collection, Field, get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_readings.adapters.queries import ROLLUP_TABLES
from outpost_readings.adapters.store import _driver
from outpost_readings.app.ports import ComparisonRows
from outpost_readings.domain.buckets import Buckets

REFERENCE_PAIRS = Collection(
    table="reference_pairs",
    columns=(
        "id, name, description, test_device_id, test_sensor, reference_device_id,"
        " reference_sensor, window_seconds, created_at, updated_at, version"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "description": Field("description"),
        "test.deviceId": Field("test_device_id", "uuid"),
        "test.sensor": Field("test_sensor"),
        "reference.deviceId": Field("reference_device_id", "uuid"),
        "reference.sensor": Field("reference_sensor"),
        "windowSeconds": Field("window_seconds", "int32"),
        "createdAt": Field("created_at", "datetime"),
        "updatedAt": Field("updated_at", "datetime"),
    },
)


def pair_view(row: Mapping[str, Any]) -> api.ReferencePairView:
    return api.ReferencePairView(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        test=api.SensorRef(device_id=row["test_device_id"], sensor=row["test_sensor"]),
        reference=api.SensorRef(
            device_id=row["reference_device_id"], sensor=row["reference_sensor"]
        ),
        window_seconds=row["window_seconds"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


_COLUMNS = {
    "name": "name",
    "description": "description",
    "windowSeconds": "window_seconds",
}


class ReferencePairsProjector:
    """Keeps ``reference_pairs``."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.ReferencePairCreated):
            await conn.execute(
                text(
                    "INSERT INTO reference_pairs (org_id, id, name, description, test_device_id,"
                    " test_sensor, reference_device_id, reference_sensor, window_seconds,"
                    " created_at, updated_at, version) VALUES (:org, :id, :name, :description,"
                    " :td, :ts, :rd, :rs, :w, :at, :at, :v)"
                ),
                {
                    **key,
                    "name": data.name,
                    "description": data.description,
                    "td": data.test.device_id,
                    "ts": data.test.sensor,
                    "rd": data.reference.device_id,
                    "rs": data.reference.sensor,
                    "w": data.window_seconds,
                },
            )
        elif isinstance(data, api.ReferencePairUpdated):
            changed = [c for c in _COLUMNS if c in data.changed]
            sets = [f"{_COLUMNS[c]} = :{_COLUMNS[c]}" for c in changed]
            await conn.execute(
                text(
                    f"UPDATE reference_pairs SET {', '.join([*sets, 'updated_at = :at'])},"
                    " version = :v WHERE org_id = :org AND id = :id"
                ),
                {**key, **{_COLUMNS[c]: getattr(data, _COLUMNS[c]) for c in changed}},
            )
        elif isinstance(data, api.ReferencePairDeleted):
            await conn.execute(
                text("DELETE FROM reference_pairs WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )


def _series_avg(table: str, bucket: str, device: str, sensor: str, lo: str, hi: str) -> str:
    """Each bucket's mean of one sensor from the rollup ``table``: its rows' sums over
    their counts (a rollup row is whole in one bucket: the grid is on the rollup's)."""
    return (
        f"SELECT {bucket} AS ts, sum(sum) / sum(count) AS v FROM {table}"
        f" WHERE device_id = {device} AND sensor = {sensor}"
        f" AND bucket >= {lo} AND bucket < {hi} GROUP BY 1"
    )


# --- the port (app/ports.py) -------------------------------------------------------------


class PgReferencePairsTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with the reference pairs' statements."""

    async def __aenter__(self) -> PgReferencePairsTx:
        await super().__aenter__()
        return self

    async def pair(self, pair_id: UUID) -> api.ReferencePairView | None:
        row = await get_one(self.conn, REFERENCE_PAIRS, pair_id)
        return None if row is None else pair_view(row)

    async def pairs(self, query: ListQuery) -> Page[api.ReferencePairView]:
        return await list_page(self.conn, REFERENCE_PAIRS, query, pair_view)

    async def device_in_registry(self, device_id: UUID) -> bool:
        sql = "SELECT 1 FROM devices WHERE id = :id"
        return (await self.execute(sql, {"id": device_id})).first() is not None

    async def sensor_type(self, device_id: UUID, sensor: str) -> str | None:
        sql = "SELECT value_type FROM sensors WHERE device_id = :d AND key = :k"
        row = (await self.execute(sql, {"d": device_id, "k": sensor})).first()
        return None if row is None else str(row.value_type)

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
        """The statistics over the buckets both sensors have readings in, computed here:
        x the test sensor's bucket mean, y the reference's; the least squares fit is of y
        on x (``regr_slope(y, x)``). ``series``: the buckets' starts and both means, and the
        corrected test means (x * slope + intercept), in time order."""
        table = ROLLUP_TABLES[width]
        args: list[Any] = [
            test.device_id,
            test.sensor,
            reference.device_id,
            reference.sensor,
            buckets.first,
            buckets.end,
        ]
        if dense:
            bucket = "bucket"
        else:  # the rollup row goes to the bucket whose start is the greatest at or before it
            args.append(buckets.starts)
            bucket = "($7::timestamptz[])[width_bucket(bucket, $7::timestamptz[])]"
        lo, hi = "$5::timestamptz", "$6::timestamptz"
        tests = _series_avg(table, bucket, "$1::uuid", "$2::text", lo, hi)
        refs = _series_avg(table, bucket, "$3::uuid", "$4::text", lo, hi)
        figures = "s.n, s.bias, s.mae, s.rmse, s.r, s.slope, s.intercept"
        # the series: the joined buckets again, in time order, beside the figures
        select = (
            f"SELECT {figures}, array_agg(j.ts ORDER BY j.ts) AS ts,"
            " array_agg(j.x ORDER BY j.ts) AS x, array_agg(j.y ORDER BY j.ts) AS y,"
            " array_agg(j.x * s.slope + s.intercept ORDER BY j.ts) AS corrected"
            f" FROM s LEFT JOIN j ON true GROUP BY {figures}"
            if series
            else f"SELECT {figures} FROM s"
        )
        statement = (
            f"WITH t AS ({tests}), r AS ({refs}),"
            " j AS (SELECT t.ts, t.v AS x, r.v AS y FROM t JOIN r USING (ts)),"
            " s AS (SELECT count(*) AS n, avg(x - y) AS bias, avg(abs(x - y)) AS mae,"
            " sqrt(avg((x - y) ^ 2)) AS rmse, corr(y, x) AS r,"
            " regr_slope(y, x) AS slope, regr_intercept(y, x) AS intercept FROM j)"
            f" {select}"
        )
        row = await (await _driver(self)).fetchrow(statement, *args)
        assert row is not None
        series = series and int(row["n"]) > 0  # no bucket: the LEFT JOIN's one empty row
        return ComparisonRows(
            n=int(row["n"]),
            bias=row["bias"],
            mae=row["mae"],
            rmse=row["rmse"],
            r=row["r"],
            slope=row["slope"],
            intercept=row["intercept"],
            ts=_series(row, "ts", series),
            test=_series(row, "x", series),
            reference=_series(row, "y", series),
            corrected=_series(row, "corrected", series),
        )


def _series(row: Any, column: str, series: bool) -> list[Any]:
    return list(row[column]) if series else []


class PgReferencePairs(UnitOfWorkFactory):
    """The ``ReferencePairsUnitOfWork`` bootstrap hands to the use cases."""

    def __call__(self, org_id: UUID | None) -> PgReferencePairsTx:
        return PgReferencePairsTx(
            self.engine, self.codec, org_id=org_id, projectors=self.projectors
        )
