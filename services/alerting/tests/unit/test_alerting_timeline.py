"""The timeline's entry of a fleet drift (ADR 0093): the device, the keys, the digest."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from outpost_alerting.domain.timeline import FLEET_EVENT_TYPES, entry
from outpost_contracts import fleet
from outpost_contracts.envelope import EventEnvelope

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_drift_reads_as_the_keys_that_moved() -> None:
    device = UUID(int=5)
    drift = fleet.DeviceConfigDrifted(
        device_id=device, digest="abc", pointers=["/sampling/interval", "/led"], reported_at=AT
    )
    event = EventEnvelope(
        id=UUID(int=1),
        org_id=UUID(int=2),
        stream_id=device,
        stream_type="device_config",
        version=1,
        occurred_at=AT,
        data=drift,
    )
    got = entry(event)
    assert got is not None
    assert got.summary == "device configuration drifted: /sampling/interval, /led"
    assert got.device_id == device
    assert got.data == {"pointers": ["/sampling/interval", "/led"], "digest": "abc"}
    assert (fleet.DeviceConfigDrifted,) == FLEET_EVENT_TYPES
