"""The composition helper every service's ``bootstrap.py`` uses: connect, declare, serve.

Nothing here runs at import time; ``ServiceRuntime`` is built in ``main()`` from settings
read once from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from outpost_contracts import audit as audit_contract
from outpost_contracts import streams
from outpost_contracts.base import Event
from outpost_contracts.rpc import Operation
from outpost_kit import audit, messaging, metrics, telemetry
from outpost_kit.consumer import EventHandler, InboxConsumer
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec, Projector
from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.health import HealthServer
from outpost_kit.responder import Handler, Responder
from outpost_kit.settings import CommonSettings

_log = logging.getLogger(__name__)


# A long-running job: a coroutine (asyncio.create_task needs one) that returns on stop.
Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class ServiceRuntime:
    def __init__(
        self,
        service: str,
        settings: CommonSettings,
        environ: Mapping[str, str],
        *,
        event_types: Sequence[type[Event]] = (),
        external_event_types: Sequence[type[Event]] = (),
        projectors: Sequence[Projector] = (),
    ) -> None:
        self.service = service
        self.settings = settings
        self.environ = environ
        self._event_types = event_types
        self._external_types = external_event_types
        self._projectors = projectors
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.engine: AsyncEngine | None = None
        self.uow: UnitOfWorkFactory | None = None
        self.reads: TenantReads | None = None
        self.relay: OutboxRelay | None = None
        self.stop = asyncio.Event()
        self._responders: list[Responder] = []
        self._consumers: list[InboxConsumer] = []
        self._background: list[Job] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.health: HealthServer | None = None
        self.ready = False

    async def connect(self) -> None:
        telemetry.setup_tracing(f"outpost-{self.service}", self.environ)
        self.nc = await messaging.connect(
            self.settings.nats_url,
            f"outpost-{self.service}{self.settings.instance}",
            tls=self.settings.nats_tls(),
        )
        self.js = self.nc.jetstream()
        await messaging.apply_streams(
            self.js,
            streams.streams_of(self.service),
            streams.consumers_of(self.service),
            replicas=self.settings.nats_stream_replicas,
        )
        if self.settings.database_url is not None:
            dsn = self.settings.database_url.reveal()
            self.engine = create_engine(dsn, self.service)
            codec = EventCodec(tuple(self._event_types) or (Event,))
            self.uow = UnitOfWorkFactory(self.engine, codec, self._projectors)
            self.reads = await TenantReads.connect(dsn, self.service)
            self.relay = OutboxRelay(dsn, self.service, self.js)
            self.serve(
                {
                    audit_contract.list_audit_log(self.service): functools.partial(
                        audit.list_audit_log, self.uow, self.service
                    )
                }
            )

    def serve(self, handlers: Mapping[Operation[Any, Any], Handler]) -> None:
        assert self.nc is not None
        self._responders.append(Responder(self.nc, self.service, handlers))

    def consume(
        self, consumer_name: str, handler: EventHandler, event_types: Sequence[type[Event]]
    ) -> None:
        assert self.js is not None
        assert self.uow is not None
        spec = streams.consumer(consumer_name)
        if spec.owner != self.service:
            raise ValueError(f"consumer {consumer_name} belongs to {spec.owner}")
        self._consumers.append(
            InboxConsumer(self.uow, self.js, spec, handler, EventCodec(event_types))
        )

    def background(self, job: Job) -> None:
        """A long-running job that returns when ``stop`` is set."""
        self._background.append(job)

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stop.set)
        self.health = HealthServer(
            self.settings.health_host, self.settings.health_port, self._is_ready
        )
        await self.health.start()
        for responder in self._responders:
            await responder.start()
        jobs: list[Job] = [c.run for c in self._consumers]
        if self.relay is not None:
            jobs.append(self.relay.run)
        jobs.append(self._sample_consumers)
        jobs.extend(self._background)
        self._tasks = [asyncio.create_task(job(self.stop)) for job in jobs]
        self.ready = True
        _log.info(
            "outpost-%s ready (health on %s:%d)",
            self.service,
            self.settings.health_host,
            self.health.port,
        )
        stopper = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait([stopper, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                _log.error("background job failed", exc_info=task.exception())
        self.stop.set()
        await self.close()

    async def _sample_consumers(self, stop: asyncio.Event) -> None:
        """Lag, unacknowledged and redelivered counts of this service's durable consumers
        (``outpost_kit.metrics``), every few seconds."""
        assert self.js is not None
        await metrics.sample_consumers(self.js, streams.consumers_of(self.service), stop)

    def _is_ready(self) -> bool:
        return self.ready and self.nc is not None and self.nc.is_connected

    async def close(self) -> None:
        self.ready = False
        for responder in self._responders:
            with contextlib.suppress(Exception):
                await responder.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                _log.warning("stopping: %s did not finish in time; cancelling it", task.get_name())
                task.cancel()
        if self.health is not None:
            await self.health.stop()
        if self.nc is not None and not self.nc.is_closed:
            # Subscriptions are gone and every job has returned: flush what was published and
            # close (a drain would wait out its timeout on the pull subscriptions).
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.reads is not None:
            await self.reads.close()
        if self.engine is not None:
            await self.engine.dispose()
