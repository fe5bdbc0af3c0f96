"""bench/fleet: one desired-state binding on an organization of 10,000 registered devices
(issue 21, ADR 0093): how long until every device's effective state is computed, until every
device's desired state is set by devices, and the p99 of ``GetDevice`` idle beside the same
measurement during the rollout, in the same run.

What runs: one nats-server (plain, JetStream) and one Postgres, both private; the devices and
fleet schemas migrated and provisioned as the services' own. Two child processes on uvloop,
as the services run:

- **devices**: the devices service's handlers (``entrypoints/rpc.handlers``, its Postgres
  adapters) served over the broker, and its outbox relay publishing to DEVICES; when this
  build's devices does not serve ``SetFleetDesiredStates`` yet, a stand-in answering at once
  takes its place (the run says so);
- **fleet**: the fleet service's responder and its rollout (``bootstrap.rollout_jobs``: the
  ``fleet-devices``, ``fleet-reports`` and ``fleet-recompute`` consumers, the delivery and
  profile-job workers, default settings) and its outbox relay.

The bench registers ``--devices`` devices through ``CreateDevice`` (the fleet learns them from
the DEVICES stream), measures ``GetDevice`` round trips idle, then binds an artefact to the
organization (its read model rows and its ``DesiredStateBindingCreated`` on FLEET, as fleet's
relay publishes it) and, while ``GetDevice`` keeps being measured, waits until every device
has an effective state (computed) and a delivered one (set by devices). Baseline, same run:
``effective_state`` of every device in one Python loop, no I/O (the compute floor).

No simulated device is connected: the time to "set" is until devices took each desired state
(it would publish ``outpost.state`` to connected devices). ``--fleet-only`` publishes the
registrations' events on DEVICES instead of creating the devices (the fleet's side alone,
quick on a loaded machine; no ``GetDevice`` figures then). Run:
``uv run python bench/fleet.py [--devices 10000] [--fleet-only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import msgspec


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


def _ctx(org: uuid.UUID) -> Any:
    from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext

    principal = Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",))
    return RequestContext(request_id=secrets.token_hex(16), org_id=org, principal=principal)


# -- the services (child processes) ------------------------------------------------------


def devices_main(nats_url: str, dsn: str, ready: Any) -> None:
    async def main() -> None:
        from outpost_contracts import device_config
        from outpost_devices import bootstrap
        from outpost_devices.adapters.store import PgDevices, PgDevicesReads
        from outpost_devices.app import handlers
        from outpost_devices.entrypoints import rpc
        from outpost_kit.db.engine import create_engine
        from outpost_kit.db.eventstore import EventCodec
        from outpost_kit.db.outbox import OutboxRelay
        from outpost_kit.db.reads import TenantReads
        from outpost_kit.messaging import connect
        from outpost_kit.responder import Responder

        engine = create_engine(dsn, "devices", pool_size=8)
        reads = await TenantReads.connect(dsn, "devices", size=4)
        deps = handlers.Deps(
            uow=PgDevices(engine, EventCodec(bootstrap.EVENT_TYPES), bootstrap.ALL_PROJECTORS),
            reads=PgDevicesReads(reads),
        )
        nc = await connect(nats_url, "bench-devices")
        table = rpc.handlers(deps)
        standin = device_config.SET_FLEET_DESIRED_STATES not in table

        async def set_states(ctx: Any, q: Any) -> Any:
            ids = [i.device_id for i in q.items]
            return device_config.SetFleetDesiredStatesResult(
                changed=ids, unchanged=[], missing=[], too_large=[]
            )

        if standin:
            table[device_config.SET_FLEET_DESIRED_STATES] = set_states
        responder = Responder(nc, "devices", table)
        await responder.start()
        stop = asyncio.Event()
        relay = asyncio.create_task(OutboxRelay(dsn, "devices", nc.jetstream()).run(stop))
        ready.send(standin)
        await asyncio.Event().wait()  # until terminated
        await relay

    _run(main())


def fleet_main(nats_url: str, dsn: str, ready: Any, batch: int, concurrency: int) -> None:
    async def main() -> None:
        from outpost_contracts import fleet
        from outpost_fleet import bootstrap
        from outpost_fleet.entrypoints import rpc
        from outpost_fleet.settings import FleetSettings
        from outpost_kit.db.engine import create_engine
        from outpost_kit.db.eventstore import EventCodec
        from outpost_kit.db.outbox import OutboxRelay
        from outpost_kit.db.uow import UnitOfWorkFactory
        from outpost_kit.messaging import connect
        from outpost_kit.responder import Responder

        settings = FleetSettings(delivery_batch=batch, delivery_concurrency=concurrency)
        engine = create_engine(dsn, "fleet", pool_size=8)
        uow = UnitOfWorkFactory(engine, EventCodec(fleet.EVENT_TYPES), bootstrap.PROJECTORS)
        nc = await connect(nats_url, "bench-fleet")
        deps = bootstrap.deps(uow, nc, settings)
        responder = Responder(nc, "fleet", rpc.handlers(deps))
        await responder.start()
        stop = asyncio.Event()
        jobs = [job(stop) for job in bootstrap.rollout_jobs(uow, nc, settings, deps)]
        jobs.append(OutboxRelay(dsn, "fleet", nc.jetstream()).run(stop))
        tasks = [asyncio.create_task(j) for j in jobs]
        ready.send(True)
        await asyncio.gather(*tasks)

    _run(main())


# -- the measurements --------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _get_device_loop(
    nc: Any, org: uuid.UUID, ids: list[uuid.UUID], stop: asyncio.Event, out: list[float]
) -> None:
    from outpost_contracts import devices
    from outpost_kit.messaging import call

    ctx = _ctx(org)
    n = 0
    while not stop.is_set():
        started = time.perf_counter()
        await call(nc, devices.GET_DEVICE, ctx, devices.GetDevice(id=ids[n % len(ids)]))
        out.append((time.perf_counter() - started) * 1000)
        n += 1


async def _measure_idle(nc: Any, org: uuid.UUID, ids: list[uuid.UUID], n: int) -> list[float]:
    from outpost_contracts import devices
    from outpost_kit.messaging import call

    ctx = _ctx(org)
    out: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await call(nc, devices.GET_DEVICE, ctx, devices.GetDevice(id=ids[i % len(ids)]))
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _publish_registrations(js: Any, org: uuid.UUID, count: int) -> list[uuid.UUID]:
    """``--fleet-only``: the registrations' events on DEVICES as devices' relay publishes
    them, without the devices service (no ``GetDevice`` then)."""
    from outpost_contracts import devices, subjects
    from outpost_contracts.envelope import EventEnvelope
    from outpost_kit import ids
    from outpost_kit.messaging import MSG_ID

    device_ids = [uuid.uuid4() for _ in range(count)]
    for start in range(0, count, 500):
        envelopes = [
            EventEnvelope(
                id=ids.new_id(),
                org_id=org,
                stream_id=d,
                stream_type="device",
                version=1,
                occurred_at=ids.now(),
                data=devices.DeviceRegistered(name=f"bench-{d.hex[:8]}"),
            )
            for d in device_ids[start : start + 500]
        ]
        await asyncio.gather(
            *(
                js.publish(
                    subjects.event(e.type, org), msgspec.json.encode(e), headers={MSG_ID: str(e.id)}
                )
                for e in envelopes
            )
        )
    return device_ids


async def _count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    return int(await pool.fetchval(sql, *args))


async def _until(pool: asyncpg.Pool, sql: str, want: int, *args: Any, limit: float = 600) -> float:
    started = time.perf_counter()
    while await _count(pool, sql, *args) < want:
        if time.perf_counter() - started > limit:
            raise TimeoutError(sql)
        await asyncio.sleep(0.02)
    return time.perf_counter()


def _baseline(count: int) -> float:
    """``effective_state`` of ``count`` devices in one loop (3 bindings: organization, one
    group, one device), no I/O: the compute floor."""
    from outpost_contracts.fleet import Target, TargetType
    from outpost_fleet.domain.desired_state import (
        BindingRef,
        DeviceFacts,
        ResolvedBinding,
        effective_state,
    )

    group = uuid.uuid4()
    bindings = [
        ResolvedBinding(
            binding=BindingRef(
                id=uuid.uuid4(), target=Target(type=TargetType.ORGANIZATION), priority=0
            ),
            artefact_id=uuid.uuid4(),
            artefact_version=1,
            document={"sampling": {"interval": 60, "unit": "s"}, "led": True},
        ),
        ResolvedBinding(
            binding=BindingRef(
                id=uuid.uuid4(), target=Target(type=TargetType.GROUP, id=group), priority=0
            ),
            artefact_id=uuid.uuid4(),
            artefact_version=1,
            document={"sampling": {"interval": 10}},
        ),
    ]
    devices = [DeviceFacts(id=uuid.uuid4(), group_ids=frozenset({group})) for _ in range(count)]
    started = time.perf_counter()
    for device in devices:
        effective_state(device, bindings)
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace, nats_url: str, admin_dsn: str) -> None:
    from outpost_contracts import devices, fleet, streams, subjects
    from outpost_contracts.envelope import EventEnvelope
    from outpost_contracts.fleet import Target, TargetType
    from outpost_devices import bootstrap as devices_bootstrap
    from outpost_fleet import bootstrap as fleet_bootstrap
    from outpost_kit import ids
    from outpost_kit.cli import migrations_dir
    from outpost_kit.db.migrate import upgrade
    from outpost_kit.db.provision import provision_service
    from outpost_kit.messaging import MSG_ID, apply_streams, call, connect

    devices_dsn = await provision_service(admin_dsn, "devices", secrets.token_urlsafe(16))
    await upgrade(admin_dsn, "devices", migrations_dir(devices_bootstrap.__file__))
    fleet_dsn = await provision_service(admin_dsn, "fleet", secrets.token_urlsafe(16))
    await upgrade(admin_dsn, "fleet", migrations_dir(fleet_bootstrap.__file__))
    nc = await connect(nats_url, "bench")
    js = nc.jetstream()
    await apply_streams(
        js,
        (streams.stream("DEVICES"), *streams.streams_of("fleet")),
        streams.consumers_of("fleet"),
    )
    mp = multiprocessing.get_context("spawn")
    procs = []
    ready_devices, child_devices = mp.Pipe()
    ready_fleet, child_fleet = mp.Pipe()
    procs.append(mp.Process(target=devices_main, args=(nats_url, devices_dsn, child_devices)))
    procs.append(
        mp.Process(
            target=fleet_main,
            args=(nats_url, fleet_dsn, child_fleet, args.batch, args.concurrency),
        )
    )
    for p in procs:
        p.start()
    standin = ready_devices.recv()
    ready_fleet.recv()
    pool = await asyncpg.create_pool(admin_dsn, min_size=1, max_size=2)
    try:
        org = uuid.uuid4()
        ctx = _ctx(org)
        sem = asyncio.Semaphore(16)

        async def create(n: int) -> uuid.UUID:
            async with sem:
                view = await call(
                    nc,
                    devices.CREATE_DEVICE,
                    ctx,
                    devices.CreateDevice(name=f"bench-{n:05d}"),
                    timeout=60,
                )
                return view.id  # type: ignore[no-any-return]

        started = time.perf_counter()
        if args.fleet_only:
            device_ids = await _publish_registrations(js, org, args.devices)
        else:
            device_ids = list(await asyncio.gather(*(create(n) for n in range(args.devices))))
        registered = time.perf_counter() - started
        known_at = await _until(
            pool,
            "SELECT count(*) FROM fleet.fleet_devices WHERE org_id = $1",
            args.devices,
            org,
        )
        view_loaded = known_at - started
        idle = [] if args.fleet_only else await _measure_idle(nc, org, device_ids, args.gets)

        # The binding: fleet's read model rows and its event on FLEET, as fleet writes them.
        artefact_id, binding_id = uuid.uuid4(), uuid.uuid4()
        document = {"sampling": {"interval": 60, "unit": "s"}, "led": True}
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO fleet.config_artefacts (org_id, id, name, latest_version,"
                " version_count, created_at, updated_at, version)"
                " VALUES ($1, $2, 'bench', 1, 1, now(), now(), 1)",
                org,
                artefact_id,
            )
            await conn.execute(
                "INSERT INTO fleet.config_artefact_versions (org_id, artefact_id, version,"
                " document, size_bytes, created_at) VALUES ($1, $2, 1, $3::jsonb, $4, now())",
                org,
                artefact_id,
                msgspec.json.encode(document).decode(),
                len(msgspec.json.encode(document)),
            )
            await conn.execute(
                "INSERT INTO fleet.desired_state_bindings (org_id, id, artefact_id,"
                " artefact_version, target_type, target_id, priority, created_at, updated_at,"
                " version) VALUES ($1, $2, $3, NULL, 'ORGANIZATION', NULL, 0, now(), now(), 1)",
                org,
                binding_id,
                artefact_id,
            )
        event = EventEnvelope(
            id=ids.new_id(),
            org_id=org,
            stream_id=binding_id,
            stream_type="desired_state_binding",
            version=1,
            occurred_at=ids.now(),
            data=fleet.DesiredStateBindingCreated(
                artefact_id=artefact_id, target=Target(type=TargetType.ORGANIZATION), priority=0
            ),
        )
        during: list[float] = []
        stop = asyncio.Event()
        gets = asyncio.create_task(
            asyncio.sleep(0)
            if args.fleet_only
            else _get_device_loop(nc, org, device_ids, stop, during)
        )
        t0 = time.perf_counter()
        await js.publish(
            subjects.event(event.type, org),
            msgspec.json.encode(event),
            headers={MSG_ID: str(event.id)},
        )
        computed_at = await _until(
            pool, "SELECT count(*) FROM fleet.effective_states WHERE org_id = $1", args.devices, org
        )
        delivered_at = await _until(
            pool,
            "SELECT count(*) FROM fleet.effective_states WHERE org_id = $1"
            " AND delivered_at IS NOT NULL",
            args.devices,
            org,
        )
        stop.set()
        await gets
        calls = await _count(
            pool,
            "SELECT count(DISTINCT delivered_at) FROM fleet.effective_states WHERE org_id = $1",
            org,
        )
        floor = _baseline(args.devices)
        print(
            f"bench/fleet: {args.devices} devices in one organization, one binding"
            f" (organization); delivery: {args.batch} per call, {args.concurrency} at once"
        )
        if standin:
            print("  devices: SetFleetDesiredStates by a stand-in (this build's devices lacks it)")
        how = "published on DEVICES" if args.fleet_only else "through CreateDevice"
        print(f"  registered ({how}) {registered:8.2f} s")
        print(
            f"  the fleet's view loaded (DEVICES)     {view_loaded:8.2f} s after the first create"
        )
        print(f"  every effective state computed       {computed_at - t0:8.2f} s after the binding")
        print(
            f"  every desired state set by devices   {delivered_at - t0:8.2f} s ({calls} batches)"
        )
        print(f"  baseline: effective_state x{args.devices}, no I/O {floor:8.2f} s")
        if args.fleet_only:
            return
        for name, values in (("idle", idle), ("during the rollout", during)):
            print(
                f"  GetDevice {name:<20} n={len(values):5d} p50 {statistics.median(values):6.2f} ms"
                f"  p99 {_pct(values, 0.99):6.2f} ms"
            )
        ratio = _pct(during, 0.99) / _pct(idle, 0.99)
        print(f"  p99 during / idle: {ratio:.2f}x (target: within 2x)")
    finally:
        await pool.close()
        for p in procs:
            p.terminate()
            p.join(10)
        await nc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--gets", type=int, default=1000, help="idle GetDevice round trips")
    ap.add_argument("--batch", type=int, default=100, help="OUTPOST_FLEET_DELIVERY_BATCH")
    ap.add_argument("--concurrency", type=int, default=1, help="OUTPOST_FLEET_DELIVERY_CONCURRENCY")
    ap.add_argument(
        "--fleet-only",
        action="store_true",
        help="registrations published on DEVICES directly (no CreateDevice, no GetDevice)",
    )
    args = ap.parse_args()
    from outpost_devkit.infra import NatsServer, PostgresCluster

    base = Path(tempfile.mkdtemp(prefix="outpost-bench-fleet-"))
    nats_server = pg = None
    try:
        nats_server = NatsServer.start(base / "nats")
        pg = PostgresCluster.start(base / "pg")
        _run(main_async(args, nats_server.url, pg.admin_dsn))
    finally:
        if nats_server is not None:
            nats_server.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
