"""Export jobs against real nats-server and Postgres: request → READY with the right archive
(device and group, CSV and NDJSON); bad requests change nothing; the concurrency limit;
another organization's export is 404; two workers never run one job; a worker SIGKILLed
mid-export leaves the job to another and exactly one archive results; cancel; expiry."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from exports_testkit import T0, Env, ctx, expected_rows, exports_env, worker_script

from outpost_contracts import exports as api
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.query import ListQuery
from outpost_exports.app import handlers
from outpost_exports.app.expiry import expire_due, requeue_stuck
from outpost_exports.app.handlers import Policy
from outpost_exports.app.worker import Verdict
from outpost_exports.entrypoints import worker
from outpost_kit import ids

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(postgres_dsn: str, nats_url: str) -> AsyncIterator[Env]:
    async with exports_env(postgres_dsn, nats_url) as e:
        yield e


def request(scope: api.ScopeType, scope_id: uuid.UUID | None, **kw: object) -> api.CreateExport:
    return api.CreateExport(
        scope_type=scope,
        scope_id=scope_id,
        from_=T0,
        to=T0 + timedelta(days=1),
        **kw,  # type: ignore[arg-type]
    )


async def archive_of(env: Env, name: str) -> zipfile.ZipFile:
    obs = await env.js.object_store(env.bucket)
    return zipfile.ZipFile(io.BytesIO((await obs.get(name)).data))


def rows_of(zf: zipfile.ZipFile, fmt: api.Format) -> list[tuple[str, str, str, str]]:
    if fmt == api.Format.CSV:
        reader = csv.DictReader(io.StringIO(zf.read("readings.csv").decode()))
        return [(r["deviceId"], r["sensor"], r["ts"], r["value"]) for r in reader]
    out = []
    for line in zf.read("readings.ndjson").decode().splitlines():
        r = json.loads(line)
        v = r["value"]
        out.append((r["deviceId"], r["sensor"], r["ts"], repr(v)))
    return out


async def run_workers(
    env: Env, org: uuid.UUID, *runners: object
) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    spec = await env.consumer(org)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(r, env.js, spec, stop)) for r in runners]  # type: ignore[arg-type]
    return stop, tasks


async def stop_workers(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


@pytest.mark.parametrize(
    ("scope", "fmt"),
    [(api.ScopeType.DEVICE, api.Format.CSV), (api.ScopeType.GROUP, api.Format.NDJSON)],
)
async def test_a_job_runs_to_ready_with_every_row(
    env: Env, scope: api.ScopeType, fmt: api.Format
) -> None:
    org = uuid.uuid4()
    group = uuid.uuid4()
    a = env.fleet.add_device(org, 5_001, group)
    b = env.fleet.add_device(org, 3_000, group)
    env.fleet.add_device(org, 10)  # not in the group
    note = env.fleet.add_annotation(org, a)
    scope_id = a if scope == api.ScopeType.DEVICE else group
    covered = [a] if scope == api.ScopeType.DEVICE else [a, b]
    c = ctx(org)
    includes = [api.Include.READINGS, api.Include.ANNOTATIONS]
    view = await handlers.create_export(
        env.deps(), c, request(scope, scope_id, format=fmt, includes=includes)
    )
    assert view.status == api.ExportStatus.PENDING and view.requested_by == c.principal.id
    stop, tasks = await run_workers(env, org, env.runner("w-ready"))
    try:
        row = await env.wait_for(org, view.id, lambda r: r.status == "READY")
    finally:
        await stop_workers(stop, tasks)
    expected = expected_rows(env.fleet, org, covered)
    got = await handlers.get_export(env.deps(), c, api.ExportById(id=view.id))
    assert got.status == api.ExportStatus.READY and got.reading_count == len(expected)
    assert got.annotation_count == 1 and got.size_bytes and got.completed_at and got.expires_at
    assert got.download_url is None  # the gateway signs its own link for the object store
    zf = await archive_of(env, row.object_name)
    assert rows_of(zf, fmt) == expected
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["counts"] == {"readings": len(expected), "annotations": 1}
    assert manifest["scope"] == {"type": scope.value, "id": str(scope_id)}
    assert manifest["devices"] == [str(d) for d in covered]
    ext = fmt.value.lower()
    assert [f["name"] for f in manifest["files"]] == [f"readings.{ext}", f"annotations.{ext}"]
    assert str(note.id) in zf.read(f"annotations.{ext}").decode()
    assert await env.store.names(f"{org}/") == [row.object_name]
    location = await handlers.get_artifact(env.deps(), c, api.ExportById(id=view.id))
    assert location.size_bytes == got.size_bytes and location.object_name == row.object_name
    page = await handlers.list_exports(env.deps(), c, api.ListExports(query=ListQuery()))
    assert [e.id for e in page.data] == [view.id]


@pytest.mark.parametrize("fmt", [api.Format.CSV, api.Format.NDJSON])
async def test_alerts_and_events_are_exported_row_by_row(env: Env, fmt: api.Format) -> None:
    """ALERTS: the scope's devices' alerts opened in [from, to); EVENTS: their timeline
    entries in [from, to); both asked of alerting (filtered, paged with ``after``)."""
    org = uuid.uuid4()
    group = uuid.uuid4()
    a = env.fleet.add_device(org, 3, group)
    b = env.fleet.add_device(org, 2, group)
    lone = env.fleet.add_device(org, 1)  # not in the group
    end = T0 + timedelta(days=1)
    at = [T0, T0 + timedelta(hours=1), end - timedelta(microseconds=1), end, T0 - timedelta(1)]
    alerts, events = [], []
    for n, (device, ts) in enumerate(
        [(a, at[0]), (b, at[1]), (lone, at[1]), (a, at[3]), (b, at[2]), (a, at[4]), (a, at[1])]
    ):
        alerts.append(env.fleet.add_alert(org, device, ts, n))
        events.append(env.fleet.add_event(org, device, ts, n))
    env.fleet.add_event(org, None, at[1], 99)  # the organization's, no device's
    inside = [0, 1, 4, 6]  # in the group and in [from, to)
    c = ctx(org)
    includes = list(api.Include)
    view = await handlers.create_export(
        env.deps(), c, request(api.ScopeType.GROUP, group, format=fmt, includes=includes)
    )
    assert view.includes == includes
    before = len(env.fleet.alerting_queries)
    stop, tasks = await run_workers(env, org, env.runner("w-alerts"))
    try:
        row = await env.wait_for(org, view.id, lambda r: r.status == "READY")
    finally:
        await stop_workers(stop, tasks)
    # Pages of two: alerts and events each took a second page, asked for after the first.
    queries = env.fleet.alerting_queries[before:]
    assert [q.after is not None for q in queries] == [False, True, False, True]
    zf = await archive_of(env, row.object_name)
    ext = fmt.value.lower()
    manifest = json.loads(zf.read("manifest.json"))
    assert [f["name"] for f in manifest["files"]] == [
        f"{kind}.{ext}" for kind in ("readings", "annotations", "alerts", "events")
    ]
    assert manifest["counts"] == {"readings": 5, "annotations": 0, "alerts": 4, "events": 4}
    for f in manifest["files"]:
        assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
    want_alerts = [alerts[i] for i in inside]
    want_events = [events[i] for i in inside]
    got_alerts = zf.read(f"alerts.{ext}").decode()
    got_events = zf.read(f"events.{ext}").decode()
    if fmt == api.Format.NDJSON:
        assert [json.loads(line) for line in got_alerts.splitlines()] == [
            json.loads(msgspec.json.encode(x)) for x in want_alerts
        ]
        assert [json.loads(line) for line in got_events.splitlines()] == [
            json.loads(msgspec.json.encode(x)) for x in want_events
        ]
        return

    def stamp(t: object) -> str:
        return "" if t is None else msgspec.json.encode(t).decode().strip('"')

    assert list(csv.DictReader(io.StringIO(got_alerts))) == [
        {
            "id": str(x.id),
            "ruleId": str(x.rule_id),
            "ruleVersion": str(x.rule_version),
            "deviceId": str(x.device_id),
            "sensor": x.sensor,
            "status": x.status.value,
            "severity": x.severity.value,
            "openedAt": stamp(x.opened_at),
            "acknowledgedAt": stamp(x.acknowledged_at),
            "resolvedAt": stamp(x.resolved_at),
            "triggerValue": repr(x.trigger.value),
            "triggerTs": stamp(x.trigger.ts),
        }
        for x in want_alerts
    ]
    assert list(csv.DictReader(io.StringIO(got_events))) == [
        {
            "id": str(x.id),
            "ts": stamp(x.ts),
            "type": x.type,
            "deviceId": str(x.device_id),
            "alertId": "",
            "summary": x.summary,
            "data": msgspec.json.encode(x.data).decode(),
        }
        for x in want_events
    ]


async def test_bad_requests_are_refused_and_change_nothing(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 10)
    c = ctx(org)
    bad = [
        request(api.ScopeType.DEVICE, uuid.uuid4()),  # not one of the organization's devices
        request(api.ScopeType.GROUP, uuid.uuid4()),
        request(api.ScopeType.DEVICE, device, includes=[api.Include.ALERTS, api.Include.ALERTS]),
        api.CreateExport(
            scope_type=api.ScopeType.DEVICE, scope_id=device, from_=T0, to=T0 + timedelta(days=400)
        ),
        request(api.ScopeType.ORGANIZATION, device),
    ]
    for body in bad:
        with pytest.raises(ValidationFailed):
            await handlers.create_export(env.deps(), c, body)
    page = await handlers.list_exports(env.deps(), c, api.ListExports(query=ListQuery()))
    assert page.data == []


async def test_concurrent_jobs_per_organization_are_limited(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 10)
    deps = env.deps(Policy(max_concurrent=2))
    for _ in range(2):
        await handlers.create_export(deps, ctx(org), request(api.ScopeType.DEVICE, device))
    with pytest.raises(Conflict):
        await handlers.create_export(deps, ctx(org), request(api.ScopeType.DEVICE, device))
    # Another organization is not held back by this one's jobs.
    other = uuid.uuid4()
    await handlers.create_export(deps, ctx(other), request(api.ScopeType.ORGANIZATION, None))


async def test_another_organizations_export_is_not_found(env: Env) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    device = env.fleet.add_device(org, 10)
    view = await handlers.create_export(env.deps(), ctx(org), request(api.ScopeType.DEVICE, device))
    for call in (
        handlers.get_export(env.deps(), ctx(other), api.ExportById(id=view.id)),
        handlers.get_artifact(env.deps(), ctx(other), api.ExportById(id=view.id)),
        handlers.delete_export(env.deps(), ctx(other), api.DeleteExport(id=view.id)),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await env.status(org, view.id)).status == "PENDING"


async def test_two_workers_never_run_the_same_job(env: Env) -> None:
    """The same work item in two workers' hands at once (a redelivery after an ack wait):
    one runs it, the other is told to come back after the lease."""
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 20_000)
    env.fleet.hold(after=1)  # the first worker is certainly still running when the second asks
    try:
        view = await handlers.create_export(
            env.deps(), ctx(org), request(api.ScopeType.DEVICE, device)
        )
        work = api.ExportWork(org_id=org, export_id=view.id)

        async def nothing() -> None:
            return None

        first, second = env.runner("w-one"), env.runner("w-two")
        one = asyncio.create_task(first.run(work, nothing))
        await env.wait_for(org, view.id, lambda r: r.status == "RUNNING")
        two = await second.run(work, nothing)
        assert two.verdict is Verdict.RETRY and two.delay > 0
        env.fleet.release()
        assert (await one).verdict is Verdict.ACK
    finally:
        env.fleet.release()
    row = await env.status(org, view.id)
    assert row.status == "READY" and row.attempt == 1
    assert await env.started_events(org, view.id) == 1
    assert await env.store.names(f"{org}/") == [row.object_name]
    # Delivered once more after it finished: nothing runs again.
    assert (await second.run(work, nothing)).verdict is Verdict.ACK
    assert await env.started_events(org, view.id) == 1


async def test_a_killed_worker_leaves_the_job_to_another_and_one_archive_results(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 60_000)
    env.fleet.hold(after=3)  # 3 of 30 chunks, then the job waits: killed mid-way, certainly
    spec = await env.consumer(org)
    proc = subprocess.Popen(  # noqa: ASYNC220 - a process to SIGKILL, not awaited
        [
            sys.executable,
            str(worker_script()),
            "--dsn",
            env.dsn,
            "--nats",
            env.nats_url,
            "--consumer",
            spec.name,
            "--bucket",
            env.bucket,
            "--worker-id",
            "doomed",
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])},
    )
    try:
        view = await handlers.create_export(
            env.deps(), ctx(org), request(api.ScopeType.DEVICE, device)
        )
        await env.wait_for(  # a worker process starting on a loaded machine: slow
            org, view.id, lambda r: r.status == "RUNNING" and (r.rows_written or 0) > 0, 90
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed_at = await env.status(org, view.id)
        assert killed_at.status == "RUNNING" and killed_at.rows_written < 60_000
        env.fleet.release()
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(env.runner("rescuer"), env.js, spec, stop))
        try:
            row = await env.wait_for(org, view.id, lambda r: r.status == "READY", timeout=90)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        env.fleet.release()
        if proc.poll() is None:
            proc.kill()
    assert row.attempt == 2 and row.reading_count == 60_000
    assert await env.started_events(org, view.id) == 2
    assert await env.store.names(f"{org}/") == [row.object_name]
    zf = await archive_of(env, row.object_name)
    assert rows_of(zf, api.Format.CSV) == expected_rows(env.fleet, org, [device])


async def test_cancel_stops_a_running_job_within_seconds(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 200_000)
    env.fleet.chunk_delay = 0.05
    env.fleet.hold(after=3)  # cancelled while certainly running (3 of 100 chunks served)
    try:
        c = ctx(org)
        view = await handlers.create_export(env.deps(), c, request(api.ScopeType.DEVICE, device))
        stop, tasks = await run_workers(env, org, env.runner("w-cancel"))
        await env.wait_for(
            org, view.id, lambda r: r.status == "RUNNING" and (r.rows_written or 0) > 0
        )
        await handlers.delete_export(env.deps(), c, api.DeleteExport(id=view.id))
        served = env.fleet.chunks_served
        env.fleet.release()
        await asyncio.sleep(2.0)
        # The worker stopped asking for chunks (at most the one in flight and the next).
        assert env.fleet.chunks_served - served <= 3
        await stop_workers(stop, tasks)
    finally:
        env.fleet.chunk_delay = 0
        env.fleet.release()
    got = await handlers.get_export(env.deps(), c, api.ExportById(id=view.id))
    assert got.status == api.ExportStatus.CANCELLED and got.reason == "cancelled"
    assert await env.store.names(f"{org}/") == []
    with pytest.raises(NotFound):
        await handlers.get_artifact(env.deps(), c, api.ExportById(id=view.id))
    # DELETE again deletes the finished (cancelled) export.
    await handlers.delete_export(env.deps(), c, api.DeleteExport(id=view.id))
    with pytest.raises(NotFound):
        await handlers.get_export(env.deps(), c, api.ExportById(id=view.id))


async def test_expired_archives_are_deleted_and_the_export_shows_expired(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 100)
    c = ctx(org)
    view = await handlers.create_export(env.deps(), c, request(api.ScopeType.DEVICE, device))
    stop, tasks = await run_workers(
        env, org, env.runner("w-expiry", artifact_ttl=timedelta(minutes=5))
    )
    try:
        row = await env.wait_for(org, view.id, lambda r: r.status == "READY")
    finally:
        await stop_workers(stop, tasks)
    assert await env.store.names(f"{org}/") == [row.object_name]
    assert await expire_due(env.exports, env.store, ids.now()) == 0  # not yet
    assert await expire_due(env.exports, env.store, ids.now() + timedelta(minutes=6)) >= 1
    got = await handlers.get_export(env.deps(), c, api.ExportById(id=view.id))
    assert got.status == api.ExportStatus.EXPIRED
    assert await env.store.names(f"{org}/") == []
    with pytest.raises(NotFound):
        await handlers.get_artifact(env.deps(), c, api.ExportById(id=view.id))
    assert await expire_due(env.exports, env.store, ids.now() + timedelta(minutes=6)) == 0


async def test_deleting_a_ready_export_deletes_its_archive(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 100)
    c = ctx(org)
    view = await handlers.create_export(env.deps(), c, request(api.ScopeType.DEVICE, device))
    stop, tasks = await run_workers(env, org, env.runner("w-delete"))
    try:
        await env.wait_for(org, view.id, lambda r: r.status == "READY")
    finally:
        await stop_workers(stop, tasks)
    await handlers.delete_export(env.deps(), c, api.DeleteExport(id=view.id))
    assert await env.store.names(f"{org}/") == []
    with pytest.raises(NotFound):
        await handlers.get_export(env.deps(), c, api.ExportById(id=view.id))


async def test_a_job_whose_work_item_was_lost_is_published_again_and_runs(env: Env) -> None:
    org = uuid.uuid4()
    device = env.fleet.add_device(org, 100)
    c = ctx(org)
    view = await handlers.create_export(env.deps(), c, request(api.ScopeType.DEVICE, device))
    subject = f"outpost.work.exports.{org}.{view.id}"

    async def queued() -> int:
        info = await env.js.stream_info("EXPORT_JOBS", subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    for _ in range(600):  # the relay published it (up to 30 s: a loaded machine)
        if await queued():
            break
        await asyncio.sleep(0.05)
    assert await queued() == 1
    await env.js.purge_stream("EXPORT_JOBS", subject=subject)  # a broker that lost it
    assert await queued() == 0
    assert await requeue_stuck(env.exports, ids.now(), timedelta(minutes=10)) == 0  # not yet
    later = ids.now() + timedelta(minutes=11)
    assert await requeue_stuck(env.exports, later, timedelta(minutes=10)) >= 1
    stop, tasks = await run_workers(env, org, env.runner("w-requeue"))
    try:
        row = await env.wait_for(org, view.id, lambda r: r.status == "READY")
    finally:
        await stop_workers(stop, tasks)
    assert row.reading_count == 100
    async with env.uow(None) as u:
        left = (
            await u.execute(
                "SELECT count(*) FROM export_queue WHERE export_id = :id", {"id": view.id}
            )
        ).scalar_one()
    assert left == 0  # a finished job is not swept again


async def test_an_upload_longer_than_the_lease_and_ack_wait_keeps_the_job(env: Env) -> None:
    """Both workers upload slowly (4 s, twice the lease and the ack wait): the one that has
    the job keeps its lease and its message alive, the other never takes it over."""
    from outpost_exports.adapters.artifacts import NatsArtifactStore
    from outpost_exports.adapters.sources import NatsSources
    from outpost_exports.app.worker import Runner, WorkerConfig

    class SlowStore(NatsArtifactStore):
        async def put(self, name: str, path: Path) -> int:
            await asyncio.sleep(4.0)
            return await super().put(name, path)

    org = uuid.uuid4()
    device = env.fleet.add_device(org, 100)
    store = SlowStore(env.js, env.bucket)
    runners = [
        Runner(
            env.exports,
            NatsSources(env.nc),
            store,
            WorkerConfig(
                worker_id=f"slow-{i}",
                lease=timedelta(seconds=2),
                progress_every_seconds=0.2,
                chunk_rows=2_000,
            ),
        )
        for i in (1, 2)
    ]
    view = await handlers.create_export(env.deps(), ctx(org), request(api.ScopeType.DEVICE, device))
    stop, tasks = await run_workers(env, org, *runners)
    try:
        row = await env.wait_for(org, view.id, lambda r: r.status == "READY", timeout=30)
    finally:
        await stop_workers(stop, tasks)
    assert row.attempt == 1 and await env.started_events(org, view.id) == 1
    assert await env.store.names(f"{org}/") == [row.object_name]
