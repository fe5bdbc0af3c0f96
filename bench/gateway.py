"""bench/gateway: an authenticated ``GET /api/v1/devices/{id}`` through the whole platform
(gateway → NATS → devices → Postgres), and beside it, in the same run, a bare Litestar
endpoint on the same HTTP server (granian, embedded) that checks the same API key and reads
the same row with asyncpg — what a monolith would do.

Closed-loop maximum throughput, then open-loop fixed offered loads with p50/p99 measured
from each request's scheduled time. Target (PERFORMANCE.md): the platform >= 0.7x the bare
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
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException, NotFoundException
from loadgen import HEADER, Result, build_request, closed_loop, open_loop

from outpost_contracts.credentials import lookup_prefix, verify_key
from outpost_contracts.devices import DeviceStatus, DeviceView, Tag
from outpost_kit.db.reads import TenantReads

# The monolith reads the row the way the devices service does (the kit's tenant read path:
# same round trips, same RLS), so the comparison measures the hop and nothing else.
SELECT_DEVICE = (
    "SELECT id, name, status, device_type, site_id, group_id, tags::text AS tags,"
    " attributes::text AS attributes, created_at, updated_at, version"
    " FROM devices WHERE id = $1"
)

BARE: dict[str, Any] = {}


@get("/api/v1/devices/{device_id:uuid}")
async def bare_device(request: Request[Any, Any, Any], device_id: UUID) -> DeviceView:
    """The monolith baseline: same credential check, same row, same HTTP server."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    found = BARE["keys"].get(lookup_prefix(token) or "")
    if found is None or not verify_key(token, found[0]):
        raise NotAuthorizedException()
    reads: TenantReads = BARE["reads"]
    async with reads(found[1]) as conn:
        row = await conn.fetchrow(SELECT_DEVICE, device_id)
    if row is None:
        raise NotFoundException()
    return DeviceView(
        id=row["id"],
        name=row["name"],
        status=DeviceStatus(row["status"]),
        device_type=row["device_type"],
        site_id=row["site_id"],
        group_id=row["group_id"],
        tags=msgspec.json.decode(row["tags"], type=list[Tag]),
        attributes=msgspec.json.decode(row["attributes"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def serve_bare(port: int, dsn: str, key_hash: str, prefix: str, org: str) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    BARE["keys"] = {prefix: (key_hash, UUID(org))}

    async def startup() -> None:
        BARE["reads"] = await TenantReads.connect(dsn, "devices")

    app = Litestar([bare_device], on_startup=[startup])

    async def main() -> None:
        server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI)
        await server.serve()

    import uvloop

    uvloop.run(main())


def _http(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


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


def cpu_by_process() -> dict[str, float]:
    """CPU seconds used so far by each process of interest, from /proc (Linux), grouped:
    each service, the bare endpoint, Postgres, nats-server and this load generator."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if not args:
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
    targets: dict[str, tuple[int, bytes]], seconds: float, rates: list[float]
) -> tuple[list[Result], dict[str, list[str]]]:
    results: list[Result] = []
    cpu: dict[str, list[str]] = {}
    for label, (port, request) in targets.items():  # warm both up
        await closed_loop(label, "127.0.0.1", port, request, 8, 2)
    for label, (port, request) in targets.items():
        before = cpu_by_process()
        result = await closed_loop(label, "127.0.0.1", port, request, 32, seconds)
        cpu[label] = cpu_rows(before, cpu_by_process(), max(1, result.sent))
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
    args = parser.parse_args()
    if args.serve_bare:
        port, dsn, key_hash, prefix, org = args.serve_bare
        serve_bare(int(port), dsn, key_hash, prefix, org)
        return

    from outpost_contracts.credentials import hash_key, lookup_prefix
    from outpost_kit.dev.stack import DevStack
    from outpost_kit.infra import free_port

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
    bare: subprocess.Popen[bytes] | None = None
    try:
        creds = stack.start()
        gateway = creds["gatewayUrl"]
        key = creds["organization"]["apiKey"]
        device = _http("POST", f"{gateway}/api/v1/devices", key, {"name": f"bench-{os.getpid()}"})
        state = json.loads((base / "dev-state.json").read_text())
        secrets = json.loads((base / "secrets.json").read_text())
        password = secrets.get("devices") or secrets["passwords"]["devices"]
        dsn = f"postgresql://outpost_devices:{password}@127.0.0.1:{state['postgresPort']}/outpost"
        bare_port = free_port()
        bare = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-bare",
                str(bare_port),
                dsn,
                hash_key(key),
                lookup_prefix(key) or "",
                creds["organization"]["id"],
            ],
        )
        path = f"/api/v1/devices/{device['id']}"
        _wait_for(f"http://127.0.0.1:{bare_port}/")
        assert _http("GET", f"http://127.0.0.1:{bare_port}{path}", key)["id"] == device["id"]
        assert _http("GET", f"{gateway}{path}", key)["id"] == device["id"]
        gport = int(gateway.rsplit(":", 1)[1])
        headers = {"Authorization": f"Bearer {key}"}
        targets = {
            "bare (monolith)": (bare_port, build_request("127.0.0.1", bare_port, path, headers)),
            "platform (gateway)": (gport, build_request("127.0.0.1", gport, path, headers)),
        }
        rates = [float(r) for r in args.rates.split(",") if r]
        results, cpu = asyncio.run(measure(targets, args.seconds, rates))
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
        print(f"\nplatform / bare, closed-loop requests/s: {ratio:.2f}x (target >= 0.70x)")
        for r in results:
            if r.mode == "open" and r.label.startswith("platform") and r.offered == 1000:
                print(
                    f"platform p99 at 1,000 req/s offered: {r.percentile(99):.2f} ms"
                    " (target <= 10 ms)"
                )
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
