"""A kitsvc inbox consumer as its own process, for the consumer-crash test: with
``--crash-at N`` it SIGKILLs itself when it is about to ack its N-th message, that is after the
message's transaction committed and before JetStream heard of it."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from uuid import UUID

from nats.aio.msg import Msg

from kitsvc import CODEC, CounterProjector, consumer_spec
from outpost_contracts.envelope import EventEnvelope
from outpost_kit.consumer import InboxConsumer
from outpost_kit.db.engine import create_engine
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.messaging import connect


def _arm(crash_at: int) -> None:
    real_ack = Msg.ack
    acks = 0

    async def ack(self: Msg) -> None:
        nonlocal acks
        acks += 1
        if acks == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
        await real_ack(self)

    Msg.ack = ack  # type: ignore[method-assign]


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--dsn", "--schema", "--nats", "--consumer", "--org"):
        parser.add_argument(name, required=True)
    parser.add_argument("--ack-wait", type=float, default=1.0)
    parser.add_argument("--crash-at", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=15, help="or until SIGTERM")
    args = parser.parse_args()
    if args.crash_at:
        _arm(args.crash_at)
    spec = consumer_spec(args.consumer, UUID(args.org), ack_wait=args.ack_wait)
    engine = create_engine(args.dsn, args.schema, pool_size=2)
    nc = await connect(args.nats, "kitsvc-consumer")
    projector = CounterProjector()

    async def handler(uow: UnitOfWork, envelope: EventEnvelope) -> None:
        await projector.apply(uow.conn, envelope)

    consumer = InboxConsumer(UnitOfWorkFactory(engine, CODEC), nc.jetstream(), spec, handler, CODEC)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(consumer.run(stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopping], timeout=args.seconds, return_when="FIRST_COMPLETED")
    stopping.cancel()
    stop.set()
    await task
    await nc.close()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
