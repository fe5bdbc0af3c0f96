"""An HTTP batch of readings (``POST /api/v1/readings/batch``, decision 59): pure.

Items name their device; they are grouped per device into one telemetry message each, checked
by the same ``validate`` the stream ingest uses, and what passes is published into TELEMETRY
under a message id derived from the content, so a retried request is stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.readings import TelemetryMessage, TelemetryReading
from outpost_readings.domain.readings import (
    WHOLE_MESSAGE,
    Limits,
    Reason,
    SensorSpec,
    validate,
)

# The seq of a message made from an HTTP batch: not a device's numbering (the source header
# keeps it out of the seq state).
BATCH_SEQ = 0


class ItemRefusal(msgspec.Struct, frozen=True, kw_only=True):
    index: int  # in the request
    reason: str
    detail: str


class DeviceItems(msgspec.Struct, frozen=True, kw_only=True):
    """One device's items of a batch, with their indexes in the request."""

    device_id: UUID
    indexes: list[int]
    readings: list[TelemetryReading]


class DeviceVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """What to publish for one device (``None``: nothing) and the items refused."""

    message: TelemetryMessage | None
    refused: list[ItemRefusal]


def check_device(
    org_id: UUID,
    items: DeviceItems,
    arrival: datetime,
    limits: Limits,
    *,
    device_status: str | None,
    sensors: Mapping[str, SensorSpec],
    auto_declare: bool,
) -> DeviceVerdict:
    """Validate one device's items as one message. ``device_status`` ``None``: the device is
    not this organization's (or does not exist): every item is refused."""
    if device_status is None:
        return DeviceVerdict(
            message=None,
            refused=[
                ItemRefusal(
                    index=i,
                    reason=Reason.UNKNOWN_DEVICE.value,
                    detail="no such device in this organization",
                )
                for i in items.indexes
            ],
        )
    message = TelemetryMessage(seq=BATCH_SEQ, readings=items.readings)
    verdict = validate(
        org_id,
        items.device_id,
        message,
        arrival,
        limits,
        device_status=device_status,
        sensors=sensors,
        auto_declare=auto_declare,
    )
    refused: list[ItemRefusal] = []
    refused_at: set[int] = set()
    for r in verdict.rejected:
        if r.index == WHOLE_MESSAGE:
            return DeviceVerdict(
                message=None,
                refused=[
                    ItemRefusal(index=i, reason=r.reason.value, detail=r.detail)
                    for i in items.indexes
                ],
            )
        refused_at.add(r.index)
        refused.append(
            ItemRefusal(index=items.indexes[r.index], reason=r.reason.value, detail=r.detail)
        )
    kept = [reading for j, reading in enumerate(items.readings) if j not in refused_at]
    return DeviceVerdict(
        message=TelemetryMessage(seq=BATCH_SEQ, readings=kept) if kept else None,
        refused=refused,
    )


def message_id(subject: str, payload: bytes) -> str:
    """JetStream's ``Nats-Msg-Id`` for a batch message: the same subject and bytes (the same
    request retried) give the same id, which the stream's duplicate window drops."""
    digest = hashlib.sha256(subject.encode())
    digest.update(b"\n")
    digest.update(payload)
    return "batch-" + digest.hexdigest()[:40]
