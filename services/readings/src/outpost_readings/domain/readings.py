"""Turning a device's telemetry message into reading rows and refusals: pure, with the
arrival time and what the service knows of the device and its sensors passed in.

The device is the one named by the telemetry subject (the broker lets a device publish only
on its own), never anything in the payload.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts.readings import SensorKey, TelemetryMessage, TelemetryReading


class Kind(enum.IntEnum):
    NUMBER = 0
    BOOL = 1
    TEXT = 2


# The devices service's ValueType names, by the kind of value that matches them.
VALUE_TYPE_OF_KIND = {Kind.NUMBER: "NUMBER", Kind.BOOL: "BOOLEAN", Kind.TEXT: "STRING"}
DECOMMISSIONED = "DECOMMISSIONED"


class Reason(enum.StrEnum):
    """Why a reading (or a whole message) was refused: the quarantine's ``reason``."""

    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_DECOMMISSIONED = "device_decommissioned"
    UNKNOWN_SENSOR = "unknown_sensor"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    TS_IN_FUTURE = "ts_in_future"
    TS_IN_PAST = "ts_in_past"
    DUPLICATE = "duplicate_in_message"
    INVALID_TEXT = "invalid_text"


# ``index`` of a refusal that concerns the whole message rather than one of its readings.
WHOLE_MESSAGE = -1


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    org_id: UUID
    device_id: UUID
    sensor: str
    ts: datetime
    kind: Kind
    num: float | None
    txt: str | None
    seq: int


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    reason: Reason
    detail: str
    reading: TelemetryReading | None = None


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_future: timedelta = timedelta(minutes=5)
    max_past: timedelta = timedelta(days=365)


class SensorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What readings knows of one sensor of a device. ``auto``: declared by a first reading
    here, not by the devices service."""

    value_type: str
    min: float | None = None
    max: float | None = None
    auto: bool = False


class Verdict(msgspec.Struct, kw_only=True):
    rows: list[Reading] = msgspec.field(default_factory=list)
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    # Sensors this message declared (auto-declare on and a sensor not known before).
    declared: dict[str, SensorSpec] = msgspec.field(default_factory=dict)
    # The registry does not know the device (yet): nothing was decided.
    unknown_device: bool = False


# Sensor keys already found good in this process: the decoder does not check the pattern
# (``WireSensorKey``), so each distinct key is checked here once. Bounded: a device cycling
# through made-up keys empties it now and then, it never grows without end.
_GOOD_KEYS: set[str] = set()
_GOOD_KEYS_MAX = 65_536


def sensor_key_problem(key: str) -> str | None:
    """What the contract's ``SensorKey`` says of ``key``, in msgspec's words; None when good."""
    if key in _GOOD_KEYS:
        return None
    try:
        msgspec.convert(key, SensorKey)
    except msgspec.ValidationError as exc:
        return str(exc)
    if len(_GOOD_KEYS) >= _GOOD_KEYS_MAX:
        _GOOD_KEYS.clear()
    _GOOD_KEYS.add(key)
    return None


def _invalid_key(index: int, problem: str) -> Verdict:
    """The whole message refused, as the decoder would have refused it (same wording)."""
    detail = f"invalid telemetry payload: {problem} - at `$.readings[{index}].sensor`"
    return Verdict(
        rejected=[Rejected(index=WHOLE_MESSAGE, reason=Reason.INVALID_PAYLOAD, detail=detail)]
    )


def _typed(value: float | int | bool | str) -> tuple[Kind, float | None, str | None]:
    if isinstance(value, bool):
        return Kind.BOOL, float(value), None
    if isinstance(value, (int, float)):
        return Kind.NUMBER, float(value), None
    return Kind.TEXT, None, value


def validate(
    org_id: UUID,
    device_id: UUID,
    message: TelemetryMessage,
    arrival: datetime,
    limits: Limits,
    *,
    device_status: str | None,
    sensors: Mapping[str, SensorSpec],
    auto_declare: bool,
) -> Verdict:
    """Rows to store and readings refused, by index. ``ts`` defaults to the arrival time.

    ``device_status`` is ``None`` when the registry does not know the device; ``sensors`` are
    the device's known sensors by key."""
    if device_status is None:
        return Verdict(unknown_device=True)
    if device_status == DECOMMISSIONED:
        return Verdict(
            rejected=[
                Rejected(
                    index=WHOLE_MESSAGE,
                    reason=Reason.DEVICE_DECOMMISSIONED,
                    detail="the device is decommissioned",
                )
            ]
        )
    verdict = Verdict()
    seen: set[tuple[str, datetime]] = set()
    # Hoisted out of the loop (the hot path of ingest, docs/performance.md): the bounds as
    # instants, and the bound methods.
    latest, earliest = arrival + limits.max_future, arrival - limits.max_past
    declared = verdict.declared
    keep, mark = verdict.rows.append, seen.add
    seq = message.seq
    good_keys = _GOOD_KEYS

    def refuse(index: int, item: TelemetryReading, reason: Reason, detail: str) -> None:
        verdict.rejected.append(Rejected(index=index, reason=reason, detail=detail, reading=item))

    for index, item in enumerate(message.readings):
        sensor = item.sensor
        if sensor not in good_keys and (problem := sensor_key_problem(sensor)) is not None:
            return _invalid_key(index, problem)
        ts = item.ts or arrival
        if ts > latest:
            refuse(index, item, Reason.TS_IN_FUTURE, "timestamp is too far in the future")
            continue
        if ts < earliest:
            refuse(index, item, Reason.TS_IN_PAST, "timestamp is too far in the past")
            continue
        key = (sensor, ts)
        if key in seen:
            refuse(index, item, Reason.DUPLICATE, "duplicate sensor and timestamp")
            continue
        value = item.value
        num: float | None
        txt: str | None
        if type(value) is float:  # the common case first
            kind, num, txt = Kind.NUMBER, value, None
        else:
            kind, num, txt = _typed(value)
            if txt is not None and "\x00" in txt:
                # Postgres cannot store U+0000 in text: refused here, not failed in the database.
                refuse(index, item, Reason.INVALID_TEXT, "text values may not contain U+0000")
                continue
        spec = sensors.get(sensor) or declared.get(sensor)
        if spec is None:
            if not auto_declare:
                refuse(index, item, Reason.UNKNOWN_SENSOR, f"no sensor {sensor!r}")
                continue
            spec = SensorSpec(value_type=VALUE_TYPE_OF_KIND[kind], auto=True)
            declared[sensor] = spec
        if spec.value_type != VALUE_TYPE_OF_KIND[kind]:
            refuse(
                index,
                item,
                Reason.WRONG_TYPE,
                f"sensor {sensor!r} takes {spec.value_type}, not {VALUE_TYPE_OF_KIND[kind]}",
            )
            continue
        if (
            kind == Kind.NUMBER
            and num is not None
            and (spec.min is not None or spec.max is not None)
            and not _in_range(num, spec)
        ):
            refuse(
                index,
                item,
                Reason.OUT_OF_RANGE,
                f"{num:g} is outside [{spec.min:g}, {spec.max:g}]"
                if spec.min is not None and spec.max is not None
                else f"{num:g} is out of range",
            )
            continue
        mark(key)
        keep(
            Reading(
                org_id=org_id,
                device_id=device_id,
                sensor=sensor,
                ts=ts,
                kind=kind,
                num=num,
                txt=txt,
                seq=seq,
            )
        )
    return verdict


