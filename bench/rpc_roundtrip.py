"""Request/reply round trips: the kit's responder against raw nats-py and FastStream.

Prints requests/s for sequential and concurrent clients, each beside the raw nats-py
baseline measured in the same run on the same nats-server.
Run: `uv run python bench/rpc_roundtrip.py`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import nats
from faststream.nats import NatsBroker, NatsMessage

from outpost_contracts.base import Contract, Request
from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.rpc import Operation
from outpost_devkit.infra import NatsServer
from outpost_kit import messaging
from outpost_kit.responder import Responder

N = 3000
CONCURRENCY = 32


class Ping(Request, kw_only=True, frozen=True):
    n: int


class Pong(Contract, kw_only=True, frozen=True):
    n: int


PING = Operation("bench", "Ping", Ping, Pong)
CTX = RequestContext(
    request_id="0" * 32,
    org_id=PLATFORM_ORG_ID,
    principal=Principal(kind=PrincipalKind.SYSTEM, id=uuid4(), org_id=PLATFORM_ORG_ID),
)


async def measure(nc: nats.NATS, subject: str, payload: bytes, concurrency: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await nc.request(subject, payload, timeout=5)

    start = time.perf_counter()
    await asyncio.gather(*(worker(N // concurrency) for _ in range(concurrency)))
    return (N // concurrency * concurrency) / (time.perf_counter() - start)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer.start(Path(tmp))
        try:
            servers = await nats.connect(server.url)
            client = await nats.connect(server.url)

            async def raw(msg: nats.aio.msg.Msg) -> None:
                await msg.respond(msg.data)

            await servers.subscribe("bench.raw", queue="bench", cb=raw)

            async def passthrough(msg: object, original: object = None) -> bytes:
                return msg.body  # type: ignore[attr-defined, no-any-return]

            broker = NatsBroker(server.url, logger=None)

            async def fs_handler(body: bytes, msg: NatsMessage) -> bytes:
                return body

            broker.subscriber("bench.faststream", queue="bench", decoder=passthrough)(fs_handler)
            await broker.start()

            async def ping(ctx: RequestContext, body: Ping) -> Pong:
                return Pong(n=body.n)

            responder = Responder(servers, "bench", {PING: ping})
            await responder.start()
            request = PING.encode_request(CTX, Ping(n=1))
            assert (await messaging.call(client, PING, CTX, Ping(n=7))).n == 7

            print(f"{'responder':<28}{'sequential req/s':>18}{'concurrent(32) req/s':>24}")
            base_seq = await measure(client, "bench.raw", request, 1)
            base_con = await measure(client, "bench.raw", request, CONCURRENCY)
            print(f"{'nats-py echo (baseline)':<28}{base_seq:>18,.0f}{base_con:>24,.0f}")
            for name, subject in (
                ("kit Responder (decode+encode)", PING.subject),
                ("FastStream echo", "bench.faststream"),
            ):
                seq = await measure(client, subject, request, 1)
                con = await measure(client, subject, request, CONCURRENCY)
                print(
                    f"{name:<28}{seq:>18,.0f}{con:>24,.0f}"
                    f"   ({seq / base_seq:.2f}x / {con / base_con:.2f}x baseline)"
                )
            await responder.stop()
            await broker.stop()
            await servers.close()
            await client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
