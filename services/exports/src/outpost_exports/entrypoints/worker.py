"""Export workers: the EXPORT_JOBS work queue one message at a time through the kit's
``BatchConsumer`` (ADR 0083), with explicit acks, and in-progress acks (``+WPI``) while a
job runs so the ack wait never lapses on a live worker. A worker killed mid-job never acks:
after the ack wait the message goes to another worker, which takes the job over once the
dead worker's lease has lapsed. A job that cannot be run (the database is down) comes back
after 2 s; an item that is not export work is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from outpost_contracts import exports as api
from outpost_contracts.streams import ConsumerSpec
from outpost_exports.app.worker import Runner, Verdict
from outpost_kit import consumer
from outpost_kit.pull import Fetcher

_work = msgspec.json.Decoder(api.ExportWork)


def _decode(msg: Msg) -> api.ExportWork:
    try:
        return _work.decode(msg.data)
    except msgspec.DecodeError as exc:
        raise consumer.PermanentFailure(f"not an export work item: {exc}") from exc


async def run(
    runner: Runner, js: JetStreamContext, spec: ConsumerSpec, stop: asyncio.Event
) -> None:
    async def handle(batch: Sequence[consumer.Delivery[api.ExportWork]]) -> list[consumer.Verdict]:
        (delivery,) = batch
        outcome = await runner.run(delivery.item, delivery.in_progress)
        if outcome.verdict is Verdict.ACK:
            return [consumer.ACK]
        if outcome.verdict is Verdict.RETRY:
            return [consumer.Retry(outcome.delay)]
        return [consumer.LEAVE]

    options = consumer.Options(per_message=True, hold=False, failure_delay=2.0, fetch_pause=1.0)
    fetcher = Fetcher(js, spec.stream, spec.name, 1)
    await consumer.BatchConsumer(spec, fetcher, _decode, handle, options).run(stop)
