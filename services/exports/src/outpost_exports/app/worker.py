"""Running one export job: claim it (a lease in Postgres and the next attempt), stream its
data into an archive, upload it under the attempt's own name, complete it if this attempt
still runs the job, and clean up what earlier attempts left.

Two workers never run the same job: the claim takes the job's row ``FOR UPDATE`` and refuses
while another worker's lease is live; a worker renews its lease with every progress write,
and the write is fenced on its attempt, so a worker that lost the job (its lease lapsed and
another took over, or the job was cancelled) finds out at its next progress write and stops.
Completion is fenced the same way in the decider, so exactly one archive is ever named."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prometheus_client import Counter, Histogram

from outpost_contracts import exports as api
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_exports.adapters import archive as zipper
from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.adapters.sources import Sources
from outpost_exports.app.handlers import EXPORTS
from outpost_exports.app.ports import ExportsUnitOfWork
from outpost_exports.domain import exports as domain
from outpost_kit import ids

_log = logging.getLogger(__name__)

DURATION = Histogram(
    "outpost_exports_duration_seconds",
    "Export jobs from claim to READY (one attempt)",
    buckets=(0.5, 1, 2, 3, 5, 10, 30, 60, 300, 1800, 3600),
)
ROWS = Counter("outpost_exports_rows_total", "Rows written into archives", ["kind"])
BYTES = Counter("outpost_exports_bytes_total", "Archive bytes uploaded")
OUTCOMES = Counter(
    "outpost_exports_jobs_total",
    "Export attempts by outcome (ready, failed, cancelled, fenced, retried)",
    ["outcome"],
)
FAILURES = Counter("outpost_exports_failures_total", "Export attempts that raised", ["reason"])


class Verdict(enum.Enum):
    ACK = "ack"  # the job is settled (or not ours to run): the message can go
    RETRY = "retry"  # deliver it again later
    LEAVE = "leave"  # neither: another delivery of it is being worked on


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    delay: float = 0.0


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    lease: timedelta = timedelta(seconds=30)
    progress_every_rows: int = 100_000
    progress_every_seconds: float = 1.0
    max_attempts: int = 3
    chunk_rows: int = 12_000
    compress_level: int = 1
    artifact_ttl: timedelta = timedelta(days=1)
    spool_dir: Path | None = None
    retry_delay: float = 2.0


@dataclass
class Counts:
    """Rows written per member."""

    readings: int = 0
    annotations: int = 0
    alerts: int = 0
    events: int = 0

    @property
    def total(self) -> int:
        return self.readings + self.annotations + self.alerts + self.events


class Stopped(Exception):
    """The job was cancelled or another attempt took it over: stop, keep nothing."""


def system_context(org_id: UUID, export_id: UUID) -> RequestContext:
    """The worker's calls to other services, in the export's organization."""
    return RequestContext(
        request_id=export_id.hex,
        org_id=org_id,
        principal=Principal(kind=PrincipalKind.SYSTEM, id=export_id, org_id=org_id),
    )


class Heartbeat:
    """Progress, lease renewal and in-progress acks, every N rows or seconds. Raises
    ``Stopped`` when the write finds the job no longer this attempt's to run."""

    def __init__(
        self,
        uow: ExportsUnitOfWork,
        org_id: UUID,
        export_id: UUID,
        attempt: int,
        config: WorkerConfig,
        in_progress: Callable[[], Awaitable[None]],
    ) -> None:
        self._uow = uow
        self._org = org_id
        self._id = export_id
        self.export_id = export_id
        self._attempt = attempt
        self._config = config
        self._in_progress = in_progress
        self._rows = 0
        self._at = time.monotonic()
        self.estimate: int | None = None

    async def tick(self, rows: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if (
            not force
            and rows - self._rows < self._config.progress_every_rows
            and now - self._at < self._config.progress_every_seconds
        ):
            return
        self._rows, self._at = rows, now
        async with self._uow(self._org) as tx:
            held = await tx.renew_run(
                self._id, self._attempt, rows, self.estimate, self._config.lease.total_seconds()
            )
            await tx.commit()
        if not held:
            raise Stopped()
        await self._in_progress()


class Runner:
    def __init__(
        self,
        uow: ExportsUnitOfWork,
        sources: Sources,
        store: ArtifactStore,
        config: WorkerConfig,
    ) -> None:
        self.uow = uow
        self.sources = sources
        self.store = store
        self.config = config

    # --- claim ------------------------------------------------------------------------

    async def claim(self, org_id: UUID, export_id: UUID) -> tuple[Any, Outcome | None]:
        """``(state, None)`` when this worker now runs the job's next attempt; otherwise
        ``(None, outcome)`` saying what to do with the message."""
        async with self.uow(org_id) as tx:
            status = await tx.status(export_id, lock=True)
            if status not in ("PENDING", "RUNNING"):
                return None, Outcome(Verdict.ACK)
            run = await tx.lease(export_id)
            if (
                status == "RUNNING"
                and run is not None
                and run.seconds_left > 0
                and run.worker != self.config.worker_id
            ):
                # Another worker holds it: look again once its lease would have lapsed.
                return None, Outcome(Verdict.RETRY, delay=run.seconds_left + 0.5)
            state, _ = await EXPORTS.execute(
                tx,
                None,
                stream_id=export_id,
                command=domain.Start(
                    worker=self.config.worker_id, max_attempts=self.config.max_attempts
                ),
                org_id=org_id,
            )
            if state.status != api.ExportStatus.RUNNING:
                await tx.commit()
                OUTCOMES.labels("failed").inc()
                return None, Outcome(Verdict.ACK)
            await tx.open_run(
                org_id,
                export_id,
                state.attempt,
                self.config.worker_id,
                self.config.lease.total_seconds(),
            )
            await tx.commit()
        return state, None

    # --- run --------------------------------------------------------------------------

    async def run(
        self, work: api.ExportWork, in_progress: Callable[[], Awaitable[None]]
    ) -> Outcome:
        state, outcome = await self.claim(work.org_id, work.export_id)
        if outcome is not None:
            return outcome
        started = time.monotonic()
        attempt: int = state.attempt
        beat = Heartbeat(self.uow, work.org_id, work.export_id, attempt, self.config, in_progress)
        spool = self.config.spool_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        spool.mkdir(parents=True, exist_ok=True)
        path = spool / f"outpost-export-{work.export_id}-{attempt}.zip"
        archive = zipper.Archive(path, state.format, self.config.compress_level)
        name = domain.object_name(work.org_id, work.export_id, attempt)
        try:
            counts, devices = await self._write(state, work, archive, beat)
            readings, annotations = counts.readings, counts.annotations
            await beat.tick(counts.total, force=True)
            archive.finish(
                zipper.manifest(
                    export_id=work.export_id,
                    org_id=work.org_id,
                    scope_type=state.scope_type,
                    scope_id=state.scope_id,
                    start=state.from_,
                    end=state.to,
                    includes=state.includes,
                    fmt=state.format,
                    devices=devices,
                    reading_count=readings,
                    annotation_count=annotations,
                    alert_count=counts.alerts,
                    event_count=counts.events,
                    generated_at=ids.now(),
                )
            )
            # A large upload outlasts the lease and the ack wait: keep both alive meanwhile.
            alive = asyncio.create_task(self._keep_alive(beat, counts.total))
            try:
                size = await self.store.put(name, path)
                sha = await asyncio.get_running_loop().run_in_executor(None, _sha256, path)
            finally:
                alive.cancel()
            BYTES.inc(size)
            await self._complete(work, attempt, name, size, sha, readings, annotations)
        except Stopped:
            archive.abort()
            await self.store.delete(name)
            OUTCOMES.labels("stopped").inc()
            # Cancelled: the message can go. Taken over: the other delivery is being worked.
            return Outcome(await self._settled(work))
        except Exception as exc:
            archive.abort()
            FAILURES.labels(type(exc).__name__).inc()
            _log.warning("export %s attempt %d failed: %r", work.export_id, attempt, exc)
            return await self._after_failure(work, attempt, exc)
        finally:
            path.unlink(missing_ok=True)
        OUTCOMES.labels("ready").inc()
        DURATION.observe(time.monotonic() - started)
        # What earlier attempts (workers lost after their upload) may have left.
        for earlier in range(1, attempt):
            await self.store.delete(domain.object_name(work.org_id, work.export_id, earlier))
        return Outcome(Verdict.ACK)

    async def _write(
        self, state: Any, work: api.ExportWork, archive: zipper.Archive, beat: Heartbeat
    ) -> tuple[Counts, list[UUID]]:
        ctx = system_context(work.org_id, work.export_id)
        devices = await self.sources.devices(ctx, state.scope_type, state.scope_id)
        loop = asyncio.get_running_loop()
        readings = annotations = 0
        if api.Include.READINGS in state.includes:
            archive.begin_readings()
            estimate = 0
            # The next chunk (of this device, or the next device's first) is asked for
            # while the current one is written.
            pending: asyncio.Future[Any] | None = None
            if devices:
                pending = asyncio.ensure_future(self._fetcher(ctx, devices[0], state)(None, True))
            for k, device in enumerate(devices):
                fetch = self._fetcher(ctx, device, state)
                while True:
                    assert pending is not None
                    chunk = await pending
                    if chunk.estimate is not None:
                        estimate += chunk.estimate
                        beat.estimate = max(estimate, readings)
                    if chunk.next:
                        assert chunk.last_ts is not None and chunk.last_sensor is not None
                        pending = asyncio.ensure_future(
                            fetch((chunk.last_ts, chunk.last_sensor), False)
                        )
                    elif k + 1 < len(devices):
                        following = self._fetcher(ctx, devices[k + 1], state)
                        pending = asyncio.ensure_future(following(None, True))
                    else:
                        pending = None
                    try:
                        readings += await loop.run_in_executor(
                            None, archive.write_readings, device, chunk
                        )
                        await beat.tick(readings)
                    except BaseException:
                        if pending is not None:
                            pending.cancel()
                        raise
                    if not chunk.next:
                        break
            archive.end_member()
            ROWS.labels("readings").inc(readings)
        if api.Include.ANNOTATIONS in state.includes:
            archive.begin_annotations()
            if devices:
                async for page in self.sources.annotations(ctx, devices, state.from_, state.to):
                    annotations += archive.write_annotations(page)
                    await beat.tick(readings + annotations)
            archive.end_member()
            ROWS.labels("annotations").inc(annotations)
        counts = Counts(readings=readings, annotations=annotations)
        if api.Include.ALERTS in state.includes:
            archive.begin_alerts()
            if devices:
                async for alerts in self.sources.alerts(ctx, devices, state.from_, state.to):
                    counts.alerts += archive.write_alerts(alerts)
                    await beat.tick(counts.total)
            archive.end_member()
            ROWS.labels("alerts").inc(counts.alerts)
        if api.Include.EVENTS in state.includes:
            archive.begin_events()
            if devices:
                async for entries in self.sources.events(ctx, devices, state.from_, state.to):
                    counts.events += archive.write_events(entries)
                    await beat.tick(counts.total)
            archive.end_member()
            ROWS.labels("events").inc(counts.events)
        return counts, devices

    async def _keep_alive(self, beat: Heartbeat, rows: int) -> None:
        """Renew the lease and send +WPI every progress interval until cancelled; a job
        cancelled or taken over meanwhile is found out at completion (fenced)."""
        try:
            while True:
                await asyncio.sleep(self.config.progress_every_seconds)
                await beat.tick(rows, force=True)
        except Stopped:
            return
        except Exception as exc:  # the next completion will tell
            _log.warning("keeping export %s alive failed: %r", beat.export_id, exc)

    def _fetcher(self, ctx: RequestContext, device: UUID, state: Any) -> Any:
        async def fetch(after: Any, estimate: bool) -> Any:
            return await self.sources.readings(
                ctx, device, state.from_, state.to, after, self.config.chunk_rows, estimate
            )

        return fetch

    async def _complete(
        self,
        work: api.ExportWork,
        attempt: int,
        name: str,
        size: int,
        sha: str,
        readings: int,
        annotations: int,
    ) -> None:
        try:
            async with self.uow(work.org_id) as tx:
                await tx.status(work.export_id, lock=True)
                await EXPORTS.execute(
                    tx,
                    None,
                    stream_id=work.export_id,
                    command=domain.Complete(
                        attempt=attempt,
                        object_name=name,
                        size_bytes=size,
                        sha256=sha,
                        reading_count=readings,
                        annotation_count=annotations,
                        ttl=self.config.artifact_ttl,
                    ),
                    org_id=work.org_id,
                )
                await tx.end_run(work.export_id)
                await tx.commit()
        except domain.Stale:
            raise Stopped() from None

    async def _settled(self, work: api.ExportWork) -> Verdict:
        async with self.uow(work.org_id) as tx:
            status = await tx.status(work.export_id)
        if status not in ("PENDING", "RUNNING"):
            return Verdict.ACK
        return Verdict.LEAVE

    async def _after_failure(self, work: api.ExportWork, attempt: int, exc: Exception) -> Outcome:
        """Another attempt later while attempts are left (the next claim counts it), else
        FAILED with the reason."""
        try:
            async with self.uow(work.org_id) as tx:
                await tx.status(work.export_id, lock=True)
                if attempt >= self.config.max_attempts:
                    await EXPORTS.execute(
                        tx,
                        None,
                        stream_id=work.export_id,
                        command=domain.Fail(attempt=attempt, reason=_reason(exc)),
                        org_id=work.org_id,
                    )
                    await tx.commit()
                    OUTCOMES.labels("failed").inc()
                    return Outcome(Verdict.ACK)
                # Give the lease back so the next delivery may start at once.
                await tx.release_run(work.export_id, attempt)
                await tx.commit()
        except domain.Stale:
            return Outcome(await self._settled(work))
        OUTCOMES.labels("retried").inc()
        return Outcome(Verdict.RETRY, delay=self.config.retry_delay)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:500]


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
