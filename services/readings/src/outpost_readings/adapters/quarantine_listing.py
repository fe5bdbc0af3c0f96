"""The quarantine as a collection (docs/api.md "Collections"): the fields clients may filter and
order on, compiled to SQL by the kit's listing against this allowlist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outpost_contracts import readings as api
from outpost_kit.db.listing import Collection, Field

QUARANTINE = Collection(
    table="quarantine",
    columns=(
        "id, device_id, sensor, ts, reason, detail, payload, source, subject, stream_seq,"
        " reading_index, received_at"
    ),
    fields={
        "id": Field("id", "uuid"),
        "deviceId": Field("device_id", "uuid"),
        "sensor": Field("sensor"),
        "ts": Field("ts", "datetime"),
        "reason": Field("reason"),
        "source": Field("source"),
        "subject": Field("subject"),
        "streamSeq": Field("stream_seq", "int"),
        "readingIndex": Field("reading_index", "int32"),
        "receivedAt": Field("received_at", "datetime"),
    },
)


def quarantined_view(row: Mapping[str, Any]) -> api.QuarantinedReading:
    return api.QuarantinedReading(
        id=row["id"],
        device_id=row["device_id"],
        sensor=row["sensor"],
        ts=row["ts"],
        reason=row["reason"],
        detail=row["detail"],
        payload=bytes(row["payload"]).decode("utf-8", errors="replace"),
        source=row["source"],
        subject=row["subject"],
        stream_seq=row["stream_seq"],
        reading_index=row["reading_index"],
        received_at=row["received_at"],
    )
