"""Exports' composition root (decision 65): the job API over request/reply, the workers of
the EXPORT_JOBS work queue, the expiry job, and the artifact store chosen by settings."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from functools import partial
from pathlib import Path

from outpost_contracts import exports, streams
from outpost_exports.adapters.artifacts import ArtifactStore, NatsArtifactStore, S3ArtifactStore
from outpost_exports.adapters.projections import ExportsProjector
from outpost_exports.adapters.sources import NatsSources
from outpost_exports.adapters.store import PgExports
from outpost_exports.app.handlers import Deps, Policy
from outpost_exports.app.worker import Runner, WorkerConfig
from outpost_exports.entrypoints import expiry, rpc, worker
from outpost_exports.settings import ExportsSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.runtime import ServiceRuntime

PROJECTORS = (ExportsProjector(),)


def artifact_store(runtime: ServiceRuntime, settings: ExportsSettings) -> ArtifactStore:
    if settings.artifact_store == "s3":
        secret = settings.s3_secret_access_key
        return S3ArtifactStore(
            bucket=settings.bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.reveal() if secret is not None else "",
            url_seconds=settings.s3_url_seconds,
        )
    if settings.artifact_store != "nats":
        raise SystemExit("OUTPOST_EXPORTS_ARTIFACT_STORE must be 'nats' or 's3'")
    assert runtime.js is not None
    return NatsArtifactStore(runtime.js, settings.bucket, settings.nats_stream_replicas)


def policy_of(settings: ExportsSettings) -> Policy:
    return Policy(
        max_range=timedelta(days=settings.max_range_days),
        max_concurrent=settings.max_concurrent_per_org,
        artifact_ttl=timedelta(seconds=settings.artifact_ttl_seconds),
        max_attempts=settings.max_attempts,
    )


def worker_config(settings: ExportsSettings) -> WorkerConfig:
    return WorkerConfig(
        lease=timedelta(seconds=settings.lease_seconds),
        progress_every_rows=settings.progress_every_rows,
        progress_every_seconds=settings.progress_every_seconds,
        max_attempts=settings.max_attempts,
        chunk_rows=settings.chunk_rows,
        compress_level=settings.compress_level,
        artifact_ttl=timedelta(seconds=settings.artifact_ttl_seconds),
        spool_dir=Path(settings.spool_dir) if settings.spool_dir else None,
    )


async def build(runtime: ServiceRuntime, settings: ExportsSettings) -> None:
    assert runtime.uow is not None and runtime.js is not None and runtime.nc is not None
    store = artifact_store(runtime, settings)
    await store.start()
    sources = NatsSources(runtime.nc, timeout=max(settings.rpc_timeout_seconds, 10.0))
    exports_uow = PgExports.over(runtime.uow)  # the use cases' port over the kit's unit of work
    runtime.serve(rpc.handlers(Deps(exports_uow, sources, store, policy_of(settings))))
    spec = streams.consumer("exports-jobs")
    config = worker_config(settings)
    for i in range(max(settings.workers, 0)):
        # Each worker task its own id: a lease names the task that holds it.
        own = dataclasses.replace(config, worker_id=f"{config.worker_id}:{i}")
        runner = Runner(exports_uow, sources, store, own)
        runtime.background(partial(worker.run, runner, runtime.js, spec))
    runtime.background(
        partial(
            expiry.run,
            exports_uow,
            store,
            settings.expiry_check_seconds,
            timedelta(seconds=settings.requeue_after_seconds),
        )
    )


def main() -> None:
    service_main(
        "exports",
        settings_type=ExportsSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=exports.EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
    )


if __name__ == "__main__":
    main()
