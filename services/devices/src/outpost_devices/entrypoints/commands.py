"""Commands' broker entry points: the devices' acks and state reports (a queue group over
every device's ack subject), ``DeviceConnected`` (deliver what waits), and the sweeper."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from outpost_contracts import subjects
from outpost_devices.app import commands

ACKS_QUEUE = "outpost-devices-acks"
CONNECTED_QUEUE = "outpost-devices-commands"


async def run(nc: NATS, deps: commands.CommandDeps, stop: asyncio.Event) -> None:
    async def on_ack(msg: Msg) -> None:
        await commands.on_ack(deps, msg.subject, msg.data)

    async def on_connected(msg: Msg) -> None:
        deps.spawn(commands.on_device_connected(deps, msg.data))

    subs = [
        await nc.subscribe(subjects.COMMAND_ACKS_ALL, queue=ACKS_QUEUE, cb=on_ack),
        await nc.subscribe(
            subjects.event_filter("devices", "DeviceConnected"),
            queue=CONNECTED_QUEUE,
            cb=on_connected,
        ),
    ]
    try:
        await commands.sweeper(deps, stop)
    finally:
        for sub in subs:
            await sub.unsubscribe()
