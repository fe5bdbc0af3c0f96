"""bench/gateway: an authenticated ``GET /api/v1/devices/{id}`` through the whole platform
(gateway → NATS → devices → Postgres), and beside it, in the same run, a bare Litestar
endpoint on the same HTTP server (granian, embedded) that checks the same API key and reads
the same row with asyncpg — what a monolith would do.

A third target measures what the hop alone costs: a "minimal hop" whose front is the same
Litestar endpoint doing the same credential check and one raw nats-py request, answered by a
raw nats-py responder that reads the row the same way — the platform's path without its
conventions (rate limits, policy table, tracing, typed envelopes, request limits).

Closed-loop maximum throughput, then open-loop fixed offered loads with p50/p99 measured
from each request's scheduled time. Target (docs/performance.md): the platform >= 0.7x the bare
endpoint's requests/s, p99 <= 10 ms at 1,000 requests/s.

Run: ``uv run python bench/gateway.py [--seconds 8] [--rates 250,500,1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.exceptions import NotAuthorizedException, NotFoundException
from loadgen import HEADER, Result, build_request, closed_loop, http_json, open_loop

from outpost_contracts.credentials import lookup_prefix, verify_key
from outpost_contracts.devices import DeviceView
from outpost_devices.adapters.queries import SELECT_DEVICE_BY, device_view
from outpost_kit.db.reads import TenantReads

# The monolith reads the row exactly as the devices service does: its query, its view, the
# kit's tenant read path (same round trips, same RLS), so the comparison measures the hop.
SELECT_DEVICE = SELECT_DEVICE_BY["id"]

BARE: dict[str, Any] = {}
HOP_SUBJECT = "bench.hop.device"
TASKS: set[asyncio.Task[None]] = set()


async def read_device(reads: TenantReads, org_id: UUID, device_id: UUID) -> DeviceView | None:
    async with reads(org_id) as conn:
        row = await conn.fetchrow(SELECT_DEVICE, device_id)
    return None if row is None else device_view(row)


def check_credential(request: Request[Any, Any, Any]) -> UUID:
    """The same API-key check as the gateway's (prefix lookup, hash compare): the org id."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    found = BARE["keys"].get(lookup_prefix(token) or "")
    if found is None or not verify_key(token, found[0]):
        raise NotAuthorizedException()
    org_id: UUID = found[1]
    return org_id


@get("/api/v1/devices/{device_id:uuid}")
async def bare_device(request: Request[Any, Any, Any], device_id: UUID) -> DeviceView:
    """The monolith baseline: same credential check, same row, same HTTP server."""
    view = await read_device(BARE["reads"], check_credential(request), device_id)
    if view is None:
        raise NotFoundException()
    return view


@get("/api/v1/devices/{device_id:uuid}", name="hop_device")
async def hop_device(request: Request[Any, Any, Any], device_id: UUID) -> Response[bytes]:
    """The minimal hop's front: the same check, then one raw nats-py request to a responder
    that reads the row (no rate limits, policy table, tracing, typed envelopes)."""
    org_id = check_credential(request)
    msg = await BARE["nc"].request(HOP_SUBJECT, org_id.bytes + device_id.bytes, timeout=5)
    if not msg.data:
        raise NotFoundException()
    return Response(msg.data, media_type="application/json")


def _serve(port: int, handler: Any, startup: Any) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    app = Litestar([handler], on_startup=[startup])

    async def main() -> None:
        server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI)
        await server.serve()

    import uvloop

    uvloop.run(main())


def serve_bare(port: int, dsn: str, key_hash: str, prefix: str, org: str) -> None:
    BARE["keys"] = {prefix: (key_hash, UUID(org))}

    async def startup() -> None:
        BARE["reads"] = await TenantReads.connect(dsn, "devices")

    _serve(port, bare_device, startup)


def _broker_tls() -> Any:
    """The service TLS context for the broker, from the variables ``DevStack`` hands to a
    service process (``nats_tls_env``)."""
    from outpost_kit.messaging import client_tls

    env = os.environ
    return client_tls(
        env.get("OUTPOST_NATS_TLS_CA", ""),
        env.get("OUTPOST_NATS_TLS_CERT", ""),
        env.get("OUTPOST_NATS_TLS_KEY", ""),
    )


