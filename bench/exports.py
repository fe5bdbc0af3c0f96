"""bench/exports: 1M readings exported to zipped CSV, end to end (request → READY), with the
worker's peak RSS, beside the baseline of Postgres ``COPY … TO STDOUT`` of the same rows into
a zip in the same run (issue 7; targets in docs/performance.md: < 3 s, ≥ 0.5x the
baseline's rate, worker RSS < 200 MB).

What runs: a private Postgres (durable settings) and nats-server; the readings and exports
schemas migrated and provisioned as the services' own; ``--devices`` devices with
``--per-device`` readings each (one every second, two sensors alternating), generated in SQL
as in ``bench/query.py``. Then, as separate processes as in production: the real readings
service (``outpost-readings serve``: it answers ``StreamReadings``) and the real exports
service (``outpost-exports serve``: API, outbox relay, one worker). The bench process stands
in for the devices service only to list the organization's device ids (one request).

Measured, ``--runs`` times each, alternated:

- **export**: ``CreateExport`` (ORGANIZATION scope, READINGS, CSV) over NATS → poll
  ``GetExport`` every 20 ms until READY; then the archive is read back from the object store
  and its rows counted;
- **baseline**: one ``COPY (SELECT … ORDER BY device, ts, sensor) TO STDOUT (FORMAT csv)`` as
  the readings role under the tenant's RLS, streamed into a zip member (zipfile, the same
  compression level as the worker's), on one connection, in this process;
- the exports process's peak RSS (VmHWM from /proc) after all runs, and the CPU time the
  exports and readings processes spent during each export (Postgres's is the rest).

Run: ``uv run python bench/exports.py [--devices 10 --per-device 100000 --runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

START = datetime(2026, 1, 5, tzinfo=UTC)


async def _seed(admin_dsn: str, org: uuid.UUID, devices: list[uuid.UUID], per_device: int) -> int:
    from outpost_kit.db.engine import plain_dsn

    conn = await asyncpg.connect(plain_dsn(admin_dsn), server_settings={"search_path": "readings"})
    try:
        days = per_device // 2 // 86400 + 2
        for d in range(days):
            await conn.execute(
                "SELECT readings.ensure_readings_partition($1::date)",
                (START + timedelta(days=d)).date(),
            )
        for i, device in enumerate(devices):
            await conn.execute(
                "INSERT INTO readings.devices (org_id, id, name, status, version)"
                " VALUES ($1, $2, $3, 'REGISTERED', 1)",
                org,
                device,
                f"bench-{i}",
            )
        started = time.perf_counter()
        for device in devices:
            await conn.execute(
                "INSERT INTO readings.readings (org_id, device_id, sensor, ts, kind, num, seq,"
                " received_at) SELECT $1, $2, CASE WHEN g % 2 = 0 THEN 'humidity' ELSE 'temp' END,"
                " $3::timestamptz + make_interval(secs => g / 2), 0,"
                " round((20 + 10 * sin(g / 500.0) + random())::numeric, 3), 0, now()"
                " FROM generate_series(0, $4 - 1) g",
                org,
                device,
                START,
                per_device,
            )
        await conn.execute("VACUUM ANALYZE readings.readings")
        rows = int(await conn.fetchval("SELECT count(*) FROM readings.readings"))
        print(f"readings: {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        return rows
    finally:
        await conn.close()


async def _baseline(
    app_dsn: str, org: uuid.UUID, level: int, end: datetime
) -> tuple[float, int, int]:
    """COPY of the same rows as CSV into a zip member; (seconds, rows, zip bytes)."""
    from outpost_kit.db.engine import plain_dsn

    conn = await asyncpg.connect(plain_dsn(app_dsn), server_settings={"search_path": "readings"})
    buffer = io.BytesIO()
    rows = 0
    try:
        started = time.perf_counter()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
            with zf.open("readings.csv", "w", force_zip64=True) as member:

                async def sink(data: bytes) -> None:
                    nonlocal rows
                    rows += data.count(b"\n")
                    member.write(data)

                async with conn.transaction():
                    await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
                    await conn.copy_from_query(
                        "SELECT device_id, sensor,"
                        " to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), num"
                        " FROM readings WHERE ts >= $1 AND ts < $2"
                        " ORDER BY device_id, ts, sensor",
                        START,
                        end,
                        output=sink,
                        format="csv",
                        header=True,
                    )
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return seconds, rows - 1, len(buffer.getvalue())


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / f"outpost-{service}"
    handle = log.open("wb")
    return subprocess.Popen([str(exe), "serve"], env=env, stdout=handle, stderr=subprocess.STDOUT)


async def _main(args: argparse.Namespace, admin_dsn: str, nats_url: str, base: Path) -> None:
    from outpost_contracts import devices as devices_api
    from outpost_contracts import exports as api
    from outpost_contracts import readings as readings_api
    from outpost_contracts import streams
    from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
    from outpost_contracts.query import Page
    from outpost_exports import bootstrap as exports_boot
    from outpost_kit import messaging
    from outpost_kit.cli import migrations_dir
    from outpost_kit.db.migrate import upgrade
    from outpost_kit.db.provision import provision_service
    from outpost_kit.responder import Responder
    from outpost_readings import bootstrap as readings_boot

    dsns = {}
    for service, boot in (("readings", readings_boot), ("exports", exports_boot)):
        dsns[service] = await provision_service(admin_dsn, service, secrets.token_urlsafe(16))
        await upgrade(admin_dsn, service, migrations_dir(boot.__file__))
    org = uuid.uuid4()
    devices = [uuid.uuid4() for _ in range(args.devices)]
    total = await _seed(admin_dsn, org, devices, args.per_device)
    end = START + timedelta(days=args.per_device // 2 // 86400 + 2)

    nc = await messaging.connect(nats_url, "bench-exports")
    # Every stream and consumer, as make dev applies them (readings follows DEVICES).
    await messaging.apply_streams(nc.jetstream(), streams.STREAMS, streams.CONSUMERS)
    now = datetime.now(UTC)

    async def list_devices(_ctx: Any, _q: Any) -> Page[devices_api.DeviceView]:
        views = [
            devices_api.DeviceView(
                id=d,
                name=str(d),
                status=devices_api.DeviceStatus.ACTIVE,
                created_at=now,
                updated_at=now,
                version=1,
            )
            for d in devices
        ]
        return Page(data=views, limit=1000)

    stand_in = Responder(nc, "devices", {devices_api.LIST_DEVICES: list_devices})
    await stand_in.start()
    procs = {}
    for service in ("readings", "exports"):
        env = {
            **os.environ,
            "OUTPOST_NATS_URL": nats_url,
            f"OUTPOST_{service.upper()}_DATABASE_URL": dsns[service],
            f"OUTPOST_{service.upper()}_HEALTH_PORT": "0",
            "OUTPOST_EXPORTS_SPOOL_DIR": str(base / "spool"),
            "OUTPOST_EXPORTS_COMPRESS_LEVEL": str(args.level),
            "OUTPOST_EXPORTS_MAX_CONCURRENT_PER_ORG": "100",
        }
        procs[service] = _spawn(service, env, base / f"{service}.log")
    ctx = RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )
    try:
        probe = readings_api.StreamReadings(device_id=devices[0], from_=START, to=end, limit=1)
        for _ in range(600):  # both services answer
            try:
                await messaging.call(nc, api.LIST_EXPORTS, ctx, api.ListExports(), timeout=1)
                await messaging.call(nc, readings_api.STREAM_READINGS, ctx, probe, timeout=1)
                break
            except Exception:
                await asyncio.sleep(0.1)
        print(
            f"{total:,} readings, {args.devices} devices; load average before:"
            f" {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)",
            flush=True,
        )
        export_s: list[float] = []
        base_s: list[float] = []
        for run in range(args.runs + 1):  # the first of each is a warm-up
            body = api.CreateExport(
                scope_type=api.ScopeType.ORGANIZATION, from_=START, to=end, format=api.Format.CSV
            )
            cpu = {name: _cpu_seconds(p.pid) for name, p in procs.items()}
            started = time.perf_counter()
            view = await messaging.call(nc, api.CREATE_EXPORT, ctx, body)
            while view.status not in (api.ExportStatus.READY, api.ExportStatus.FAILED):
                await asyncio.sleep(0.02)
                view = await messaging.call(nc, api.GET_EXPORT, ctx, api.ExportById(id=view.id))
            took = time.perf_counter() - started
            used = {name: _cpu_seconds(p.pid) - cpu[name] for name, p in procs.items()}
            if view.status != api.ExportStatus.READY:
                for service in procs:
                    print(f"--- {service} log:\n" + (base / f"{service}.log").read_text()[-3000:])
            assert view.status == api.ExportStatus.READY, view
            assert view.reading_count == total, (view.reading_count, total)
            b_s, b_rows, b_bytes = await _baseline(dsns["readings"], org, args.level, end)
            assert b_rows == total, (b_rows, total)
            label = "warm-up" if run == 0 else f"run {run}"
            print(
                f"{label:<8} export {took:6.2f} s ({total / took / 1e6:.2f} M rows/s,"
                f" {view.size_bytes / 1e6:.1f} MB)   baseline COPY→zip {b_s:6.2f} s"
                f" ({b_rows / b_s / 1e6:.2f} M rows/s, {b_bytes / 1e6:.1f} MB);"
                f" CPU during the export: exports {used['exports']:.2f} s,"
                f" readings {used['readings']:.2f} s",
                flush=True,
            )
            if run:
                export_s.append(took)
                base_s.append(b_s)
            await messaging.call(nc, api.DELETE_EXPORT, ctx, api.DeleteExport(id=view.id))
        rss = _rss_peak_mb(procs["exports"].pid)
        e, b = statistics.median(export_s), statistics.median(base_s)
        print(
            f"\nmedian of {args.runs}: export {e:.2f} s ({total / e / 1e6:.2f} M rows/s);"
            f" baseline {b:.2f} s ({total / b / 1e6:.2f} M rows/s); ratio {b / e:.2f}x of the"
            f" baseline's rate; exports process peak RSS {rss:.0f} MB",
            flush=True,
        )
        print(
            f"targets: < 3 s {'met' if e < 3 else 'NOT met'}; >= 0.5x baseline"
            f" {'met' if b / e >= 0.5 else 'NOT met'}; RSS < 200 MB"
            f" {'met' if rss < 200 else 'NOT met'}; load average after: {os.getloadavg()[0]:.2f}"
        )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await stand_in.stop()
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--per-device", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--level", type=int, default=1, help="zlib level of both archives")
    args = parser.parse_args()

    from outpost_devkit.infra import NatsServer, PostgresCluster

    base = Path(tempfile.mkdtemp(prefix="outpost-bench-exports-"))
    pg = nats = None
    try:
        pg = PostgresCluster.start(base / "pg")
        nats = NatsServer.start(base / "nats")
        asyncio.run(_main(args, pg.admin_dsn, nats.url, base))
    finally:
        if nats is not None:
            nats.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
