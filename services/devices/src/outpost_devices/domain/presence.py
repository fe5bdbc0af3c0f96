"""A device's presence as a pure fold over what the broker reports (ADR 0055).

Presence is the set of the device's live broker connections, each named by the server that
holds it and its client id there (``"<server id>/<cid>"``); the device is online iff the set
is not empty. The facts come from nats-server's ``$SYS.ACCOUNT.<acc>.CONNECT``/``DISCONNECT``
events, in any order and possibly twice, and from a periodic reconciliation with the
servers' own lists of open connections (``CONNZ``), which repairs whatever was missed.

- A connect for a connection already live is a repeat: nothing changes.
- A disconnect for a connection never seen (it overtook its connect) leaves a *tombstone*:
  the late connect is then ignored, so a closed connection can never make a device online.
- A quick reconnect (the new connection's connect before the old one's disconnect) keeps
  the device online throughout: the set never empties.
- ``DeviceConnected`` is decided only on offline → online, ``DeviceDisconnected`` only on
  online → offline.
- A reconciliation closes the connections a server that answered did not list (if they
  started before its snapshot: one that connected after it is not expected there), adds
  those it listed that are not tombstoned, and drops the connections of servers it is told
  are gone (a restarted nats-server has a new id and never answers for the old one), without
  a tombstone: a server that was only slow lists them again next time.

``step(state, fact, now) -> (state, events)``: no clock, no I/O; ``now`` only ages tombstones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.presence import DeviceConnected, DeviceDisconnected, Protocol

# A tombstone outlives any plausible reordering of a connection's two events; the periodic
# reconciliation repairs anything later. The newest MAX_TOMBSTONES are kept.
TOMBSTONE_TTL = timedelta(minutes=10)
MAX_TOMBSTONES = 32


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # "<server id>/<client id>"
    server_id: str
    since: datetime  # when the broker accepted it
    protocol: Protocol = Protocol.NATS


class Tombstone(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    at: datetime


class Presence(msgspec.Struct, frozen=True, kw_only=True):
    connections: tuple[Connection, ...] = ()
    closed: tuple[Tombstone, ...] = ()
    last_seen_at: datetime | None = None
    last_connected_at: datetime | None = None
    last_disconnected_at: datetime | None = None

    @property
    def online(self) -> bool:
        return bool(self.connections)

    @property
    def protocol(self) -> Protocol | None:
        if not self.connections:
            return None
        return max(self.connections, key=lambda c: c.since).protocol

    def live(self, key: str) -> bool:
        return any(c.key == key for c in self.connections)

    def tombstoned(self, key: str) -> bool:
        return any(t.key == key for t in self.closed)


# --- facts ------------------------------------------------------------------------------


class Connected(msgspec.Struct, frozen=True, kw_only=True):
    connection: Connection


class Disconnected(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    at: datetime  # when the broker closed it
    since: datetime | None = None  # when it had started (the disconnect event says)
    reason: str = ""


class Reconciled(msgspec.Struct, frozen=True, kw_only=True):
    """What the servers that answered a ``CONNZ`` said of this device."""

    answered: Mapping[str, datetime]  # server id → the time of its snapshot
    live: Sequence[Connection]  # this device's connections they listed
    gone: frozenset[str] = frozenset()  # servers that stopped answering: their connections end


class Seen(msgspec.Struct, frozen=True, kw_only=True):
    """The device published something (telemetry) at ``at``."""

    at: datetime


Fact = Connected | Disconnected | Reconciled | Seen


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _prune(closed: Sequence[Tombstone], now: datetime) -> tuple[Tombstone, ...]:
    kept = sorted((t for t in closed if t.at > now - TOMBSTONE_TTL), key=lambda t: t.at)
    return tuple(kept[-MAX_TOMBSTONES:])


def step(state: Presence | None, fact: Fact, now: datetime) -> tuple[Presence, list[Event]]:
    """The presence after ``fact``, and the events it decides (at most one)."""
    before = state or Presence()
    after = _apply(before, fact)
    after = msgspec.structs.replace(after, closed=_prune(after.closed, now))
    return after, _transition(before, after, fact)


def _apply(s: Presence, fact: Fact) -> Presence:
    if isinstance(fact, Seen):
        return msgspec.structs.replace(s, last_seen_at=_later(s.last_seen_at, fact.at))
    if isinstance(fact, Connected):
        c = fact.connection
        if s.live(c.key) or s.tombstoned(c.key):
            return s  # a repeat, or a connect overtaken by its disconnect
        return msgspec.structs.replace(
            s,
            connections=(*s.connections, c),
            last_connected_at=_later(s.last_connected_at, c.since),
            last_seen_at=_later(s.last_seen_at, c.since),
        )
    if isinstance(fact, Disconnected):
        if s.tombstoned(fact.key):
            return s  # a repeat
        closed = (*s.closed, Tombstone(key=fact.key, at=fact.at))
        remaining = tuple(c for c in s.connections if c.key != fact.key)
        if len(remaining) == len(s.connections):
            # Never seen live: it overtook its connect. Its connect is ignored when it comes;
            # the times say it was there, but the device's state did not change.
            connected = s.last_connected_at if s.online else _later(s.last_connected_at, fact.since)
            return msgspec.structs.replace(
                s,
                closed=closed,
                last_connected_at=connected,
                last_disconnected_at=s.last_disconnected_at
                if s.online
                else _later(s.last_disconnected_at, fact.at),
                last_seen_at=_later(s.last_seen_at, fact.at),
            )
        return msgspec.structs.replace(
            s,
            connections=remaining,
            closed=closed,
            last_disconnected_at=_later(s.last_disconnected_at, fact.at)
            if not remaining
            else s.last_disconnected_at,
            last_seen_at=_later(s.last_seen_at, fact.at),
        )
    return _reconcile(s, fact)


def _reconcile(s: Presence, fact: Reconciled) -> Presence:
    listed = {c.key for c in fact.live}
    kept: list[Connection] = []
    closed = list(s.closed)
    ended: datetime | None = None
    for c in s.connections:
        taken = fact.answered.get(c.server_id)
        if taken is not None:
            if c.key in listed or c.since > taken:
                kept.append(c)
            else:  # its server no longer has it: it closed while we were not listening
                closed.append(Tombstone(key=c.key, at=taken))
                ended = _later(ended, taken)
        elif c.server_id not in fact.gone:
            kept.append(c)
        else:
            ended = _later(ended, max(fact.answered.values(), default=c.since))
    known = {c.key for c in kept}
    for c in fact.live:
        if c.key not in known and not s.tombstoned(c.key):
            kept.append(c)
            known.add(c.key)
    connected = s.last_connected_at
    for c in kept:
        connected = _later(connected, c.since)
    return msgspec.structs.replace(
        s,
        connections=tuple(kept),
        closed=tuple(closed),
        last_connected_at=connected,
        last_disconnected_at=_later(s.last_disconnected_at, ended)
        if not kept
        else (s.last_disconnected_at),
    )


def _transition(before: Presence, after: Presence, fact: Fact) -> list[Event]:
    if not before.online and after.online:
        first = min(after.connections, key=lambda c: c.since)
        return [
            DeviceConnected(connected_at=first.since, protocol=first.protocol, connection=first.key)
        ]
    if before.online and not after.online:
        last = max(before.connections, key=lambda c: c.since)
        if isinstance(fact, Disconnected):
            return [
                DeviceDisconnected(disconnected_at=fact.at, connection=fact.key, reason=fact.reason)
            ]
        return [
            DeviceDisconnected(
                disconnected_at=after.last_disconnected_at or last.since,
                connection=last.key,
                reason="no longer listed by the broker",
            )
        ]
    return []