def serve_hop_front(port: int, nats_url: str, key_hash: str, prefix: str, org: str) -> None:
    import nats

    BARE["keys"] = {prefix: (key_hash, UUID(org))}

    async def startup() -> None:
        BARE["nc"] = await nats.connect(nats_url, tls=_broker_tls())

    _serve(port, hop_device, startup)


def serve_hop_responder(dsn: str, nats_url: str) -> None:
    import nats
    import uvloop

    async def main() -> None:
        reads = await TenantReads.connect(dsn, "devices")
        nc = await nats.connect(nats_url, tls=_broker_tls())

        async def answer(msg: Any) -> None:
            view = await read_device(reads, UUID(bytes=msg.data[:16]), UUID(bytes=msg.data[16:]))
            await msg.respond(msgspec.json.encode(view) if view is not None else b"")

        async def callback(msg: Any) -> None:  # each request in its own task, as the kit's
            task = asyncio.get_running_loop().create_task(answer(msg))
            TASKS.add(task)
            task.add_done_callback(TASKS.discard)

        await nc.subscribe(HOP_SUBJECT, cb=callback)
        await asyncio.Event().wait()

    uvloop.run(main())


def _create_device(gateway: str, key: str, seconds: float = 30) -> Any:
    """The bench's device, once the gateway's credential cache has the demo key."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            body = {"name": f"bench-{os.getpid()}"}
            return http_json("POST", f"{gateway}/api/v1/devices", key, body)
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:  # not listening yet
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _ours(pid: str, args: list[str], ppid: str, base: Path) -> bool:
    """A process of this run: this one, one it started, or one of its stack (started in, or
    configured under, the stack's directory; Postgres backends by their postmaster)."""
    if int(pid) == os.getpid() or int(ppid) == os.getpid():
        return True
    if any(str(base) in a for a in args):
        return True
    try:
        if Path(f"/proc/{pid}/cwd").resolve() == base.resolve():
            return True
        parent = Path(f"/proc/{ppid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(base).encode() in parent


def cpu_by_process(base: Path) -> dict[str, float]:
    """CPU seconds used so far by each process of this run, from /proc (Linux), grouped:
    each service, the bare endpoint, the minimal hop, Postgres, nats-server and this load
    generator. Processes of other runs on the machine are left out."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if not args or not _ours(pid, args, fields[1], base):
            continue
        name = Path(args[0]).name
        if name.startswith("postgres"):
            group = "postgres"
        elif name == "nats-server":
            group = "nats-server"
        elif int(pid) == os.getpid():
            group = "load generator"
        elif "--serve-bare" in args:
            group = "bare endpoint"
        elif "--serve-hop-front" in args:
            group = "hop front"
        elif "--serve-hop-responder" in args:
            group = "hop responder"
        elif len(args) > 1 and Path(args[1]).name.startswith("outpost-"):
            group = Path(args[1]).name
        else:
            continue
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_rows(before: dict[str, float], after: dict[str, float], requests: int) -> list[str]:
    used = {k: after[k] - before.get(k, 0.0) for k in after}
    rows = [
        f"  {name:<22}{seconds / requests * 1e6:>8,.0f} us/request"
        for name, seconds in sorted(used.items(), key=lambda kv: -kv[1])
        if seconds / requests * 1e6 >= 5
    ]
    total = sum(used.values()) / requests * 1e6
    return [*rows, f"  {'total':<22}{total:>8,.0f} us/request"]


async def measure(
    targets: dict[str, tuple[int, bytes]], seconds: float, rates: list[float], base: Path
) -> tuple[list[Result], dict[str, list[str]]]:
    results: list[Result] = []
    cpu: dict[str, list[str]] = {}
    for label, (port, request) in targets.items():  # warm both up
        await closed_loop(label, "127.0.0.1", port, request, 8, 2)
    for label, (port, request) in targets.items():
        before = cpu_by_process(base)
        result = await closed_loop(label, "127.0.0.1", port, request, 32, seconds)
        cpu[label] = cpu_rows(before, cpu_by_process(base), max(1, result.sent))
        results.append(result)
    for rate in rates:
        for label, (port, request) in targets.items():
            results.append(await open_loop(label, "127.0.0.1", port, request, rate, seconds))
    return results, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rates", default="250,500,1000")
    parser.add_argument("--serve-bare", nargs=5, metavar=("PORT", "DSN", "HASH", "PREFIX", "ORG"))
    parser.add_argument(
        "--serve-hop-front", nargs=5, metavar=("PORT", "NATS", "HASH", "PREFIX", "ORG")
    )
    parser.add_argument("--serve-hop-responder", nargs=2, metavar=("DSN", "NATS"))
    args = parser.parse_args()
    if args.serve_hop_front:
        port, nats_url, key_hash, prefix, org = args.serve_hop_front
        serve_hop_front(int(port), nats_url, key_hash, prefix, org)
        return
    if args.serve_hop_responder:
        serve_hop_responder(*args.serve_hop_responder)
        return
    if args.serve_bare:
        port, dsn, key_hash, prefix, org = args.serve_bare
        serve_bare(int(port), dsn, key_hash, prefix, org)
        return

    from outpost_contracts.credentials import hash_key, lookup_prefix
    from outpost_devkit.dev.stack import DevStack
    from outpost_devkit.infra import free_port

    # The platform still counts every request against its rate limit (one upsert in the
    # gateway's schema); the limit itself is raised so the load is not refused.
    os.environ["OUTPOST_GATEWAY_RATELIMIT_SINGLE_PER_MINUTE"] = "1000000000"
    base = Path(tempfile.mkdtemp(prefix="outpost-bench-"))
    stack = DevStack(
        base,
        gateway_port=None,
        nats_port=None,
        pg_port=None,
        mqtt_port=None,
        log_sink=open(os.devnull, "w"),  # noqa: SIM115 - open as long as the stack runs
    )
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        creds = stack.start()
        gateway = creds["gatewayUrl"]
        key = creds["organization"]["apiKey"]
        device = _create_device(gateway, key)
        state = json.loads((base / "dev-state.json").read_text())
        secrets = json.loads((base / "secrets.json").read_text())
        password = secrets.get("devices") or secrets["passwords"]["devices"]
        dsn = f"postgresql://outpost_devices:{password}@127.0.0.1:{state['postgresPort']}/outpost"
        credential = [hash_key(key), lookup_prefix(key) or "", creds["organization"]["id"]]
        bare_port, hop_port = free_port(), free_port()
        for argv in (
            ["--serve-bare", str(bare_port), dsn, *credential],
            ["--serve-hop-responder", dsn, stack.nats_service_url()],
            ["--serve-hop-front", str(hop_port), stack.nats_service_url(), *credential],
        ):
            env = {**os.environ, **stack.nats_tls_env()}
            helpers.append(subprocess.Popen([sys.executable, __file__, *argv], env=env))
        path = f"/api/v1/devices/{device['id']}"
        gport = int(gateway.rsplit(":", 1)[1])
        for port in (bare_port, hop_port, gport):
            _wait_for(f"http://127.0.0.1:{port}/")
            assert http_json("GET", f"http://127.0.0.1:{port}{path}", key)["id"] == device["id"]
        headers = {"Authorization": f"Bearer {key}"}
        targets = {
            label: (port, build_request("127.0.0.1", port, path, headers))
            for label, port in (
                ("bare (monolith)", bare_port),
                ("minimal hop", hop_port),
                ("platform (gateway)", gport),
            )
        }
        rates = [float(r) for r in args.rates.split(",") if r]
        results, cpu = asyncio.run(measure(targets, args.seconds, rates, base))
        print(
            f"\nauthenticated GET /api/v1/devices/{{id}}, {args.seconds:.0f} s per run,"
            f" {os.cpu_count()} cores shared by every process\n"
        )
        print(HEADER)
        for r in results:
            print(r.row())
        print("\nCPU per request in the closed-loop runs, by process:")
        for label, rows in cpu.items():
            print(f" {label}")
            print("\n".join(rows))
        closed = {r.label: r.rate for r in results if r.mode == "closed"}
        ratio = closed["platform (gateway)"] / closed["bare (monolith)"]
        hop = closed["minimal hop"] / closed["bare (monolith)"]
        print(f"\nplatform / bare, closed-loop requests/s: {ratio:.2f}x (target >= 0.70x)")
        print(f"minimal hop / bare (what the hop alone costs): {hop:.2f}x")
        for r in results:
            if r.mode == "open" and r.label.startswith("platform") and r.offered == 1000:
                print(
                    f"platform p99 at 1,000 req/s offered: {r.percentile(99):.2f} ms"
                    " (target <= 10 ms)"
                )
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(10)
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
