"""Streaming evaluation of a rule on a device, and the conditions it uses. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from outpost_alerting.domain import conditions
from outpost_alerting.domain.evaluation import (
    Clear,
    Effect,
    Fire,
    Rule,
    Watch,
    on_presence,
    on_reading,
    on_timer,
    resolved_by_hand,
    rule_changed,
    start,
)
from outpost_contracts import alerting as api
from outpost_contracts.errors import ValidationFailed

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rule(op: str = ">", *, for_seconds: int = 0, version: int = 1, **kw: object) -> Rule:
    fields = {k: kw.pop(k) for k in ("threshold", "low", "high", "seconds") if k in kw}
    if not fields:
        fields = {"threshold": 30.0}
    return Rule(
        id=uuid4(),
        version=version,
        sensor="temp",
        condition=api.Condition(op=op, **fields),  # type: ignore[arg-type]
        for_seconds=for_seconds,
        **kw,  # type: ignore[arg-type]
    )


class Run:
    """Feeds readings (value, ts offset, arrival offset) and timers to one watch."""

    def __init__(self, r: Rule, now: float = 0) -> None:
        self.rule = r
        self.watch = start(r, at(now))
        self.effects: list[Effect] = []

    def reading(self, value: float | None, ts: float, arrival: float | None = None) -> list[Effect]:
        self.watch, out = on_reading(
            self.rule, self.watch, value, at(ts), at(ts if arrival is None else arrival)
        )
        self.effects += out
        return out

    def readings(self, pairs: Iterable[tuple[float, float]]) -> list[Effect]:
        return [e for value, ts in pairs for e in self.reading(value, ts)]

    def timer(self, now: float) -> list[Effect]:
        self.watch, out = on_timer(self.rule, self.watch, at(now))
        self.effects += out
        return out


@pytest.mark.parametrize(
    ("op", "threshold", "fires", "quiet"),
    [
        (">", 30, [30.5, 1e9], [30, -5]),
        (">=", 30, [30, 31], [29.99]),
        ("<", 0, [-0.1], [0, 5]),
        ("<=", 0, [0, -3], [0.01]),
        ("==", 1, [1], [0, 1.0001]),
        ("!=", 1, [0, 2], [1]),
    ],
)
def test_each_comparison_fires_on_its_values_only(
    op: str, threshold: float, fires: list[float], quiet: list[float]
) -> None:
    for value in fires:
        run = Run(rule(op, threshold=threshold))
        [fire] = run.reading(value, 1)
        assert isinstance(fire, Fire) and fire.trigger.value == value
    for value in quiet:
        run = Run(rule(op, threshold=threshold))
        assert run.reading(value, 1) == []
        assert run.reading(float("nan"), 2) == []


def test_outside_fires_below_low_and_above_high_and_clears_inside() -> None:
    run = Run(rule("outside", low=10, high=20))
    assert run.reading(10, 1) == [] and run.reading(20, 2) == []
    [fire] = run.reading(9.5, 3)
    assert isinstance(fire, Fire)
    assert fire.trigger.condition == "temp outside [10, 20]"
    assert run.reading(25, 4) == []  # still outside: the alert stays, nothing new
    assert run.reading(15, 5) == [Clear(value=15, ts=at(5))]
    [again] = run.reading(21, 6)
    assert isinstance(again, Fire)


def test_an_alert_fires_once_while_the_condition_holds_and_clears_once() -> None:
    run = Run(rule())
    effects = run.readings([(31, 1), (35, 2), (40, 3), (29, 4), (28, 5)])
    assert [type(e) for e in effects] == [Fire, Clear]
    assert effects[1] == Clear(value=29, ts=at(4))


def test_for_seconds_fires_on_a_reading_that_still_holds_after_the_window() -> None:
    run = Run(rule(for_seconds=60))
    assert run.readings([(31, 0), (32, 30), (33, 59)]) == []
    [fire] = run.reading(34, 60)
    assert isinstance(fire, Fire)
    t = fire.trigger
    assert (t.value, t.ts, t.since, t.first) == (
        34,
        at(60),
        at(0),
        api.TriggerReading(value=31, ts=at(0)),
    )
    assert t.condition == "temp > 30 for 60s" and t.rule_version == 1


def test_a_reading_that_breaks_the_window_starts_it_again() -> None:
    run = Run(rule(for_seconds=60))
    assert run.readings([(31, 0), (29, 30), (31, 40), (31, 90)]) == []
    [fire] = run.reading(31, 100)
    assert isinstance(fire, Fire) and fire.trigger.since == at(40)


def test_the_timer_fires_a_window_no_reading_contradicted() -> None:
    run = Run(rule(for_seconds=60))
    run.reading(31, 0, arrival=1)
    assert run.timer(60) == []  # due 60 s after the first reading arrived
    [fire] = run.timer(61)
    assert isinstance(fire, Fire)
    assert (fire.trigger.value, fire.trigger.ts, fire.trigger.since) == (31, at(0), at(0))
    assert run.timer(62) == [] and run.reading(32, 70) == []  # fired once


def test_the_timer_does_nothing_once_a_reading_broke_the_window() -> None:
    run = Run(rule(for_seconds=60))
    run.reading(31, 0)
    run.reading(10, 30)
    assert run.timer(61) == [] and run.timer(1000) == []


def test_a_restart_continues_a_pending_window_from_the_stored_watch() -> None:
    run = Run(rule(for_seconds=60))
    run.reading(31, 0)
    stored = Watch(**{f: getattr(run.watch, f) for f in run.watch.__struct_fields__})
    again = Run(run.rule)
    again.watch = stored
    assert again.reading(31, 30) == []
    [fire] = again.reading(31, 60)
    assert isinstance(fire, Fire) and fire.trigger.since == at(0)


def test_repeated_and_older_readings_change_nothing() -> None:
    run = Run(rule())
    [fire] = run.reading(31, 10)
    assert isinstance(fire, Fire)
    before = run.watch
    assert run.reading(31, 10) == [] and run.reading(10, 5) == []  # a redelivery, a late one
    assert run.watch == before
    assert run.reading(10, 11) == [Clear(value=10, ts=at(11))]
    assert run.reading(10, 11) == [] and run.reading(31, 11) == []


def test_hysteresis_keeps_the_alert_until_the_value_is_back_by_the_margin() -> None:
    run = Run(rule(hysteresis=2.0))
    run.reading(31, 1)
    assert run.readings([(30, 2), (28.5, 3)]) == []
    assert run.reading(28, 4) == [Clear(value=28, ts=at(4))]
    low = Run(rule("<", threshold=0, hysteresis=1.0))
    low.reading(-1, 1)
    assert low.reading(0.5, 2) == [] and low.reading(1, 3) == [Clear(value=1, ts=at(3))]


def test_a_clear_condition_decides_when_the_alert_clears() -> None:
    run = Run(rule(clear=api.Condition(op="<", threshold=20)))
    run.reading(31, 1)
    assert run.readings([(25, 2), (20, 3)]) == []
    assert run.reading(19, 4) == [Clear(value=19, ts=at(4))]


def test_nodata_fires_from_the_timer_and_clears_when_data_comes_back() -> None:
    run = Run(rule("nodata", seconds=60), now=0)
    assert run.timer(59) == []
    [fire] = run.timer(60)  # never seen: counted from when the device came under the rule
    assert isinstance(fire, Fire)
    assert (fire.trigger.value, fire.trigger.since, fire.trigger.last_seen_at) == (
        None,
        at(0),
        None,
    )
    assert fire.trigger.condition == "no temp reading for 60s"
    assert run.timer(500) == []
    assert run.reading(1, 600, arrival=601) == [Clear()]
    assert run.timer(660) == []
    [again] = run.timer(661)  # 60 s after the last reading *arrived*
    assert isinstance(again, Fire) and again.trigger.last_seen_at == at(601)


def test_nodata_counts_text_readings_as_data() -> None:
    run = Run(rule("nodata", seconds=60))
    run.reading(None, 50)
    assert run.timer(100) == []
    assert run.timer(110) != []


def test_a_device_clock_ahead_does_not_make_nodata_late_or_early() -> None:
    run = Run(rule("nodata", seconds=60))
    run.reading(1, 3600, arrival=10)  # a device an hour ahead
    assert run.timer(69) == [] and run.timer(70) != []


def test_resolved_by_hand_the_rule_fires_again_only_after_the_value_cleared() -> None:
    run = Run(rule())
    run.reading(31, 1)
    run.watch = resolved_by_hand(run.watch)
    assert run.readings([(35, 2), (40, 3)]) == []  # still bad: no new alert
    assert run.reading(20, 4) == []  # cleared: re-armed, nothing to resolve
    [fire] = run.reading(31, 5)
    assert isinstance(fire, Fire)


def test_nodata_resolved_by_hand_waits_for_data_before_it_can_fire_again() -> None:
    run = Run(rule("nodata", seconds=60))
    run.timer(60)
    run.watch = resolved_by_hand(run.watch)
    assert run.timer(1000) == []
    assert run.reading(1, 1001) == []
    assert run.timer(1061) != []


def test_a_new_rule_version_restarts_a_pending_window_and_keeps_a_firing_alert() -> None:
    r1 = rule(for_seconds=60)
    run = Run(r1)
    run.reading(31, 0)
    r2 = Rule(**{**{f: getattr(r1, f) for f in r1.__struct_fields__}, "version": 2})
    run.rule, run.watch = r2, rule_changed(r2, run.watch, at(10))
    assert run.reading(31, 60) == []  # the window restarted at 60 under version 2
    [fire] = run.reading(31, 120)
    assert isinstance(fire, Fire) and fire.trigger.rule_version == 2
    r3 = Rule(**{**{f: getattr(r2, f) for f in r2.__struct_fields__}, "version": 3})
    run.rule, run.watch = r3, rule_changed(r3, run.watch, at(130))
    assert run.watch.firing and run.reading(10, 140) == [Clear(value=10, ts=at(140))]


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        (api.Condition(op=">"), "condition.threshold"),
        (api.Condition(op=">", threshold=1, low=0), "condition.low"),
        (api.Condition(op="outside", low=1), "condition.high"),
        (api.Condition(op="outside", low=5, high=5), "condition.high"),
        (api.Condition(op="nodata"), "condition.seconds"),
        (api.Condition(op="nodata", seconds=5), "condition.seconds"),
        (api.Condition(op="nodata", seconds=60, threshold=1), "condition.threshold"),
        (api.Condition(op="offline"), "condition.seconds"),
        (api.Condition(op="offline", seconds=-1), "condition.seconds"),
    ],
)
def test_conditions_refuse_fields_that_do_not_go_with_their_operator(
    condition: api.Condition, field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        conditions.check_rule(condition, None, None, 0)
    assert [f.name for f in caught.value.fields] == [field]


def test_rule_level_checks() -> None:
    gt = api.Condition(op=">", threshold=1)
    nodata = api.Condition(op="nodata", seconds=60)
    for args in [
        (gt, gt, 1.0, 0),  # clear and hysteresis
        (nodata, gt, None, 0),  # clear with nodata
        (nodata, None, None, 30),  # forSeconds with nodata
        (api.Condition(op="==", threshold=1), None, 1.0, 0),  # hysteresis with ==
        (api.Condition(op="outside", low=0, high=10), None, 5.0, 0),  # margins meet
    ]:
        with pytest.raises(ValidationFailed):
            conditions.check_rule(*args)  # type: ignore[arg-type]
    conditions.check_rule(api.Condition(op="outside", low=0, high=10), None, 4.9, 0)


def _presence(run: Run, connected: bool, at_s: float) -> list[Effect]:
    run.watch, out = on_presence(run.rule, run.watch, connected, at(at_s))
    run.effects += out
    return out


def test_offline_fires_from_the_timer_after_a_disconnect_and_clears_on_connect() -> None:
    run = Run(rule("offline", seconds=120))
    assert _presence(run, False, 10) == [] and run.timer(129) == []
    assert run.reading(50, 100) == []  # readings do not decide presence
    [fire] = run.timer(130)
    assert isinstance(fire, Fire)
    t = fire.trigger
    assert (t.value, t.since, t.last_seen_at, t.condition) == (
        None,
        at(10),
        at(10),
        "device offline for 120s",
    )
    assert run.timer(500) == [] and _presence(run, False, 200) == []  # fired once
    assert _presence(run, True, 300) == [Clear()]
    assert run.timer(1000) == []


def test_offline_a_quick_reconnect_fires_nothing_and_old_reports_change_nothing() -> None:
    run = Run(rule("offline", seconds=60))
    _presence(run, False, 10)
    assert _presence(run, True, 20) == []
    assert _presence(run, False, 15) == []  # older than the connect: ignored
    assert run.timer(1000) == []


def test_offline_resolved_by_hand_waits_for_a_connect() -> None:
    run = Run(rule("offline", seconds=0))
    _presence(run, False, 10)
    assert run.timer(10) != []
    run.watch = resolved_by_hand(run.watch)
    assert _presence(run, False, 20) == [] and run.timer(100) == []
    assert _presence(run, True, 30) == []
    _presence(run, False, 40)
    assert run.timer(40) != []
