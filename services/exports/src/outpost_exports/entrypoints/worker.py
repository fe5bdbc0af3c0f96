"""Export workers: pull the EXPORT_JOBS work queue one message at a time, with explicit acks,
and in-progress acks (``+WPI``) while a job runs so the ack wait never lapses on a live
worker. A worker killed mid-job never acks: after the ack wait the message goes to another
worker, which takes the job over once the dead worker's lease has lapsed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.js.client import JetStreamContext

from outpost_contracts import exports as api
from outpost_contracts.streams import ConsumerSpec
from outpost_exports.app.worker import Runner, Verdict

_log = logging.getLogger(__name__)
_work = msgspec.json.Decoder(api.ExportWork)


async def run(
    runner: Runner, js: JetStreamContext, spec: ConsumerSpec, stop: asyncio.Event
) -> None:
    sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(1, timeout=1.0)
            except TimeoutError:
                continue
            except Exception as exc:  # the broker is away: try again shortly
                _log.warning("fetching export work failed: %r", exc)
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                await _handle(runner, msg)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _handle(runner: Runner, msg: object) -> None:
    from nats.aio.msg import Msg

    assert isinstance(msg, Msg)
    try:
        work = _work.decode(msg.data)
    except msgspec.DecodeError:
        _log.error("not an export work item on %s: dropped", msg.subject)
        await msg.term()
        return

    async def in_progress() -> None:
        with contextlib.suppress(Exception):
            await msg.in_progress()

    try:
        outcome = await runner.run(work, in_progress)
    except Exception as exc:  # e.g. the database is down: the message comes back later
        _log.warning("export %s could not be run: %r", work.export_id, exc)
        with contextlib.suppress(Exception):
            await msg.nak(delay=2.0)
        return
    with contextlib.suppress(Exception):
        if outcome.verdict is Verdict.ACK:
            await msg.ack()
        elif outcome.verdict is Verdict.RETRY:
            await msg.nak(delay=outcome.delay)
