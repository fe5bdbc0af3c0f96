"""An HTTP batch's items per device (decision 59): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from outpost_contracts.readings import TelemetryReading
from outpost_readings.domain.batch import DeviceItems, check_device, message_id
from outpost_readings.domain.readings import Limits, SensorSpec

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
ORG = uuid4()
TEMP = {"temp": SensorSpec(value_type="NUMBER", min=-40, max=85)}


def items(*values: float, indexes: list[int] | None = None) -> DeviceItems:
    readings = [
        TelemetryReading(sensor="temp", value=v, ts=NOW - timedelta(seconds=i))
        for i, v in enumerate(values)
    ]
    return DeviceItems(
        device_id=uuid4(), indexes=indexes or list(range(len(values))), readings=readings
    )


def test_refused_items_carry_their_index_in_the_request_and_the_rest_is_one_message() -> None:
    verdict = check_device(
        ORG,
        items(20, 500, 21, indexes=[4, 7, 9]),
        NOW,
        Limits(),
        device_status="ACTIVE",
        sensors=TEMP,
        auto_declare=False,
    )
    assert [(r.index, r.reason) for r in verdict.refused] == [(7, "out_of_range")]
    assert verdict.message is not None and verdict.message.seq == 0
    assert [r.value for r in verdict.message.readings] == [20, 21]


def test_a_device_not_of_this_organization_refuses_every_item() -> None:
    verdict = check_device(
        ORG, items(1, 2), NOW, Limits(), device_status=None, sensors={}, auto_declare=True
    )
    assert verdict.message is None
    assert [(r.index, r.reason) for r in verdict.refused] == [
        (0, "unknown_device"),
        (1, "unknown_device"),
    ]


def test_a_decommissioned_device_refuses_every_item() -> None:
    verdict = check_device(
        ORG,
        items(1, 2),
        NOW,
        Limits(),
        device_status="DECOMMISSIONED",
        sensors=TEMP,
        auto_declare=True,
    )
    assert verdict.message is None
    assert {r.reason for r in verdict.refused} == {"device_decommissioned"}


def test_nothing_accepted_is_no_message() -> None:
    verdict = check_device(
        ORG, items(900), NOW, Limits(), device_status="ACTIVE", sensors=TEMP, auto_declare=False
    )
    assert verdict.message is None and len(verdict.refused) == 1


def test_the_message_id_is_the_same_for_the_same_subject_and_bytes_only() -> None:
    assert message_id("s.a", b"x") == message_id("s.a", b"x")
    assert message_id("s.a", b"x") != message_id("s.b", b"x")
    assert message_id("s.a", b"x") != message_id("s.a", b"y")
