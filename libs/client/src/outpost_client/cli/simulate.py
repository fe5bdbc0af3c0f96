"""``outpost device simulate``: provision N simulated devices (registration tokens, CSRs,
certificates), or connect with the credentials kept from an earlier run, connect them over
NATS or MQTT and publish telemetry at a rate, with a live dashboard of what was sent; over
NATS each device also follows its desired state (applies each ``outpost.state`` and reports
it back, with ``--drift`` keys reported otherwise; ADR 0091). The code that does it is
``outpost_client.simulate``, which ``bench/devices.py`` drives as its load generator."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.live import Live
from rich.table import Table

from outpost_client import simulate as sim
from outpost_client.cli.context import OutputOpt, QuietOpt, State, state
from outpost_client.errors import OutpostError

DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "mqtt": 1883, "mqtts": 8883}


def endpoint_of(url: str, protocol: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise typer.BadParameter(f"the platform gave no {protocol} URL for devices ({url!r})")
    return parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 4222)


def wave(
    base: float, amplitude: float, period: float, noise: float
) -> Callable[[sim.Connected, float], float]:
    """Each device's value: ``base`` plus a sine of ``amplitude`` over ``period`` seconds
    (devices out of phase) plus uniform noise."""
    rng = random.Random(0)

    def value(conn: sim.Connected, elapsed: float) -> float:
        phase = (hash(conn.client.client_id) % 360) / 360 * 2 * math.pi
        swing = amplitude * math.sin(2 * math.pi * elapsed / period + phase) if period else 0.0
        return base + swing + (rng.uniform(-noise, noise) if noise else 0.0)

    return value


def dashboard(
    devices: int, connected: int, protocol: str, sent: int, rate: float, elapsed: float, acked: int
) -> Table:
    grid = Table(title=f"outpost device simulate · {protocol}", show_header=True)
    for column in ("devices", "connected", "sent", "msg/s", "acked (QoS 1)", "elapsed"):
        grid.add_column(column, justify="right")
    grid.add_row(
        str(devices), str(connected), f"{sent:,}", f"{rate:,.1f}", f"{acked:,}", f"{elapsed:.1f} s"
    )
    return grid


def register(group: typer.Typer) -> None:
    @group.command(
        "simulate",
        help=(
            "Provision simulated devices and publish telemetry over NATS or MQTT with a live"
            " dashboard of rates. The benchmarks' load generator (bench/devices.py)."
        ),
        epilog=(
            "Example: outpost device simulate --count 50 --rate 2 --seconds 60 --protocol mqtt"
            " --value 21 --amplitude 5. Desired state only: outpost device simulate --device"
            " gw-1 --no-telemetry --seconds 600 --drift sampling.interval=5"
        ),
    )
    def simulate(
        ctx: typer.Context,
        count: Annotated[int, typer.Option(help="Devices to provision")] = 1,
        rate: Annotated[float, typer.Option(help="Messages per second per device")] = 1.0,
        seconds: Annotated[float, typer.Option(help="How long to publish")] = 10.0,
        protocol: Annotated[str, typer.Option(help="nats or mqtt")] = "nats",
        device: Annotated[
            list[str] | None, typer.Option(help="Simulate this device name (repeatable)")
        ] = None,
        prefix: Annotated[str, typer.Option(help="Name prefix of new devices")] = "",
        sensor: Annotated[str, typer.Option(help="The sensor key")] = "temperature",
        value: Annotated[float, typer.Option(help="The base value")] = 21.5,
        amplitude: Annotated[float, typer.Option(help="Sine amplitude around it")] = 0.0,
        period: Annotated[float, typer.Option(help="Sine period, seconds")] = 60.0,
        noise: Annotated[float, typer.Option(help="Uniform noise ±")] = 0.0,
        qos: Annotated[int, typer.Option(help="MQTT QoS 0 or 1")] = 0,
        broker_ca: Annotated[
            Path | None, typer.Option(help="CA of the broker's certificate (or the profile's)")
        ] = None,
        keys_dir: Annotated[
            Path | None, typer.Option(help="Where the devices' keys are kept (default: temp)")
        ] = None,
        connect: Annotated[
            bool,
            typer.Option(
                "--connect",
                help="Connect with the credentials kept in --keys-dir instead of provisioning",
            ),
        ] = False,
        telemetry: Annotated[
            bool, typer.Option("--telemetry/--no-telemetry", help="Publish telemetry")
        ] = True,
        follow_state: Annotated[
            bool,
            typer.Option(
                "--state/--no-state",
                help="Follow the desired state: apply each one, report it back (NATS)",
            ),
        ] = True,
        drift: Annotated[
            list[str] | None,
            typer.Option(
                help="KEY=VALUE (VALUE as JSON, else text; KEY dotted for nested keys): report"
                " this instead of what the desired state says (repeatable)"
            ),
        ] = None,
        states: Annotated[
            int,
            typer.Option(
                help="Stop once every device applied this many desired states (0: run --seconds)"
            ),
        ] = 0,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        st = state(ctx)
        profile = st.profile()
        if protocol not in ("nats", "mqtt"):
            raise typer.BadParameter("nats or mqtt", param_hint="--protocol")
        ca = str(broker_ca or profile.broker_ca or os.environ.get("OUTPOST_BROKER_CA", ""))
        if not ca:
            raise typer.BadParameter(
                "the broker's CA certificate is needed (--broker-ca, OUTPOST_BROKER_CA, or"
                " `outpost login --broker-ca`)",
                param_hint="--broker-ca",
            )
        if connect and keys_dir is None:
            raise typer.BadParameter("--connect needs --keys-dir", param_hint="--connect")
        if (drift or states) and not follow_state:
            raise typer.BadParameter("--drift and --states need --state", param_hint="--drift")
        plan = Plan(
            url=profile.url,
            token=profile.token,
            count=count,
            names=device or [],
            prefix=prefix,
            directory=keys_dir or Path(tempfile.mkdtemp(prefix="outpost-sim-")),
            protocol=protocol,
            ca=ca,
            rate=rate,
            seconds=seconds,
            qos=qos,
            value=value,
            values=wave(value, amplitude, period, noise) if (amplitude or noise) else None,
            sensor=sensor,
            connect=connect,
            telemetry=telemetry,
            follow_state=follow_state and protocol == "nats",
            drift=dict(parse_drift(item) for item in drift or ()),
            states=states,
        )
        if follow_state and protocol != "nats":
            st.note("desired state is followed over NATS only (--protocol nats)")
        result = asyncio.run(_run(st, plan))
        st.errors.print(
            f"{result.devices} device(s) sent {result.sent:,} messages in"
            f" {result.elapsed:.1f} s ({result.sent / max(result.elapsed, 1e-9):,.1f} msg/s);"
            f" refused {result.refused}"
        )
        if plan.follow_state:
            st.errors.print(f"{result.states_applied} desired state(s) applied and reported")
        fmt = (out or st.output).lower()
        if quiet or st.quiet:
            print("\n".join(result.ids))
        elif fmt != "table":
            st.show(dataclasses.asdict(result), (), fmt)


@dataclass(frozen=True)
class Plan:
    url: str
    token: str
    count: int
    names: list[str]
    prefix: str
    directory: Path
    protocol: str
    ca: str
    rate: float
    seconds: float
    qos: int
    value: float
    values: Callable[[sim.Connected, float], float] | None
    sensor: str
    connect: bool = False
    telemetry: bool = True
    follow_state: bool = False
    drift: dict[str, Any] = dataclasses.field(default_factory=dict)
    states: int = 0


@dataclass(frozen=True)
class Outcome:
    devices: int
    sent: int
    refused: int
    elapsed: float
    ids: list[str]
    states_applied: int = 0


def parse_drift(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: the value as JSON (``5``, ``true``, ``{"a": 1}``), else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise typer.BadParameter(f"KEY=VALUE, not {text!r}", param_hint="--drift")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


async def _devices(st: State, plan: Plan) -> list[sim.SimDevice]:
    if plan.connect:
        devices = await asyncio.to_thread(sim.kept, plan.directory)
        if plan.names:
            devices = [d for d in devices if d.name in plan.names]
        if not devices:
            raise OutpostError(f"no device credentials kept in {plan.directory}")
        st.note(f"connecting {len(devices)} device(s) with kept credentials …")
        return devices
    st.note(f"provisioning {len(plan.names) or plan.count} device(s) …")
    return await sim.provision(
        plan.url, plan.token, plan.count, plan.directory, prefix=plan.prefix, names=plan.names
    )


async def _run(st: State, plan: Plan) -> Outcome:
    devices = await _devices(st, plan)
    clients = []
    for d in devices:
        url = d.nats_url if plan.protocol == "nats" else d.mqtt_url
        host, port = endpoint_of(url, plan.protocol)
        clients.append(sim.device_client(d, plan.protocol, host, port, plan.ca))
    try:
        conns = list(
            await asyncio.gather(*(sim.open_connection(c, c.endpoint.context()) for c in clients))
        )
    except Exception as exc:  # TLS, the broker's refusal, a timeout: one line, not a trace
        raise OutpostError(f"connecting over {plan.protocol}: {exc!r}") from exc
    followers = []
    progress = asyncio.Event()  # set by each state applied
    if plan.follow_state:
        for device, conn in zip(devices, conns, strict=True):
            follower = sim.StateFollower(
                conn, device, plan.drift, say=st.errors.print, progress=progress
            )
            await follower.start()
            followers.append(follower)
        st.note(f"{len(followers)} device(s) following their desired state")

    def synced() -> bool:
        return plan.states > 0 and all(f.applied >= plan.states for f in followers)

    start = time.monotonic()
    if not plan.telemetry:
        deadline = start + plan.seconds
        while True:
            progress.clear()  # before looking: a state applied after this sets it again
            left = deadline - time.monotonic()
            if synced() or left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), left)
        for conn in conns:
            await sim.close_connection(conn)
        return Outcome(
            len(devices),
            0,
            0,
            time.monotonic() - start,
            [d.device_id for d in devices],
            sum(f.applied for f in followers),
        )
    task = asyncio.ensure_future(
        sim.publish(
            conns,
            until=start + plan.seconds,
            rate=plan.rate,
            qos=plan.qos,
            value=plan.value,
            values=plan.values,
            sensor=plan.sensor,
        )
    )
    previous, previous_at, shown_rate = 0, start, 0.0
    with Live(console=st.errors, refresh_per_second=4, transient=False) as live:
        while not task.done():
            await asyncio.wait([task], timeout=0.5)
            now = time.monotonic()
            sent = sum(c.seq for c in conns)
            if now - previous_at >= 0.5:
                shown_rate = (sent - previous) / (now - previous_at)
                previous, previous_at = sent, now
            acked = sum(c.handle.acked for c in conns if c.is_mqtt)
            live.update(
                dashboard(
                    len(devices), len(conns), plan.protocol, sent, shown_rate, now - start, acked
                )
            )
        published = task.result()
        await sim.settle(conns)
        elapsed = time.monotonic() - start
        average = published.sent / max(elapsed, 1e-9)
        live.update(
            dashboard(
                len(devices),
                len(conns),
                plan.protocol,
                published.sent,
                average,
                elapsed,
                published.acked,
            )
        )
    for conn in conns:
        await sim.close_connection(conn)
    return Outcome(
        len(devices),
        published.sent,
        published.refused,
        elapsed,
        [d.device_id for d in devices],
        sum(f.applied for f in followers),
    )
