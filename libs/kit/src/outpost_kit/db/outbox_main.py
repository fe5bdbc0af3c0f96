"""Run one outbox relay as its own process (tests, and a standalone relay deployment).

``python -m outpost_kit.db.outbox_main --dsn DSN --schema SCHEMA --nats URL``. It relays
until SIGTERM/SIGINT. Prints ``ready`` once connected to NATS, so a supervisor can wait
for it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.messaging import connect


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="outpost_kit.db.outbox_main")
    parser.add_argument("--dsn", required=True, help="the service role's DSN")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args(argv)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(args.nats, name=f"outbox-relay-{args.schema}")
    try:
        relay = OutboxRelay(args.dsn, args.schema, nc.jetstream(), batch_size=args.batch_size)
        print("ready", flush=True)
        await relay.run(stop)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
