"""bench/devices: connections established per second and telemetry messages per second from
many simulated devices, over NATS and over MQTT, through the whole platform (issue 4).

The platform (``DevStack``: nats-server with TLS, client certificates and the devices
service's auth callout) is brought up as ``bench/gateway.py`` does; N devices are
provisioned through the gateway with P-256 CSRs (``outpost_client.simulate``, the code of
``outpost device simulate``: decision 68). Then, in one run:

- connections/s: N connections opened by worker processes, ``--concurrency`` in flight, for
  each of: a device (mutual TLS, the callout asks the devices service), and two baselines
  without the callout: a service user on the same nats-server (TLS with the service
  certificate, user and password) and an anonymous client of a second, plain nats-server
  (no TLS, no authentication) — over NATS and over MQTT;
- telemetry messages/s: the N devices publish as fast as they can for ``--seconds`` over
  NATS, MQTT QoS 0 and MQTT QoS 1, counted by the publishers and by the TELEMETRY stream
  (its last sequence before and after the window: what was stored); baselines, one service
  connection publishing the same payloads on the same subjects (core publish) into the same
  stream, and as many service connections as devices doing the same over NATS (the shape of
  a fleet without the devices' identities and permissions).

Publishers and connectors run in ``--procs`` separate processes; CPU of every process of the
run is read from /proc (the workers report their own) so a reader can tell who saturated.
Only identity, devices and gateway run by default (the broker path; readings' ingest has its
own target and would compete for the same 2 cores): ``--all-services`` runs every service.

Run: ``uv run python bench/devices.py [--devices 300] [--seconds 10] [--procs 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from outpost_client.simulate import (
    Client,
    Connected,
    Endpoint,
    SimDevice,
    close_connection,
    device_client,
    open_connection,
    provision,
    publish,
    settle,
)

# -- worker processes ---------------------------------------------------------------------


class _Worker:
    """One load-generating process: opens its share of the connections of a named set,
    publishes on them, closes them, each on the parent's command, and reports its own CPU
    time."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.sets: dict[str, list[Connected]] = {}
        self.pending: dict[str, tuple[list[Client], list[Any], bool]] = {}

    async def recv(self) -> Any:
        return await asyncio.to_thread(self.pipe.recv)

    async def serve(self) -> None:
        while True:
            command, *args = await self.recv()
            if command == "exit":
                return
            handler = getattr(self, f"do_{command}")
            self.pipe.send(await handler(*args))

    async def do_prepare(self, name: str, clients: list[Client], share: bool) -> dict[str, Any]:
        """TLS contexts are built before the timed part (loading a key and a CA file).
        ``share``: one connection, publishing on every client's subject."""
        contexts = [c.endpoint.context() for c in clients[: 1 if share else None]]
        self.pending[name] = (clients, contexts, share)
        return {"ready": len(contexts)}

    async def do_connect(self, name: str, start_at: float, concurrency: int) -> dict[str, Any]:
        clients, contexts, share = self.pending.pop(name)
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu = time.process_time()
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        done: list[float] = []

        async def one(client: Client, context: Any) -> Connected | None:
            async with gate:
                try:
                    conn = await open_connection(client, context)
                except Exception as exc:
                    errors.append(repr(exc))
                    return None
                done.append(time.monotonic())
                return conn

        opened = await asyncio.gather(*(one(c, x) for c, x in zip(clients, contexts, strict=False)))
        conns = [c for c in opened if c is not None]
        if share and conns:
            conns = [Connected(c, conns[0].handle) for c in clients]
        self.sets[name] = conns
        return {
            "connected": len(done),
            "errors": len(errors),
            "first_error": errors[0] if errors else "",
            "last": max(done, default=start_at),
            "cpu": time.process_time() - cpu,
        }

    async def do_publish(
        self, name: str, start_at: float, end_at: float, rate: float, qos: int
    ) -> dict[str, Any]:
        conns = self.sets.get(name, [])
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu = time.process_time()
        out = await publish(conns, until=end_at, rate=rate, qos=qos)
        used = time.process_time() - cpu
        await settle(conns)
        return {"sent": out.sent, "acked": out.acked, "refused": out.refused, "cpu": used}

    async def do_close(self, name: str) -> dict[str, Any]:
        seen: set[int] = set()
        for conn in self.sets.pop(name, []):
            if id(conn.handle) not in seen:
                seen.add(id(conn.handle))
                await close_connection(conn)
        return {"closed": len(seen)}


