"""bench/fleet: one desired-state binding on an organization of 10,000 registered devices
(issue 21, ADR 0093), the whole platform running: how long until every device's effective
state is computed, until devices have taken every desired state, until every connected
simulated device has received its own (and reported it back, counted ``inSync``), and
whether the platform stays responsive meanwhile: the p99 of an authenticated
``GET /api/v1/devices/{id}`` through the gateway (HTTP, an API key) during the rollout beside
the same measurement idle, in the same run (and the ``GetDevice`` RPC over the broker beside
it, the hop without the gateway).

What runs: the dev stack (``outpost_devkit.dev.stack.DevStack``, what ``make dev`` and the
e2e tests run: nats-server with TLS and the auth callout, Postgres, every service and the
gateway as child processes, default settings but the rate limits, raised so the load is
not refused; ``--batch``/``--concurrency``/``--pause`` set the fleet's delivery settings).

Setup (timed, not the measured figure): ``--connected`` devices are provisioned through the
real flow (registration token, CSR, certificate: ``outpost_client.simulate.provision``, as
``outpost device simulate`` does), connected over NATS with their certificates and follow
their desired state (``StateFollower``: apply each ``outpost.state``, report it back); the
rest of ``--devices`` are registered through devices' ``CreateDevice`` over the broker,
``--register-concurrency`` at a time; the fleet learns them all from the DEVICES stream.

Measured: sequential round trips, alternately ``GET /api/v1/devices/{id}`` (one keep-alive
connection) and ``GetDevice``, ``--gets`` of each idle; then an artefact is created and the
binding posted (``POST /api/v1/desired-state-bindings``, the clock starts before it) and the
same loop runs during the rollout: until every state is computed and set and every
connected device has received its own (each polled every 50 ms); then the binding's
``inSync`` count (``GET .../status``, every 0.25 s) until it reaches the sample; then
``--gets`` of each idle again (a second baseline: whether the machine's load moved).
Baseline, same run: ``effective_state`` of every device in one Python loop, no I/O (the
compute floor).
Run:
``uv run python bench/fleet.py [--devices 10000] [--connected 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
from loadgen import Connection, build_request, http_json


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


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Gets:
    """Sequential round trips, alternately ``GET /api/v1/devices/{id}`` through the gateway
    and ``GetDevice`` over the broker, each device in turn; milliseconds per kind."""

    def __init__(self, nc: Any, org: uuid.UUID, host: str, port: int, key: str) -> None:
        self.nc, self.org, self.host, self.port = nc, org, host, port
        self.headers = {"Authorization": f"Bearer {key}"}
        self.requests: dict[uuid.UUID, bytes] = {}
        self.conn: Connection | None = None
        self.errors = 0

    async def run(
        self, ids: list[uuid.UUID], stop: asyncio.Event | None = None, count: int = 0
    ) -> tuple[list[float], list[float]]:
        from outpost_contracts import devices
        from outpost_kit.messaging import call

        if self.conn is None:
            self.conn = await Connection.open(self.host, self.port)
        ctx = _ctx(self.org)
        http_ms: list[float] = []
        rpc_ms: list[float] = []
        n = 0
        while (stop is None and n < count) or (stop is not None and not stop.is_set()):
            device = ids[n % len(ids)]
            request = self.requests.get(device)
            if request is None:
                path = f"/api/v1/devices/{device}"
                request = self.requests[device] = build_request(
                    self.host, self.port, path, self.headers
                )
            started = time.perf_counter()
            status = await self.conn.get(request)
            http_ms.append((time.perf_counter() - started) * 1000)
            self.errors += status != 200
            started = time.perf_counter()
            await call(self.nc, devices.GET_DEVICE, ctx, devices.GetDevice(id=device))
            rpc_ms.append((time.perf_counter() - started) * 1000)
            n += 1
        return http_ms, rpc_ms


def _baseline(count: int) -> float:
    """``effective_state`` of ``count`` devices in one loop (2 bindings: organization, one
    group), no I/O: the compute floor."""
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


def _authorized(gateway: str, key: str, seconds: float = 30) -> None:
    """Once the gateway's credential cache has the demo key (401 until then)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            http_json("GET", f"{gateway}/api/v1/devices?limit=1", key)
            return
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def _count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    return int(await pool.fetchval(sql, *args))


