"""bench/decode: what decoding a device's telemetry message costs per reading, with the
sensor key checked by msgspec's regex (the strict ``SensorKey``, the baseline) and with
``WireSensorKey`` plus the domain's once-per-key check (what ingest does, decision 58), in
the same run on the same payload.

Run: ``uv run python bench/decode.py [--readings 100] [--sensors 10] [--rounds 5]``.
Prints the best round of each, in ns per reading; the two are timed alternately so a
machine's load weighs on both alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from outpost_contracts.readings import SensorKey, TelemetryMessage
from outpost_readings.domain.readings import sensor_key_problem


class StrictReading(msgspec.Struct, kw_only=True, frozen=True):
    sensor: SensorKey
    value: float | int | bool | str
    ts: datetime | None = None


class StrictMessage(msgspec.Struct, kw_only=True, frozen=True):
    seq: int
    readings: list[StrictReading]


def _payload(readings: int, sensors: int) -> bytes:
    t0 = datetime(2026, 11, 21, tzinfo=UTC)
    items = [
        {
            "sensor": f"s{i % sensors}",
            "value": i * 0.5,
            "ts": (t0 + timedelta(seconds=i)).isoformat(),
        }
        for i in range(readings)
    ]
    return msgspec.json.encode({"seq": 1, "readings": items})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=100)
    ap.add_argument("--sensors", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--decodes", type=int, default=20_000)
    args = ap.parse_args()
    payload = _payload(args.readings, args.sensors)
    strict = msgspec.json.Decoder(StrictMessage)
    wire = msgspec.json.Decoder(TelemetryMessage)

    def baseline() -> None:
        strict.decode(payload)

    good: set[str] = set()

    def platform() -> None:
        message = wire.decode(payload)
        for r in message.readings:  # as validate does: a set lookup, the check once per key
            if r.sensor not in good and sensor_key_problem(r.sensor) is None:
                good.add(r.sensor)

    best = {"strict SensorKey (baseline)": float("inf"), "WireSensorKey + key check": float("inf")}
    runs: list[tuple[str, Callable[[], None]]] = [
        ("strict SensorKey (baseline)", baseline),
        ("WireSensorKey + key check", platform),
    ]
    for _ in range(args.rounds):
        for name, fn in runs:
            start = time.perf_counter()
            for _ in range(args.decodes):
                fn()
            per = (time.perf_counter() - start) / args.decodes / args.readings * 1e9
            best[name] = min(best[name], per)
    print(f"{args.readings} readings per message, {args.sensors} sensors, best of {args.rounds}")
    for name, ns in best.items():
        print(f"  {name:30} {ns:7.0f} ns per reading")
    base = best["strict SensorKey (baseline)"]
    print(f"  ratio: {base / best['WireSensorKey + key check']:.2f}x faster")


if __name__ == "__main__":
    main()