def _worker_main(pipe: Connection) -> None:
    import logging

    import uvloop

    # asyncio's SSL transport warns on every MQTT close ("returning true from
    # eof_received() has no effect"): noise, not an error.
    logging.getLogger("asyncio").setLevel(logging.ERROR)

    uvloop.run(_Worker(pipe).serve())


class Workers:
    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker_main, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    async def ask(self, messages: list[tuple[Any, ...] | None]) -> list[Any]:
        """Send each worker its message (None: nothing) and wait for every answer."""
        asked = []
        for pipe, message in zip(self.pipes, messages, strict=True):
            if message is not None:
                pipe.send(message)
                asked.append(pipe)
        return list(await asyncio.gather(*(asyncio.to_thread(p.recv) for p in asked)))

    async def all(self, *message: Any) -> list[Any]:
        return await self.ask([message] * len(self.pipes))

    def stop(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


# -- CPU of the platform's processes --------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:
            out.append(int(entry))
    return out


MACHINE = "(whole machine)"


def _machine_busy() -> float:
    """CPU seconds every process of the machine has used so far (/proc/stat, all cores):
    what other work on a shared machine took shows as the difference from this run's."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def platform_cpu(groups: dict[str, list[int]], postmaster: int | None) -> dict[str, float]:
    """CPU seconds used so far by each process group of the run (Postgres: the postmaster and
    its backends, as they are now), and by the whole machine."""
    out = {name: sum(_cpu_seconds(p) for p in pids) for name, pids in groups.items()}
    if postmaster:
        out["postgres"] = sum(_cpu_seconds(p) for p in [postmaster, *_children(postmaster)])
    out[MACHINE] = _machine_busy()
    return out


# -- the measurements ----------------------------------------------------------------------


@dataclass
class Row:
    label: str
    count: int = 0
    seconds: float = 0.0
    errors: int = 0
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


class Bench:
    def __init__(self, workers: Workers, cpu_groups: dict[str, list[int]], postmaster: int | None):
        self.workers = workers
        self.cpu_groups = cpu_groups
        self.postmaster = postmaster

    def cpu(self) -> dict[str, float]:
        return platform_cpu(self.cpu_groups, self.postmaster)

    async def connect(
        self,
        label: str,
        clients: list[Client],
        concurrency: int,
        *,
        keep: str = "",
        only: int | None = None,
    ) -> Row:
        """Open the clients' connections from every worker (``only``: one worker, one shared
        connection), ``concurrency`` in flight in all; closed again unless kept as set
        ``keep``."""
        name = keep or "measure"
        n = len(self.workers.pipes)
        if only is None:
            await self.workers.ask([("prepare", name, part, False) for part in _split(clients, n)])
        else:
            await self.workers.ask(
                [("prepare", name, clients, True) if i == only else None for i in range(n)]
            )
        start_at = time.monotonic() + 0.3
        message = ("connect", name, start_at, max(1, concurrency // n))
        asking = asyncio.ensure_future(
            self.workers.ask([message if only in (None, i) else None for i in range(n)])
        )
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        before = self.cpu()
        answers = await asking
        used = {k: v - before.get(k, 0.0) for k, v in self.cpu().items()}
        used["load generators"] = sum(a["cpu"] for a in answers)
        row = Row(
            label,
            count=sum(a["connected"] for a in answers),
            seconds=max(a["last"] for a in answers) - start_at,
            errors=sum(a["errors"] for a in answers),
            note=next((a["first_error"] for a in answers if a["first_error"]), ""),
            cpu=used,
        )
        if not keep:
            await self.workers.all("close", name)
        return row

    async def publish(
        self, label: str, name: str, js: Any, seconds: float, qos: int, *, only: int | None = None
    ) -> Row:
        """Every worker (or worker ``only``) publishes on its connections of set ``name`` for
        ``seconds``; the stream's last sequence is read before the window opens and at its
        end, and once more when everything sent has landed."""
        n = len(self.workers.pipes)
        # Read before the window opens (nothing is being published then): read after, it
        # would miss what landed while the request was on its way.
        first = await _settled_seq(js, (await js.stream_info("TELEMETRY")).state.last_seq)
        start_at = time.monotonic() + 0.5
        end_at = start_at + seconds
        message = ("publish", name, start_at, end_at, 0.0, qos)
        asking = asyncio.ensure_future(
            self.workers.ask([message if only in (None, i) else None for i in range(n)])
        )
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        before = self.cpu()
        await asyncio.sleep(max(0.0, end_at - time.monotonic()))
        last = (await js.stream_info("TELEMETRY")).state.last_seq
        used = {k: v - before.get(k, 0.0) for k, v in self.cpu().items()}
        answers = await asking
        stored = await _settled_seq(js, last)
        used["load generators"] = sum(a["cpu"] for a in answers)
        sent = sum(a["sent"] for a in answers)
        return Row(
            label,
            count=last - first,
            seconds=seconds,
            errors=sum(a["refused"] for a in answers),
            cpu=used,
            extra={
                "sent/s": sent / seconds,
                "acked/s": sum(a["acked"] for a in answers) / seconds if qos else 0.0,
                "stored/sent": (stored - first) / sent if sent else 0.0,
            },
        )


async def _settled_seq(js: Any, last: int, quiet: float = 1.0, limit: float = 30.0) -> int:
    """The stream's last sequence once it has stopped growing (everything sent has landed)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = (await js.stream_info("TELEMETRY")).state.last_seq
        if now == last:
            break
        last = now
    return int(last)