# A batch spanning at most this many days gets every day between its first and last reading.
_DENSE_DAYS = 2


def partition_days(rows: list[Reading]) -> set[date]:
    """The UTC days (partitions) the rows fall on. A batch nearly always spans a day or two:
    then every day from the earliest to the latest, found from min/max rather than a date
    per row (the ingest hot path); a wider batch (a backfill) gets its exact days, so no
    empty partitions are made for the gaps."""
    if not rows:
        return set()
    first = min(r.ts for r in rows).astimezone(UTC).date()
    last = max(r.ts for r in rows).astimezone(UTC).date()
    span = (last - first).days
    if span > _DENSE_DAYS:
        return {r.ts.astimezone(UTC).date() for r in rows}
    return {first + timedelta(days=n) for n in range(span + 1)}


def _in_range(num: float, spec: SensorSpec) -> bool:
    if spec.min is not None and num < spec.min:
        return False
    return not (spec.max is not None and num > spec.max)


def value_of(kind: int, num: float | None, txt: str | None) -> float | int | bool | str:
    if kind == Kind.BOOL:
        return bool(num)
    if kind == Kind.TEXT:
        return txt or ""
    assert num is not None
    return int(num) if num.is_integer() and abs(num) < 2**53 else num


# --- seq -------------------------------------------------------------------------------


class SeqState(msgspec.Struct, frozen=True, kw_only=True):
    """A device's telemetry numbering: the highest ``seq`` seen, how many numbers it skipped
    in all, and how many times it started counting again."""

    last_seq: int
    gaps: int = 0
    resets: int = 0


# A device that starts counting again starts from here or below (0 or 1 after a reboot).
RESET_SEQ = 1


def advance_seq(state: SeqState | None, seq: int, *, first_delivery: bool) -> SeqState | None:
    """The state after a message numbered ``seq``; ``None`` when it changes nothing.

    A number above ``last + 1`` adds the skipped numbers to ``gaps``. A number at or below
    ``last`` changes nothing when the message may have been processed before (a
    redelivery). On a message's first delivery (never processed before, so nothing is
    counted twice) a lower number is either a counter reset (``seq <= RESET_SEQ``, e.g. a
    reboot) or a late message (batches fetched by several replicas commit out of order)
    that fills one of the gaps counted."""
    if state is None:
        return SeqState(last_seq=seq)
    if seq > state.last_seq:
        return SeqState(
            last_seq=seq, gaps=state.gaps + seq - state.last_seq - 1, resets=state.resets
        )
    if not first_delivery or seq == state.last_seq:
        return None
    if seq <= RESET_SEQ:
        return SeqState(last_seq=seq, gaps=state.gaps, resets=state.resets + 1)
    if state.gaps > 0:
        return SeqState(last_seq=state.last_seq, gaps=state.gaps - 1, resets=state.resets)
    return None
