"""Feeds the credential cache from the IDENTITY stream.

Each replica runs its own ordered, ephemeral consumer (``gateway-credentials`` in
``outpost_contracts.streams``) from the beginning of the stream, so a fresh process rebuilds
the cache from history and then applies new events as they arrive (a revocation reaches it
in well under the 5 s docs/api.md allows). The follower is *caught up* once it has applied the
stream's last sequence as it was at start (or the consumer reports nothing pending); until
then ``/readyz`` answers 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from outpost_contracts.base import Event, event_tag
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    OAuthClientDeleted,
    OrganizationCreated,
    OrganizationReinstated,
    OrganizationSuspended,
    SessionRevoked,
    SigningKeyPublished,
    SigningKeyRetired,
)
from outpost_contracts.streams import consumer
from outpost_gateway.domain.credentials import CredentialCache, evolve
from outpost_kit import telemetry

_log = logging.getLogger(__name__)

SPEC = consumer("gateway-credentials")

EVENT_TYPES: dict[str, type[Event]] = {
    event_tag(t): t
    for t in (
        ApiKeyCreated,
        ApiKeyRevoked,
        OrganizationCreated,
        OrganizationSuspended,
        OrganizationReinstated,
        SigningKeyPublished,
        SigningKeyRetired,
        SessionRevoked,
        OAuthClientDeleted,
    )
}


class _Tag(msgspec.Struct):
    type: str


class _RawEnvelope(msgspec.Struct):
    data: msgspec.Raw


_raw_decoder = msgspec.json.Decoder(_RawEnvelope)
_tag_decoder = msgspec.json.Decoder(_Tag)


def decode_identity_event(data: bytes) -> EventEnvelope | None:
    """The envelope of an event the cache needs, or None for any other identity event."""
    raw = _raw_decoder.decode(data)
    event_type = EVENT_TYPES.get(_tag_decoder.decode(raw.data).type)
    if event_type is None:
        return None
    return msgspec.json.decode(data, type=_envelope_of(event_type))  # type: ignore[no-any-return]


_ENVELOPES: dict[type[Event], Any] = {}


def _envelope_of(event_type: type[Event]) -> Any:
    """``EventEnvelope`` with ``data`` narrowed to one concrete event type, so msgspec can
    decode it (a field typed as the ``Event`` base does not dispatch on the tag)."""
    cls = _ENVELOPES.get(event_type)
    if cls is None:
        # "_" keeps the narrowed envelope out of the contracts' schema registry.
        cls = msgspec.defstruct(
            f"_{event_type.__name__}Envelope",
            [("data", event_type)],
            bases=(EventEnvelope,),
            kw_only=True,
            frozen=True,
        )
        _ENVELOPES[event_type] = cls
    return cls


class IdentityFollower:
    def __init__(self, js: JetStreamContext, cache: CredentialCache) -> None:
        self._js = js
        self.cache = cache
        self._target = 0
        self._caught_up = asyncio.Event()
        self._sub: Any = None

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    async def wait_caught_up(self) -> None:
        await self._caught_up.wait()

    async def start(self) -> None:
        """Subscribe from the start of the stream; returns once subscribed (not caught up)."""
        while True:
            try:
                info = await self._js.stream_info(SPEC.stream)
                break
            except NotFoundError:
                _log.warning("stream %s does not exist yet; retrying", SPEC.stream)
                await asyncio.sleep(1.0)
        self._target = info.state.last_seq
        if self._target == 0:
            self._caught_up.set()
        self._sub = await self._js.subscribe(
            SPEC.filter_subjects[0],
            stream=SPEC.stream,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_message(self, msg: Any) -> None:
        # Continues the trace of the request that changed the credential (via the outbox).
        with telemetry.tracer(__name__).start_as_current_span(
            "follow identity",
            kind=SpanKind.CONSUMER,
            context=telemetry.extract(msg.headers) if msg.headers else None,
        ):
            self._apply(msg)

    def _apply(self, msg: Any) -> None:
        try:
            envelope = decode_identity_event(msg.data)
        except msgspec.DecodeError:
            _log.exception("undecodable identity event on %s; skipped", msg.subject)
            envelope = None
        if envelope is not None:
            evolve(self.cache, envelope)
        if not self._caught_up.is_set():
            meta = msg.metadata
            if meta.sequence.stream >= self._target or meta.num_pending == 0:
                _log.info("credential cache caught up at stream sequence %d", meta.sequence.stream)
                self._caught_up.set()
