"""Readings' request/reply entry point."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from outpost_contracts import readings as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.rpc import Operation
from outpost_kit.responder import Handler, bind
from outpost_readings.app import annotations as annotation_app
from outpost_readings.app import reference_pairs as pair_app
from outpost_readings.app.handlers import HANDLERS, Deps, ingest_batch
from outpost_readings.app.queries import QUERY_HANDLERS

# HTTP batches (decision 59): what passed the first check and went to TELEMETRY, and what
# was refused at once, by reason (the stream ingest's own quarantine is counted there).
HTTP_ACCEPTED = Counter(
    "outpost_readings_http_accepted_total", "HTTP batch readings accepted into TELEMETRY"
)
HTTP_REFUSED = Counter(
    "outpost_readings_http_refused_total", "HTTP batch readings refused, by reason", ["reason"]
)


async def _ingest_batch(deps: Deps, ctx: RequestContext, q: api.IngestReadings) -> Any:
    outcome = await ingest_batch(deps, ctx, q)
    HTTP_ACCEPTED.inc(outcome.accepted)
    for rejection in outcome.rejected:
        HTTP_REFUSED.labels(rejection.reason).inc()
    return outcome


def handlers(
    deps: Deps,
    annotation_deps: annotation_app.AnnotationDeps,
    pair_deps: pair_app.ReferencePairDeps,
) -> dict[Operation[Any, Any], Handler]:
    table = {**HANDLERS, **QUERY_HANDLERS}
    table[api.INGEST_READINGS] = _ingest_batch
    return {
        **bind(table, deps),
        **bind(annotation_app.HANDLERS, annotation_deps),
        **bind(pair_app.HANDLERS, pair_deps),
    }
