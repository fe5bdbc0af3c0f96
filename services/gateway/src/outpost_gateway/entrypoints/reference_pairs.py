"""A reference pair's comparison (ADR 0098). The pairs themselves are a resource group
(``domain/resources.py``); the comparison is a route beside it, with parameters of its own."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import get
from litestar.params import FromPath, QueryParameter

from outpost_contracts.readings import MAX_BUCKETS, MAX_MINUTE_SOURCE_DAYS
from outpost_contracts.reference_pairs import (
    COMPARE_REFERENCE_PAIR,
    MAX_SERIES_POINTS,
    CompareReferencePair,
    ComparisonView,
)
from outpost_gateway.domain.query.typed import parse_typed_query
from outpost_gateway.entrypoints.readings import TIMESTAMP, Req
from outpost_gateway.entrypoints.security import BackendDep, Ctx


@get(
    "/api/v1/reference-pairs/{id:uuid}/comparison",
    tags=["reference-pairs"],
    summary="Compare a reference pair's sensors over a time range",
    description=(
        "Each sensor's readings are averaged per bucket of `interval` (default: the pair's"
        " `windowSeconds`) counted from local midnight in `timezone` (default UTC), from"
        " the rollups as the aggregated readings are; `[from, to)` is widened to whole"
        " buckets. Over the `n` buckets both sensors have readings in, with x the sensor"
        " under test's mean and y the reference's: `bias` = mean(x - y), `mae` ="
        " mean(|x - y|), `rmse` = sqrt(mean((x - y)^2)), `r` Pearson's correlation, and"
        " `slope` and `intercept` the ordinary least squares fit of the reference on the"
        " test sensor (y ~ slope * x + intercept), so `value * slope + intercept` corrects"
        " a reading of the sensor under test onto the reference. Every figure is null with"
        " fewer than 2 buckets; `slope`, `intercept` and `r` when the test sensor's means do"
        " not vary. `series=true` adds the buckets' two means (`ts`, `test`, `reference`),"
        " `corrected=true` each bucket's `corrected` test mean too. Limits (a"
        f" `validation_error` beyond): at most {MAX_BUCKETS:,} buckets; intervals served"
        f" from the per-minute rollups at most {MAX_MINUTE_SOURCE_DAYS} days; a series at"
        f" most {MAX_SERIES_POINTS:,} points. 404 for a"
        " pair that is not this organization's."
    ),
)
async def compare_reference_pair(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    from_: Annotated[str, QueryParameter(name="from", description=TIMESTAMP)],
    to: Annotated[str, QueryParameter(description=TIMESTAMP)],
    interval: Annotated[
        Literal["1m", "5m", "15m", "1h", "1d"] | None,
        QueryParameter(description="Bucket length (default: the pair's matching window)"),
    ] = None,
    timezone: Annotated[
        str | None, QueryParameter(description="IANA time zone, e.g. `Europe/Paris`")
    ] = None,
    series: Annotated[
        bool, QueryParameter(description="Include the two series of bucket means")
    ] = False,
    corrected: Annotated[
        bool,
        QueryParameter(description="Include the corrected test series (implies `series`)"),
    ] = False,
) -> ComparisonView:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "id"]
    body = parse_typed_query([*params, ("id", str(id))], CompareReferencePair)
    return await backend.call(COMPARE_REFERENCE_PAIR, ctx, body)


ROUTES = [compare_reference_pair]