# -- output -----------------------------------------------------------------------------------


def _cpu_line(row: Row, per_unit: float, per_second: float = 0.0) -> str:
    """CPU by process: µs per unit (connection, stored message) and, given the window's
    seconds, % of one core."""
    cpu = dict(row.cpu)
    # The workers report their own CPU; the machine's count includes them, so "other
    # processes" is what processes outside this run used in the same window.
    ours = sum(cpu.values()) - cpu.get(MACHINE, 0.0)
    cpu[MACHINE] = max(0.0, cpu.get(MACHINE, 0.0) - ours)

    def show(name: str, seconds: float) -> str:
        text = f"{name} {seconds / per_unit * 1e6:,.0f}"
        return f"{text} ({seconds / per_second * 100:.0f}%)" if per_second else text

    parts = [
        show(name, seconds)
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])
        if name != MACHINE and seconds / per_unit * 1e6 >= 1
    ]
    return f"    {'; '.join(parts)}; this run {show('', ours).strip()};" + (
        f" other processes on the machine {show('', cpu[MACHINE]).strip()}"
    )


def _total(runs: list[Row]) -> Row:
    """The runs of one kind as one row (CPU per unit over all of them)."""
    total = Row(runs[0].label)
    for r in runs:
        total.count += r.count
        total.seconds += r.seconds
        total.errors += r.errors
        total.note = total.note or r.note
        for k, v in r.cpu.items():
            total.cpu[k] = total.cpu.get(k, 0.0) + v
    return total


def _alone(runs: list[Row]) -> float:
    """What the run's processes would reach with every core to themselves: the cores divided
    by the CPU this run used per unit (an estimate for a shared machine, not a measurement:
    it assumes the work spreads over the cores)."""
    total = _total(runs)
    ours = sum(v for k, v in total.cpu.items() if k != MACHINE)
    return (os.cpu_count() or 1) * total.count / ours if ours else 0.0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}" if len(values) > 1 else ""


