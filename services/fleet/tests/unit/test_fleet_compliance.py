"""Compliance counts: targeted, in sync, drifted, pending (ADR 0088)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outpost_fleet.domain.compliance import Counts, DeviceCompliance, count, device_compliance

pytestmark = pytest.mark.unit
SENT = datetime(2026, 12, 7, 12, tzinfo=UTC)
LATER = SENT + timedelta(seconds=5)
DESIRED = {"sampling": {"interval": 60, "unit": "s"}, "led": False}


def test_a_device_that_has_not_answered_since_delivery_is_pending() -> None:
    assert device_compliance(DESIRED, SENT, None, None) is DeviceCompliance.PENDING
    before = SENT - timedelta(seconds=1)
    assert device_compliance(DESIRED, SENT, DESIRED, before) is DeviceCompliance.PENDING


def test_a_device_reporting_the_desired_values_is_in_sync_extra_keys_aside() -> None:
    reported = {**DESIRED, "uptime": 12}
    assert device_compliance(DESIRED, SENT, reported, LATER) is DeviceCompliance.IN_SYNC


def test_a_device_reporting_something_else_later_has_drifted() -> None:
    reported = {"sampling": {"interval": 30, "unit": "s"}, "led": False}
    assert device_compliance(DESIRED, SENT, reported, LATER) is DeviceCompliance.DRIFTED
    missing = {"sampling": {"interval": 60}, "led": False}
    assert device_compliance(DESIRED, SENT, missing, LATER) is DeviceCompliance.DRIFTED


def test_a_binding_is_judged_on_its_own_keys_only() -> None:
    reported = {"sampling": {"interval": 60, "unit": "ms"}, "led": False}
    mine = ["/sampling/interval", "/led"]
    assert device_compliance(DESIRED, SENT, reported, LATER, mine) is DeviceCompliance.IN_SYNC
    theirs = ["/sampling/unit"]
    assert device_compliance(DESIRED, SENT, reported, LATER, theirs) is DeviceCompliance.DRIFTED


def test_counts() -> None:
    statuses = [DeviceCompliance.IN_SYNC] * 3 + [DeviceCompliance.DRIFTED, DeviceCompliance.PENDING]
    assert count(statuses) == Counts(targeted=5, in_sync=3, drifted=1, pending=1)
    assert count([]) == Counts()
