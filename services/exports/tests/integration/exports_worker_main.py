"""An export worker as its own process, for the worker-kill test: it pulls the given
consumer and runs jobs until it is killed."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from outpost_contracts import exports as api
from outpost_contracts.streams import ConsumerSpec
from outpost_exports import bootstrap
from outpost_exports.adapters.artifacts import NatsArtifactStore
from outpost_exports.adapters.sources import NatsSources
from outpost_exports.adapters.store import PgExports
from outpost_exports.app.worker import Runner, WorkerConfig
from outpost_exports.entrypoints import worker
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.messaging import connect


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--dsn", "--nats", "--consumer", "--bucket", "--worker-id"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    engine = create_engine(args.dsn, "exports", pool_size=2)
    uow = UnitOfWorkFactory(engine, EventCodec(api.EVENT_TYPES), bootstrap.PROJECTORS)
    nc = await connect(args.nats, "exports-test-worker")
    js = nc.jetstream()
    store = NatsArtifactStore(js, args.bucket)
    await store.start()
    config = WorkerConfig(
        worker_id=args.worker_id,
        lease=timedelta(seconds=2),
        progress_every_rows=2_000,
        progress_every_seconds=0.2,
        chunk_rows=2_000,
    )
    runner = Runner(PgExports.over(uow), NatsSources(nc), store, config)
    spec = ConsumerSpec(stream="EXPORT_JOBS", name=args.consumer, owner="exports")
    await worker.run(runner, js, spec, asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main())