async def _register(
    nc: Any, org: uuid.UUID, count: int, concurrency: int
) -> tuple[list[uuid.UUID], float]:
    """``count`` devices through devices' ``CreateDevice`` over the broker."""
    from outpost_contracts import devices
    from outpost_kit.messaging import call

    ctx = _ctx(org)
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(concurrency)

    async def create(n: int) -> uuid.UUID:
        async with gate:
            request = devices.CreateDevice(name=f"bench-{run}-{n:05d}")
            view = await call(nc, devices.CREATE_DEVICE, ctx, request, timeout=60)
            return view.id  # type: ignore[no-any-return]

    started = time.perf_counter()
    ids = list(await asyncio.gather(*(create(n) for n in range(count))))
    return ids, time.perf_counter() - started


async def _connect(devices: list[Any], ca: str) -> list[Any]:
    """The sample, connected over NATS with their certificates, following desired state."""
    from urllib.parse import urlsplit

    from outpost_client import simulate as sim

    followers = []
    clients = []
    for d in devices:
        parts = urlsplit(d.nats_url)
        clients.append(sim.device_client(d, "nats", parts.hostname or "", parts.port or 4222, ca))
    gate = asyncio.Semaphore(16)

    async def open_one(client: Any) -> Any:
        async with gate:
            return await sim.open_connection(client, client.endpoint.context())

    conns = list(await asyncio.gather(*(open_one(c) for c in clients)))
    for device, conn in zip(devices, conns, strict=True):
        follower = sim.StateFollower(conn, device)
        await follower.start()
        followers.append(follower)
    return followers


