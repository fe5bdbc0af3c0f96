"""Reference pairs' decider and the comparison's pure rules (ADR 0098): the same sensor
twice refused, patches that change only what they name, the interval from the pair's
window, and which figures the API states as null."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest

from outpost_contracts import reference_pairs as api
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_readings.domain import reference_pairs as domain

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)
A, B = uuid.uuid4(), uuid.uuid4()


def create(**kw: object) -> api.CreateReferencePair:
    base: dict[str, object] = {
        "name": "roof",
        "test": api.SensorRef(device_id=A, sensor="pm25"),
        "reference": api.SensorRef(device_id=B, sensor="pm25"),
    }
    return api.CreateReferencePair(**{**base, **kw})  # type: ignore[arg-type]


def replay(*commands: domain.Command) -> domain.ReferencePair | None:
    state: domain.ReferencePair | None = None
    sid = uuid.uuid4()
    for command in commands:
        for event in domain.decide(state, command, NOW):
            state = domain.evolve(state, event, sid)
    return state


def test_create_and_the_same_sensor_twice() -> None:
    state = replay(create(description="co-located"))
    assert state is not None and state.version == 1 and state.window_seconds == 300
    assert state.description == "co-located"
    with pytest.raises(ValidationFailed) as caught:
        domain.decide(None, create(reference=api.SensorRef(device_id=A, sensor="pm25")), NOW)
    assert caught.value.fields[0].name == "reference"
    # the same device with another sensor is a pair (two sensors on one board)
    assert replay(create(reference=api.SensorRef(device_id=A, sensor="pm25_ref"))) is not None
    with pytest.raises(Conflict):
        domain.decide(state, create(), NOW)


def test_patches_and_delete() -> None:
    state = replay(create())
    assert state is not None
    same = api.ReferencePairPatch(name="roof", window_seconds=300)
    assert domain.decide(state, same, NOW) == []
    [event] = domain.decide(state, api.ReferencePairPatch(window_seconds=3600), NOW)
    assert isinstance(event, api.ReferencePairUpdated) and event.changed == ["windowSeconds"]
    after = replay(create(description="x"), api.ReferencePairPatch(description=None))
    assert after is not None and after.description is None and after.version == 2
    gone = replay(create(), domain.Delete())
    assert gone is not None and gone.deleted
    with pytest.raises(NotFound):
        domain.decide(gone, api.ReferencePairPatch(name="y"), NOW)


def test_the_interval_is_asked_for_or_the_pairs_window() -> None:
    assert domain.interval_of("1h", 300) == "1h"
    assert [domain.interval_of(None, s) for s in (60, 300, 900, 3600, 86400)] == [
        "1m",
        "5m",
        "15m",
        "1h",
        "1d",
    ]


def test_settle_nulls_what_cannot_be_stated() -> None:
    full = domain.Statistics(n=5, bias=1.0, mae=1.5, rmse=2.0, r=0.9, slope=0.8, intercept=1.2)
    assert domain.settle(full) == full
    # fewer than 2 buckets: every figure null, n kept
    for n in (0, 1):
        assert domain.settle(domain.Statistics(n=n, bias=1.0, mae=1.0, rmse=1.0)) == (
            domain.Statistics(n=n)
        )
    # no fit: slope and intercept null together; a non-finite figure null
    half = domain.settle(domain.Statistics(n=3, bias=1.0, slope=None, intercept=2.0))
    assert half.slope is None and half.intercept is None and half.bias == 1.0
    odd = domain.settle(domain.Statistics(n=3, bias=math.inf, rmse=math.nan, r=0.5))
    assert odd.bias is None and odd.rmse is None and odd.r == 0.5
