"""``outpost device simulate``: provision N simulated devices (registration tokens, CSRs,
certificates), connect them over NATS or MQTT and publish telemetry at a rate, with a live
dashboard of what was sent. The code that does it is ``outpost_client.simulate``, which
``bench/devices.py`` drives as its load generator."""

from __future__ import annotations

import asyncio
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.live import Live
from rich.table import Table

from outpost_client import simulate as sim
from outpost_client.cli.context import state

DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "mqtt": 1883, "mqtts": 8883}


def endpoint_of(url: str, protocol: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise typer.BadParameter(f"the platform gave no {protocol} URL for devices ({url!r})")
    return parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 4222)


def wave(base: float, amplitude: float, period: float, noise: float):  # type: ignore[no-untyped-def]
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
            " --value 21 --amplitude 5"
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
        directory = keys_dir or Path(tempfile.mkdtemp(prefix="outpost-sim-"))
        values = wave(value, amplitude, period, noise) if (amplitude or noise) else None
        result = asyncio.run(
            _run(
                st,
                profile.url,
                profile.token,
                count,
                device or [],
                prefix,
                directory,
                protocol,
                ca,
                rate,
                seconds,
                qos,
                value,
                values,
                sensor,
            )
        )
        st.note(
            f"{result['devices']} device(s) sent {result['sent']:,} messages in"
            f" {result['elapsed']:.1f} s ({result['sent'] / max(result['elapsed'], 1e-9):,.1f}"
            f" msg/s); refused {result['refused']}"
        )
        if st.quiet:
            print("\n".join(result["ids"]))


async def _run(
    st,
    url,
    token,
    count,
    names,
    prefix,
    directory,
    protocol,
    ca,
    rate,
    seconds,
    qos,
    value,
    values,
    sensor,
):  # type: ignore[no-untyped-def]
    st.note(f"provisioning {len(names) or count} device(s) …")
    devices = await sim.provision(url, token, count, directory, prefix=prefix, names=names)
    clients = []
    for d in devices:
        host, port = endpoint_of(d.nats_url if protocol == "nats" else d.mqtt_url, protocol)
        clients.append(sim.device_client(d, protocol, host, port, ca))
    conns = list(
        await asyncio.gather(*(sim.open_connection(c, c.endpoint.context()) for c in clients))
    )
    start = time.monotonic()
    task = asyncio.ensure_future(
        sim.publish(
            conns,
            until=start + seconds,
            rate=rate,
            qos=qos,
            value=value,
            values=values,
            sensor=sensor,
        )
    )
    previous, previous_at = 0, start
    shown_rate = 0.0
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
                dashboard(len(devices), len(conns), protocol, sent, shown_rate, now - start, acked)
            )
        published = task.result()
        await sim.settle(conns)
        elapsed = time.monotonic() - start
        live.update(
            dashboard(
                len(devices),
                len(conns),
                protocol,
                published.sent,
                published.sent / max(elapsed, 1e-9),
                elapsed,
                published.acked,
            )
        )
    for conn in conns:
        await sim.close_connection(conn)
    return {
        "devices": len(devices),
        "sent": published.sent,
        "refused": published.refused,
        "elapsed": elapsed,
        "ids": [d.device_id for d in devices],
    }