async def main_async(args: argparse.Namespace, stack: Any, creds: dict[str, Any]) -> None:
    from outpost_client import simulate as sim
    from outpost_kit.db.engine import plain_dsn
    from outpost_kit.messaging import connect

    gateway = creds["gatewayUrl"]
    key = creds["organization"]["apiKey"]
    org = uuid.UUID(creds["organization"]["id"])
    host, port = gateway.split("://", 1)[1].rsplit(":", 1)
    nc = await connect(stack.nats_service_url(), "bench-fleet", tls=stack.nats_tls())
    pool = await asyncpg.create_pool(plain_dsn(stack.admin_dsn), min_size=1, max_size=2)
    followers: list[Any] = []
    gets: Gets | None = None
    try:
        await asyncio.to_thread(_authorized, gateway, key)
        started = time.perf_counter()
        sample = await sim.provision(
            gateway, key, args.connected, stack.base_dir / "sim", prefix="bench-sim"
        )
        provisioned = time.perf_counter() - started
        rest, registered = await _register(
            nc, org, args.devices - len(sample), args.register_concurrency
        )
        ids = [uuid.UUID(d.device_id) for d in sample] + rest
        while await _count(
            pool, "SELECT count(*) FROM fleet.fleet_devices WHERE org_id = $1", org
        ) < len(ids):
            if time.perf_counter() - started > 900:
                raise TimeoutError("the fleet's view of the devices")
            await asyncio.sleep(0.1)
        view_loaded = time.perf_counter() - started
        followers = await _connect(sample, creds["brokerCaFile"])

        gets = Gets(nc, org, host, int(port), key)
        await gets.run(ids, count=50)  # warm: connections, caches
        idle_http, idle_rpc = await gets.run(ids, count=args.gets)

        artefact = http_json(
            "POST",
            f"{gateway}/api/v1/config-artefacts",
            key,
            {"name": "bench", "document": {"sampling": {"interval": 60, "unit": "s"}}},
        )
        before = await _count(
            pool, "SELECT count(*) FROM fleet.effective_states WHERE org_id = $1", org
        )
        load_before = os.getloadavg()
        stop = asyncio.Event()
        during = asyncio.create_task(gets.run(ids, stop=stop))
        t0 = time.perf_counter()
        binding = await asyncio.to_thread(
            http_json,
            "POST",
            f"{gateway}/api/v1/desired-state-bindings",
            key,
            {"artefactId": artefact["id"], "target": {"type": "ORGANIZATION"}},
        )
        posted = time.perf_counter() - t0
        at: dict[str, float] = {}
        status_url = f"{gateway}/api/v1/desired-state-bindings/{binding['id']}/status"
        in_sync = 0
        next_status = 0.0
        while len(at) < 4:
            now = time.perf_counter() - t0
            if now > args.limit:
                break
            if "computed" not in at and await _count(
                pool, "SELECT count(*) FROM fleet.effective_states WHERE org_id = $1", org
            ) >= len(ids):
                at["computed"] = now
            if "set" not in at and await _count(
                pool,
                "SELECT count(*) FROM fleet.effective_states WHERE org_id = $1"
                " AND delivered_at IS NOT NULL",
                org,
            ) >= len(ids):
                at["set"] = now
            if "received" not in at and all(f.applied for f in followers):
                at["received"] = now
            if {"computed", "set", "received"} <= at.keys() and not stop.is_set():
                stop.set()  # the rollout is over: the measurement during it too
                during_http, during_rpc = await during
            if stop.is_set() and "reported" not in at and now >= next_status:
                status = await asyncio.to_thread(http_json, "GET", status_url, key)
                in_sync = int(status["inSync"])
                if in_sync >= len(followers):
                    at["reported"] = time.perf_counter() - t0
                next_status = now + 0.25
            await asyncio.sleep(0.05)
        if not stop.is_set():
            stop.set()
            during_http, during_rpc = await during
        load_after = os.getloadavg()
        after_http, after_rpc = await gets.run(ids, count=args.gets)  # idle again, after
        calls = await _count(
            pool,
            "SELECT count(DISTINCT delivered_at) FROM fleet.effective_states WHERE org_id = $1",
            org,
        )
        floor = _baseline(len(ids))

        def when(name: str) -> str:
            return f"{at[name]:8.2f} s" if name in at else f"   not within {args.limit:.0f} s"

        print(
            f"\nbench/fleet: {len(ids)} devices in one organization, {len(followers)} of them"
            f" connected (NATS, following desired state); one binding (organization);"
            f" delivery: {args.batch} per call, {args.concurrency} at once,"
            f" {args.pause:g} s between calls;"
            f" {os.cpu_count()} cores shared by every process"
        )
        print("setup:")
        print(f"  provisioned {len(sample)} (token + CSR, gateway)   {provisioned:8.2f} s")
        print(
            f"  registered {len(rest)} (CreateDevice, {args.register_concurrency} at once)"
            f" {registered:8.2f} s ({len(rest) / registered:.0f}/s)"
        )
        print(f"  the fleet's view loaded (DEVICES)      {view_loaded:8.2f} s after the first")
        print(f"  effective states before the binding    {before:8d}")
        print(f"rollout (from the binding's POST, answered in {posted * 1000:.0f} ms):")
        print(f"  every effective state computed         {when('computed')} (target < 10 s)")
        print(f"  every desired state set by devices     {when('set')} ({calls} calls)")
        print(f"  every connected device received it     {when('received')}")
        print(
            f"  ... and reported it (inSync {in_sync:>4d})     {when('reported')}"
            " (counted once the rollout is over)"
        )
        print(f"baseline: effective_state x{len(ids)}, no I/O   {floor:8.2f} s")
        print(
            "load average (1, 5, 15 min) before the binding"
            f" {' '.join(f'{x:.2f}' for x in load_before)}, after"
            f" {' '.join(f'{x:.2f}' for x in load_after)}"
        )
        rows = (
            ("GET /devices/{id}", "idle", idle_http),
            ("GET /devices/{id}", "during the rollout", during_http),
            ("GET /devices/{id}", "idle again, after", after_http),
            ("GetDevice (RPC)", "idle", idle_rpc),
            ("GetDevice (RPC)", "during the rollout", during_rpc),
            ("GetDevice (RPC)", "idle again, after", after_rpc),
        )
        for what, when_, values in rows:
            print(
                f"  {what:<18} {when_:<19} n={len(values):5d}"
                f" p50 {statistics.median(values):6.2f} ms  p99 {_pct(values, 0.99):6.2f} ms"
            )
        if gets.errors:
            print(f"  GET /devices/{{id}} answers other than 200: {gets.errors}")
        for what, idle, busy, again in (
            ("GET /devices/{id}", idle_http, during_http, after_http),
            ("GetDevice (RPC)", idle_rpc, during_rpc, after_rpc),
        ):
            ratio = _pct(busy, 0.99) / _pct(idle, 0.99)
            second = _pct(busy, 0.99) / _pct(again, 0.99)
            print(
                f"  {what} p99 during / idle: {ratio:.2f}x (target: within 2x;"
                f" {second:.2f}x the idle after)"
            )
    finally:
        for follower in followers:
            await sim.close_connection(follower.conn)
        if gets is not None and gets.conn is not None:
            gets.conn.close()
        await pool.close()
        await nc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--connected", type=int, default=100, help="simulated devices connected")
    ap.add_argument("--gets", type=int, default=1000, help="idle round trips of each kind")
    ap.add_argument("--register-concurrency", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100, help="OUTPOST_FLEET_DELIVERY_BATCH")
    ap.add_argument("--concurrency", type=int, default=1, help="OUTPOST_FLEET_DELIVERY_CONCURRENCY")
    ap.add_argument(
        "--pause", type=float, default=0.05, help="OUTPOST_FLEET_DELIVERY_PAUSE_SECONDS"
    )
    ap.add_argument("--limit", type=float, default=300, help="seconds to wait for the rollout")
    args = ap.parse_args()
    from outpost_devkit.dev.stack import DevStack

    # The limits an operator would raise for this load (the gateway still counts each
    # request); the fleet's delivery as asked.
    os.environ.update(
        {
            "OUTPOST_GATEWAY_RATELIMIT_SINGLE_PER_MINUTE": "1000000000",
            "OUTPOST_GATEWAY_RATELIMIT_LIST_PER_MINUTE": "1000000000",
            "OUTPOST_GATEWAY_RATELIMIT_WRITE_PER_MINUTE": "1000000000",
            "OUTPOST_GATEWAY_PUBLIC_PER_ADDRESS_PER_MINUTE": "1000000",
            "OUTPOST_FLEET_DELIVERY_BATCH": str(args.batch),
            "OUTPOST_FLEET_DELIVERY_CONCURRENCY": str(args.concurrency),
            "OUTPOST_FLEET_DELIVERY_PAUSE_SECONDS": str(args.pause),
        }
    )
    # A TLS connection the broker closes as well says so once each: not a finding.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    base = Path(tempfile.mkdtemp(prefix="outpost-bench-fleet-"))
    stack = DevStack(
        base,
        gateway_port=None,
        nats_port=None,
        pg_port=None,
        mqtt_port=None,
        log_sink=open(os.devnull, "w"),  # noqa: SIM115 - open as long as the stack runs
    )
    print(
        "load average (1, 5, 15 min) at the start:"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}; setting up (a minute or more) ..."
    )
    sys.stdout.flush()
    try:
        creds = stack.start()
        _run(main_async(args, stack, creds))
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
