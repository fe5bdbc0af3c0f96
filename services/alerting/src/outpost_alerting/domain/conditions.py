"""A rule's condition, checked and compiled: whether a reading's value satisfies it, whether
it has cleared (the ``clear`` condition, a hysteresis margin, or simply no longer holding),
and the condition in words for an alert's trigger. Pure."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import msgspec

from outpost_contracts import alerting as api
from outpost_contracts.errors import validation_error

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def check(condition: api.Condition, field: str = "condition") -> None:
    """The fields that go with the operator, and only those (``validation_error`` naming the
    field otherwise)."""
    op = condition.op
    allowed: set[str]
    if op in api.COMPARISONS:
        allowed = {"threshold"}
    elif op == "outside":
        allowed = {"low", "high"}
    else:
        allowed = {"seconds"}
    for name in ("threshold", "low", "high", "seconds"):
        value = getattr(condition, name)
        if name in allowed and value is None:
            raise validation_error(f"{field}.{name}", f"required with op {op!r}")
        if name not in allowed and value is not None:
            raise validation_error(f"{field}.{name}", f"not allowed with op {op!r}")
    if op == "outside":
        assert condition.low is not None and condition.high is not None
        if not condition.low < condition.high:
            raise validation_error(f"{field}.high", "must be greater than low")
    if op == "offline":
        assert condition.seconds is not None
        if not 0 <= condition.seconds <= api.MAX_OFFLINE_SECONDS:
            raise validation_error(
                f"{field}.seconds", f"must be between 0 and {api.MAX_OFFLINE_SECONDS}"
            )
    if op == "nodata":
        assert condition.seconds is not None
        if not api.MIN_NODATA_SECONDS <= condition.seconds <= api.MAX_NODATA_SECONDS:
            raise validation_error(
                f"{field}.seconds",
                f"must be between {api.MIN_NODATA_SECONDS} and {api.MAX_NODATA_SECONDS}",
            )


def check_rule(
    condition: api.Condition,
    clear: api.Condition | None,
    hysteresis: float | None,
    for_seconds: int,
) -> None:
    """A rule's condition with its clearing options."""
    check(condition)
    nodata = condition.op in ("nodata", "offline")
    if clear is not None:
        check(clear, "clear")
        if nodata or clear.op in ("nodata", "offline"):
            raise validation_error(
                "clear", "not with nodata or offline: data or the device coming back clears it"
            )
        if hysteresis is not None:
            raise validation_error("hysteresis", "give clear or hysteresis, not both")
    if hysteresis is not None and (nodata or condition.op in ("==", "!=")):
        raise validation_error("hysteresis", f"not with op {condition.op!r}")
    if hysteresis is not None and condition.op == "outside":
        assert condition.low is not None and condition.high is not None
        if 2 * hysteresis >= condition.high - condition.low:
            raise validation_error("hysteresis", "must be less than half of high - low")
    if nodata and for_seconds:
        raise validation_error("forSeconds", f"{condition.op} waits its own seconds")


def holds(condition: api.Condition, value: float) -> bool:
    """Whether ``value`` satisfies a comparison or ``outside`` (never ``nodata``)."""
    if math.isnan(value):
        return False
    if condition.op == "outside":
        assert condition.low is not None and condition.high is not None
        return value < condition.low or value > condition.high
    compare = _COMPARE.get(condition.op)
    if compare is None:
        return False
    assert condition.threshold is not None
    return compare(value, condition.threshold)


def clears(
    condition: api.Condition, clear: api.Condition | None, hysteresis: float | None, value: float
) -> bool:
    """Whether ``value`` clears an alert of ``condition``: the ``clear`` condition holds; or
    the value is back inside by at least the hysteresis margin; or, with neither, the
    condition no longer holds."""
    if math.isnan(value):
        return False
    if clear is not None:
        return holds(clear, value)
    if not hysteresis:
        return not holds(condition, value)
    return not holds(_widened(condition, hysteresis), value)


def _widened(condition: api.Condition, margin: float) -> api.Condition:
    """The condition moved by ``margin`` towards its normal side: ``> 30`` with 2 becomes
    ``> 28``, ``outside [10, 20]`` becomes ``outside [12, 18]`` (or never clears by margin
    when the margins meet: ``outside`` of an empty range always holds)."""
    op = condition.op
    if op == "outside":
        assert condition.low is not None and condition.high is not None
        return msgspec.structs.replace(
            condition, low=condition.low + margin, high=condition.high - margin
        )
    assert condition.threshold is not None
    if op in (">", ">="):
        return msgspec.structs.replace(condition, threshold=condition.threshold - margin)
    return msgspec.structs.replace(condition, threshold=condition.threshold + margin)


def describe(sensor: str | None, condition: api.Condition, for_seconds: int = 0) -> str:
    """The condition in words, as an alert's trigger shows it: ``temperature > 30 for 60s``."""
    op = condition.op
    if op == "outside":
        text = f"{sensor} outside [{condition.low:g}, {condition.high:g}]"
    elif op == "nodata":
        text = f"no {sensor} reading for {condition.seconds}s"
    elif op == "offline":
        text = f"device offline for {condition.seconds}s"
    else:
        text = f"{sensor} {op} {condition.threshold:g}"
    return f"{text} for {for_seconds}s" if for_seconds else text