def report(conns: dict[str, list[Row]], tel: dict[str, list[Row]], args: Any) -> None:
    print(
        f"\nbench/devices: {args.devices} devices, {args.procs} load-generating processes,"
        f" {os.cpu_count()} cores shared by every process; medians of {args.repeat} runs"
        " (range beside)\n"
    )
    print(f"connections established ({args.concurrency} in flight, {args.devices} per run)")
    print(f"  {'kind':<46}{'conn/s':>8}  {'range':<13}{'vs TLS svc':>11}{'errors':>8}{'alone≈':>9}")
    rate = {label: _median([r.rate for r in runs]) for label, runs in conns.items()}
    for label, runs in conns.items():
        proto = label.split()[0]
        svc = rate.get(f"{proto} service user: TLS, no callout", 0.0)
        errors = sum(r.errors for r in runs)
        print(
            f"  {label:<46}{rate[label]:>8,.0f}  {_spread([r.rate for r in runs]):<13}"
            f"{rate[label] / svc if svc else 0:>10.2f}x{errors:>8}{_alone(runs):>9,.0f}"
        )
        note = next((r.note for r in runs if r.note), "")
        if note:
            print(f"    first error: {note[:160]}")
    print("  CPU per connection, µs, by process (all runs):")
    for label, runs in conns.items():
        total = _total(runs)
        print(f"  {label}")
        print(_cpu_line(total, max(1, total.count)))

    print(f"\ntelemetry, 1 reading per message, {args.seconds:.0f} s per run")
    print(
        f"  {'kind':<46}{'stored/s':>9}  {'range':<15}{'sent/s':>8}{'acked/s':>9}"
        f"{'stored/sent':>12}{'vs base':>9}{'alone≈':>9}"
    )
    stored = {label: _median([r.rate for r in runs]) for label, runs in tel.items()}
    base = next(iter(stored.values()), 0.0)
    for label, runs in tel.items():
        acked = _median([r.extra["acked/s"] for r in runs])
        sent = _median([r.extra["sent/s"] for r in runs])
        ratio = min(r.extra["stored/sent"] for r in runs)
        print(
            f"  {label:<46}{stored[label]:>9,.0f}  {_spread([r.rate for r in runs]):<15}"
            f"{sent:>8,.0f}{f'{acked:,.0f}' if acked else '—':>9}{ratio:>12.4f}"
            f"{stored[label] / base if base else 0:>8.2f}x{_alone(runs):>9,.0f}"
        )
    print("  stored/sent: the lowest over the runs, once everything sent had landed")
    print(
        "  alone≈: the cores / this run's CPU per connection or stored message, i.e. what it"
        " would reach\n  with the machine to itself (an estimate; the other processes'"
        " share is printed below)"
    )
    print("  CPU during the windows, µs per stored message (% of one core), all runs:")
    for label, runs in tel.items():
        total = _total(runs)
        print(f"  {label}")
        print(_cpu_line(total, max(1, total.count), total.seconds))


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, stack: Any, base: Path, creds: dict[str, Any]) -> None:
    import nats

    from outpost_devkit.infra import NatsServer, free_port
    from outpost_kit.material import nats_login

    t0 = time.monotonic()
    devices: list[SimDevice] = await provision(
        creds["gatewayUrl"],
        creds["organization"]["apiKey"],
        args.devices,
        base / "devices",
        concurrency=16,
    )
    print(f"provisioned {len(devices)} devices in {time.monotonic() - t0:.1f} s", flush=True)

    plain_mqtt = free_port()
    plain = NatsServer.start(
        base / "plain-nats",
        port=free_port(),
        monitor_port=free_port(),
        server_name="bench-plain",
        extra_config=f"mqtt {{ listen: 127.0.0.1:{plain_mqtt} }}\n",
    )
    workers = Workers(args.procs)
    try:
        assert stack.nats is not None
        groups = {"nats-server": [stack.nats.pid], "plain nats-server": [plain.pid]}
        groups |= {f"outpost-{s}": [stack.pid(s)] for s in stack.services}
        groups["bench (this process, log pumps)"] = [os.getpid()]
        postmaster = stack.pg.pid if stack.pg is not None else None
        bench = Bench(workers, groups, postmaster)

        ca = creds["brokerCaFile"]
        ports = {"nats": stack.nats.port, "mqtt": stack.mqtt_port}
        plain_ports = {"nats": plain.port, "mqtt": plain_mqtt}
        dev_user, dev_pw = nats_login(
            json.loads((base / "secrets.json").read_text()), "outpost-dev"
        )
        service = {
            "broker_ca": ca,
            "cert_file": str(stack.broker.service_cert),
            "key_file": str(stack.broker.service_key),
            "user": dev_user,
            "password": dev_pw,
        }

        def services(proto: str) -> list[Client]:
            ep = Endpoint(proto, "127.0.0.1", ports[proto], **service)
            return [Client(ep, f"svc-{i}", d.telemetry_subject) for i, d in enumerate(devices)]

        def plains(proto: str) -> list[Client]:
            ep = Endpoint(proto, "127.0.0.1", plain_ports[proto], tls=False)
            return [Client(ep, f"plain-{i}", "bench.plain") for i in range(len(devices))]

        def devs(proto: str) -> list[Client]:
            return [device_client(d, proto, "127.0.0.1", ports[proto], ca) for d in devices]

        # Warm up each path once (MQTT creates its session streams on the first connection).
        for proto in ("nats", "mqtt"):
            for clients in (plains(proto), services(proto), devs(proto)):
                await bench.connect("warm-up", clients[:4], 4)

        conns: dict[str, list[Row]] = {}
        c = args.concurrency
        for i in range(args.repeat):
            for proto in ("nats", "mqtt"):
                label = proto.upper()
                for kind, clients in (
                    ("plain TCP, no auth (second server)", plains(proto)),
                    ("service user: TLS, no callout", services(proto)),
                    ("device: mTLS + auth callout", devs(proto)),
                ):
                    row = await bench.connect(f"{label} {kind}", clients, c)
                    conns.setdefault(row.label, []).append(row)
                    print(f"run {i + 1}: {row.label} {row.rate:,.0f}/s", flush=True)

        # Telemetry: every device connected over NATS and over MQTT (not timed, fresh
        # sessions), and the baseline's one service connection (worker 0).
        for name, clients in (
            ("nats", devs("nats")),
            ("mqtt", devs("mqtt")),
            ("svc", services("nats")),
        ):
            row = await bench.connect("publishers", clients, c, keep=name)
            if row.errors:
                raise RuntimeError(f"{row.errors} {name} clients did not connect: {row.note}")
        await bench.connect("baseline", services("nats"), 1, keep="base", only=0)
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        js = nc.jetstream()
        tel: dict[str, list[Row]] = {}
        n = len(devices)
        for i in range(args.repeat):
            for label, name, qos, only in (
                ("baseline: 1 service connection, core publish", "base", 0, 0),
                (f"NATS, {n} service connections (no callout)", "svc", 0, None),
                (f"NATS, {n} devices", "nats", 0, None),
                (f"MQTT QoS 0, {n} devices", "mqtt", 0, None),
                (f"MQTT QoS 1, {n} devices", "mqtt", 1, None),
            ):
                row = await bench.publish(label, name, js, args.seconds, qos, only=only)
                tel.setdefault(label, []).append(row)
                print(f"run {i + 1}: {label} {row.rate:,.0f}/s stored", flush=True)
        await nc.close()
        for name in ("nats", "mqtt", "svc", "base"):
            await workers.all("close", name)
        report(conns, tel, args)
    finally:
        workers.stop()
        plain.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--all-services", action="store_true")
    args = parser.parse_args()

    from outpost_devkit.dev.stack import DevStack
    from outpost_kit.material import ALL_SERVICES

    # Provisioning N devices is 2N writes with the demo key: raise its write limit (the
    # gateway still counts them) so the bench is not throttled. Device sessions last the
    # whole run (the default 300 s would close them mid-run).
    os.environ["OUTPOST_GATEWAY_RATELIMIT_WRITE_PER_MINUTE"] = "1000000000"
    os.environ["OUTPOST_DEVICES_BROKER_SESSION_SECONDS"] = "3600"
    base = Path(tempfile.mkdtemp(prefix="outpost-bench-devices-"))
    stack = DevStack(
        base,
        gateway_port=None,
        nats_port=None,
        pg_port=None,
        mqtt_port=None,
        log_sink=open(os.devnull, "w"),  # noqa: SIM115 - open as long as the stack runs
        services=ALL_SERVICES if args.all_services else ("identity", "devices", "gateway"),
    )
    try:
        creds = stack.start()
        asyncio.run(run(args, stack, base, creds))
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
