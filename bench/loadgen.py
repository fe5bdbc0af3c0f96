"""A small HTTP/1.1 load generator for the benchmarks: closed-loop (N connections, each
sending its next request when the last answer arrives) and open-loop (requests scheduled at
a fixed offered rate whatever the server does, latency measured from the scheduled time, so
a slow server is not hidden by coordinated omission).

Raw asyncio streams with keep-alive and pre-built request bytes: a Python HTTP client would
cost more CPU than the servers it measures on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    label: str
    mode: str
    offered: float | None
    sent: int = 0
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def row(self) -> str:
        offered = f"{self.offered:,.0f}" if self.offered else "max"
        return (
            f"{self.label:<22}{self.mode:<8}{offered:>8}{self.rate:>10,.0f}"
            f"{self.percentile(50):>9.2f}{self.percentile(99):>9.2f}{self.errors:>8}"
        )


HEADER = (
    f"{'target':<22}{'mode':<8}{'offered':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
)


def http_json(
    method: str, url: str, key: str, body: dict[str, Any] | None = None, timeout: float = 10
) -> Any:
    """One authenticated JSON call (setup, not load): the answer's body."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def build_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    label: str, host: str, port: int, request: bytes, connections: int, seconds: float
) -> Result:
    result = Result(label, "closed", None)
    conns = [await Connection.open(host, port) for _ in range(connections)]
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            result.sent += 1
            status = await conn.get(request)
            done = time.perf_counter()
            result.latencies.append(done - started)
            if status != 200:
                result.errors += 1
            elif done <= deadline:  # throughput counts answers within the window only
                result.ok += 1

    await asyncio.gather(*(worker(c) for c in conns))
    result.elapsed = seconds
    for c in conns:
        c.close()
    return result


async def open_loop(
    label: str,
    host: str,
    port: int,
    request: bytes,
    rate: float,
    seconds: float,
    max_connections: int = 256,
) -> Result:
    result = Result(label, "open", rate)
    idle: list[Connection] = [await Connection.open(host, port) for _ in range(16)]
    opened = len(idle)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def fire(scheduled: float) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        elif opened < max_connections:
            opened += 1
            conn = await Connection.open(host, port)
        else:
            result.errors += 1  # the server fell so far behind that we ran out of sockets
            return
        try:
            status = await conn.get(request)
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            return
        result.latencies.append(loop.time() - scheduled)
        if status == 200:
            result.ok += 1
        else:
            result.errors += 1
        idle.append(conn)

    total = int(rate * seconds)
    start = loop.time()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result.sent += 1
        task = asyncio.create_task(fire(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    result.elapsed = max(loop.time() - start, seconds)
    for c in idle:
        c.close()
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
