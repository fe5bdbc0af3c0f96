"""Shared test doubles for the gateway's unit tests: a fake backend and a credential cache
built the way production builds it, by applying identity events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from outpost_contracts.base import Event
from outpost_contracts.credentials import generate_key, hash_key
from outpost_contracts.envelope import PLATFORM_ORG_ID, EventEnvelope, RequestContext
from outpost_contracts.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    OrganizationCreated,
    OrganizationSuspended,
)
from outpost_contracts.rpc import Operation
from outpost_gateway.domain.credentials import CredentialCache, evolve

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def envelope(org_id: UUID, stream_id: UUID, data: Event, version: int = 1) -> EventEnvelope:
    return EventEnvelope(
        id=uuid4(),
        org_id=org_id,
        stream_id=stream_id,
        stream_type=type(data).__name__,
        version=version,
        occurred_at=NOW,
        data=data,
    )


@dataclass
class Key:
    id: UUID
    org_id: UUID
    key: str
    prefix: str


def key_created(
    org_id: UUID,
    scopes: tuple[str, ...] = ("*",),
    *,
    operator: bool = False,
    expires_at: datetime | None = None,
) -> tuple[Key, EventEnvelope]:
    key, prefix = generate_key()
    k = Key(id=uuid4(), org_id=org_id, key=key, prefix=prefix)
    event = ApiKeyCreated(
        name="k",
        prefix=prefix,
        key_hash=hash_key(key),
        scopes=scopes,
        operator=operator,
        expires_at=expires_at,
    )
    return k, envelope(org_id, k.id, event)


@dataclass
class World:
    """Two organizations (B suspended), and keys of every kind."""

    cache: CredentialCache
    org_a: UUID
    org_b: UUID
    operator: Key
    full: Key  # org A, scope *
    reader: Key  # org A, devices:read only
    devices_all: Key  # org A, devices:*
    revoked: Key
    expired: Key
    suspended: Key  # a key of org B


def build_world() -> World:
    cache = CredentialCache()
    org_a, org_b = uuid4(), uuid4()
    events = [
        envelope(org_a, org_a, OrganizationCreated(name="a")),
        envelope(org_b, org_b, OrganizationCreated(name="b")),
    ]
    operator, e = key_created(PLATFORM_ORG_ID, ("*",), operator=True)
    events.append(e)
    full, e = key_created(org_a)
    events.append(e)
    reader, e = key_created(org_a, ("devices:read",))
    events.append(e)
    devices_all, e = key_created(org_a, ("devices:*",))
    events.append(e)
    revoked, e = key_created(org_a)
    events += [e, envelope(org_a, revoked.id, ApiKeyRevoked(prefix=revoked.prefix), 2)]
    expired, e = key_created(org_a, expires_at=NOW - timedelta(seconds=1))
    events.append(e)
    suspended, e = key_created(org_b)
    events += [e, envelope(org_b, org_b, OrganizationSuspended(reason="unpaid"), 2)]
    for ev in events:
        evolve(cache, ev)
    return World(
        cache, org_a, org_b, operator, full, reader, devices_all, revoked, expired, suspended
    )


def bearer(key: Key | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key if isinstance(key, Key) else key}"}


@dataclass
class Call:
    op: Operation[Any, Any]
    ctx: RequestContext
    body: Any


@dataclass
class FakeBackend:
    """Answers each operation (by name) with a value, an exception to raise, or a function of
    (ctx, body); records every call."""

    replies: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def on(self, op: Operation[Any, Any], reply: Any) -> FakeBackend:
        self.replies[op.name] = reply
        return self

    async def call(self, op: Operation[Any, Any], ctx: RequestContext, body: Any) -> Any:
        self.calls.append(Call(op, ctx, body))
        reply = self.replies.get(op.name)
        if reply is None:
            raise AssertionError(f"no fake reply for {op.name}")
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Callable):  # type: ignore[arg-type]
            return reply(ctx, body)
        return reply

    @property
    def last(self) -> Call:
        return self.calls[-1]
