"""The presence fold, for every order its facts can arrive in (ADR 0055)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from outpost_contracts.presence import DeviceConnected, DeviceDisconnected, Protocol
from outpost_devices.domain.presence import (
    MAX_TOMBSTONES,
    TOMBSTONE_TTL,
    Connected,
    Connection,
    Disconnected,
    Fact,
    Presence,
    Reconciled,
    Seen,
    step,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
S = "NSERVER"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def conn(cid: int, since: float, protocol: Protocol = Protocol.NATS, server: str = S) -> Connection:
    return Connection(key=f"{server}/{cid}", server_id=server, since=at(since), protocol=protocol)


def connect(cid: int, since: float, protocol: Protocol = Protocol.NATS) -> Connected:
    return Connected(connection=conn(cid, since, protocol))


def disconnect(cid: int, stop: float, since: float | None = None) -> Disconnected:
    return Disconnected(
        key=f"{S}/{cid}", at=at(stop), since=None if since is None else at(since), reason="Closed"
    )


def run(facts: list[Fact], state: Presence | None = None) -> tuple[Presence, list[object]]:
    events: list[object] = []
    for fact in facts:
        state, decided = step(state, fact, at(100))
        events.extend(decided)
    assert state is not None
    return state, events


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_connect_then_disconnect_flips_online_and_back() -> None:
    state, events = run([connect(1, 1)])
    assert state.online and state.last_connected_at == at(1) and state.protocol is Protocol.NATS
    assert events == [
        DeviceConnected(connected_at=at(1), protocol=Protocol.NATS, connection=f"{S}/1")
    ]
    state, events = run([disconnect(1, 5, 1)], state)
    assert not state.online and state.last_disconnected_at == at(5)
    assert events == [
        DeviceDisconnected(disconnected_at=at(5), connection=f"{S}/1", reason="Closed")
    ]
    assert state.last_seen_at == at(5)


def test_repeats_change_nothing() -> None:
    state, events = run([connect(1, 1), connect(1, 1), disconnect(1, 5), disconnect(1, 5)])
    assert not state.online
    assert kinds(events) == ["DeviceConnected", "DeviceDisconnected"]
    # and a repeat of the connect after both: the tombstone holds
    state, events = run([connect(1, 1)], state)
    assert not state.online and events == []


def test_a_disconnect_before_its_connect_leaves_the_device_offline() -> None:
    state, events = run([disconnect(1, 5, since=1), connect(1, 1)])
    assert not state.online
    assert events == []
    # the times still say it was there
    assert state.last_connected_at == at(1) and state.last_disconnected_at == at(5)


def test_a_quick_reconnect_keeps_the_device_online() -> None:
    # the new connection's connect arrives before the old one's disconnect
    state, events = run([connect(1, 1), connect(2, 9, Protocol.MQTT), disconnect(1, 10)])
    assert state.online and state.protocol is Protocol.MQTT
    assert kinds(events) == ["DeviceConnected"]
    assert state.last_connected_at == at(9)


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(4))), ids=lambda o: "".join(map(str, o))
)
def test_every_interleaving_of_two_connections(order: tuple[int, ...]) -> None:
    """Connection 1 (1 → 10) and connection 2 (5 → 20), their four events in every order:
    both closed in the end, so offline; never a DeviceDisconnected while one is live, and
    the events alternate, starting with a connect."""
    facts: list[Fact] = [connect(1, 1), disconnect(1, 10, 1), connect(2, 5), disconnect(2, 20, 5)]
    state, events = run([facts[i] for i in order])
    assert not state.online
    names = kinds(events)
    assert all(a != b for a, b in itertools.pairwise(names)), names
    if names:
        assert names[0] == "DeviceConnected" and names[-1] == "DeviceDisconnected"
    assert state.last_disconnected_at is not None


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(3))), ids=lambda o: "".join(map(str, o))
)
def test_with_one_connection_left_open_the_device_ends_online(order: tuple[int, ...]) -> None:
    facts: list[Fact] = [connect(1, 1), disconnect(1, 10, 1), connect(2, 5)]
    state, events = run([facts[i] for i in order])
    assert state.online and [c.key for c in state.connections] == [f"{S}/2"]
    assert kinds(events)[-1] == "DeviceConnected"


def test_reconcile_closes_what_the_broker_no_longer_lists() -> None:
    state, _ = run([connect(1, 1)])
    state, events = step(state, Reconciled(answered={S: at(50)}, live=[]), at(50))
    assert not state.online and state.last_disconnected_at == at(50)
    assert kinds(events) == ["DeviceDisconnected"]
    # its late connect (a repeat) cannot bring it back
    state, events = step(state, connect(1, 1), at(51))
    assert not state.online and events == []


def test_reconcile_adds_what_the_broker_lists() -> None:
    state, events = step(None, Reconciled(answered={S: at(50)}, live=[conn(7, 40)]), at(50))
    assert state.online and state.last_connected_at == at(40)
    assert events == [
        DeviceConnected(connected_at=at(40), protocol=Protocol.NATS, connection=f"{S}/7")
    ]
    # the connect event that was missed, arriving after all: a repeat
    state, events = step(state, connect(7, 40), at(51))
    assert events == [] and len(state.connections) == 1


def test_reconcile_keeps_a_connection_newer_than_its_snapshot() -> None:
    state, _ = run([connect(1, 60)])
    state, events = step(state, Reconciled(answered={S: at(50)}, live=[]), at(61))
    assert state.online and events == []


def test_reconcile_does_not_revive_a_connection_closed_since_its_snapshot() -> None:
    state, _ = run([connect(1, 1), disconnect(1, 55)])
    state, events = step(state, Reconciled(answered={S: at(50)}, live=[conn(1, 1)]), at(56))
    assert not state.online and events == []


def test_reconcile_leaves_silent_servers_alone_unless_they_are_gone() -> None:
    other = Connection(key="NOTHER/3", server_id="NOTHER", since=at(1))
    state, _ = step(None, Connected(connection=other), at(1))
    kept, events = step(state, Reconciled(answered={S: at(50)}, live=[]), at(50))
    assert kept.online and events == []
    dropped, events = step(
        state, Reconciled(answered={S: at(50)}, live=[], gone=frozenset({"NOTHER"})), at(50)
    )
    assert not dropped.online and kinds(events) == ["DeviceDisconnected"]
    # no tombstone: a server that was only slow lists it again
    back, events = step(dropped, Reconciled(answered={"NOTHER": at(60)}, live=[other]), at(60))
    assert back.online and kinds(events) == ["DeviceConnected"]


def test_telemetry_moves_last_seen_forward_only() -> None:
    state, events = run([Seen(at=at(30)), Seen(at=at(20))])
    assert state.last_seen_at == at(30) and events == [] and not state.online


def test_tombstones_age_and_are_bounded() -> None:
    state, _ = step(None, disconnect(1, 0), at(0))
    assert state.closed
    state, _ = step(state, Seen(at=at(1)), at(0) + TOMBSTONE_TTL + timedelta(seconds=1))
    assert state.closed == ()
    for cid in range(MAX_TOMBSTONES + 5):
        state, _ = step(state, disconnect(cid + 10, cid), at(0))
    assert len(state.closed) == MAX_TOMBSTONES
