"""What nats-server says about device connections, over a system-account connection.

- ``$SYS.ACCOUNT.<account>.CONNECT`` / ``.DISCONNECT``: one advisory per connection opened or
  closed (``io.nats.server.advisory.v1.client_connect``/``client_disconnect``), whose
  ``client`` carries ``id`` (the cid), ``start``/``stop``, ``client_type`` (``nats`` or
  ``mqtt``) and ``user``: for a device, the name the auth callout gave it
  (``device:<org id>:<device id>``, ``app/broker.py``).
- ``$SYS.REQ.SERVER.PING.CONNZ``: every server answers with its open connections (``auth``
  adds ``authorized_user``, the same name), paged by ``offset``/``limit``; the paging of one
  server continues on ``$SYS.REQ.SERVER.<id>.CONNZ``.

Shapes checked against nats-server 2.15 (the advisories and CONNZ answers of a DevStack).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from nats.aio.client import Client as NATS

from outpost_contracts.presence import Protocol
from outpost_devices.domain.presence import Connected, Connection, Disconnected

ACCOUNT = "$G"  # devices and services live in the global account (decision 54)
CONNECT_SUBJECT = f"$SYS.ACCOUNT.{ACCOUNT}.CONNECT"
DISCONNECT_SUBJECT = f"$SYS.ACCOUNT.{ACCOUNT}.DISCONNECT"
DEVICE_PREFIX = "device:"
PAGE = 1024
_log = logging.getLogger(__name__)


def device_user(org_id: UUID, device_id: UUID) -> str:
    """The broker user name of a device's connections (the callout's user JWT ``name``)."""
    return f"{DEVICE_PREFIX}{org_id}:{device_id}"


def parse_device_user(user: str) -> tuple[UUID, UUID] | None:
    """(organization, device) of a device connection's user name; None for anything else
    (a service, or a session admitted before names carried the organization)."""
    if not user.startswith(DEVICE_PREFIX):
        return None
    org, _, device = user[len(DEVICE_PREFIX) :].partition(":")
    try:
        return UUID(org), UUID(device)
    except ValueError:
        return None


def _time(text: str) -> datetime:
    # Go prints nanoseconds; Python keeps microseconds.
    head, dot, rest = text.rstrip("Z").partition(".")
    frac = rest[:6] if dot else ""
    return datetime.fromisoformat(f"{head}{'.' + frac if frac else ''}+00:00")


def _protocol(client: dict[str, Any]) -> Protocol:
    kind = str(client.get("client_type") or client.get("type") or "").lower()
    return Protocol.MQTT if kind == "mqtt" else Protocol.NATS


@dataclass(frozen=True)
class DeviceFact:
    org_id: UUID
    device_id: UUID
    fact: Connected | Disconnected


def parse_advisory(data: bytes) -> DeviceFact | None:
    """A device's connect or disconnect from a system advisory; None for anything else."""
    try:
        event = json.loads(data)
        client = event["client"]
        who = parse_device_user(str(client.get("user", "")))
        if who is None:
            return None
        server_id = str(event["server"]["id"])
        key = f"{server_id}/{int(client['id'])}"
        since = _time(client["start"])
        if event["type"].endswith("client_connect"):
            fact: Connected | Disconnected = Connected(
                connection=Connection(
                    key=key, server_id=server_id, since=since, protocol=_protocol(client)
                )
            )
        elif event["type"].endswith("client_disconnect"):
            stop = client.get("stop") or event.get("timestamp")
            fact = Disconnected(
                key=key, at=_time(stop), since=since, reason=str(event.get("reason", ""))
            )
        else:
            return None
    except (KeyError, TypeError, ValueError) as exc:
        _log.warning("presence: ignoring a malformed broker advisory: %s", exc)
        return None
    return DeviceFact(who[0], who[1], fact)


@dataclass
class Snapshot:
    """The open device connections of every server that answered, and when each looked.

    A server with more than one page of connections is ``partial``: connections that close
    between two pages shift the offsets, so an open one can be missed. Its absences are not
    trusted (nothing is closed for it); what it lists is."""

    answered: dict[str, datetime] = field(default_factory=dict)
    devices: dict[tuple[UUID, UUID], list[Connection]] = field(default_factory=dict)
    partial: set[str] = field(default_factory=set)

    @property
    def complete(self) -> dict[str, datetime]:
        """The servers whose listing can be trusted for what it lacks."""
        return {s: t for s, t in self.answered.items() if s not in self.partial}

    def add_page(self, data: dict[str, Any]) -> tuple[str, int, int]:
        """Fold one CONNZ answer in; (server id, connections so far, total)."""
        server_id = str(data["server_id"])
        self.answered.setdefault(server_id, _time(data["now"]))
        for conn in data.get("connections") or []:
            who = parse_device_user(str(conn.get("authorized_user", "")))
            if who is None:
                continue
            self.devices.setdefault(who, []).append(
                Connection(
                    key=f"{server_id}/{int(conn['cid'])}",
                    server_id=server_id,
                    since=_time(conn["start"]),
                    protocol=_protocol(conn),
                )
            )
        return (
            server_id,
            int(data.get("offset", 0)) + len(data.get("connections") or []),
            int(data.get("total", 0)),
        )


async def connz(system: NATS, *, wait: float = 2.0, settle: float = 0.3) -> Snapshot:
    """Ask every server for its open connections in ``$G`` (all pages). Servers answer a PING
    in any number; collection stops ``settle`` s after the last answer (or at ``wait``)."""
    snapshot = Snapshot()
    answers: asyncio.Queue[bytes] = asyncio.Queue()
    inbox = system.new_inbox()

    async def on_answer(msg: Any) -> None:
        answers.put_nowait(msg.data)

    sub = await system.subscribe(inbox, cb=on_answer)
    options = {"acc": ACCOUNT, "auth": True, "limit": PAGE}
    more: list[tuple[str, int]] = []
    try:
        await system.publish(
            "$SYS.REQ.SERVER.PING.CONNZ", json.dumps(options).encode(), reply=inbox
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        timeout = wait
        while True:
            try:
                raw = await asyncio.wait_for(answers.get(), timeout)
            except TimeoutError:
                break
            server_id, seen, total = snapshot.add_page(json.loads(raw)["data"])
            if seen < total:
                more.append((server_id, seen))
                snapshot.partial.add(server_id)
            timeout = min(settle, max(0.0, deadline - loop.time()))
    finally:
        await sub.unsubscribe()
    for server_id, offset in more:
        while True:
            reply = await system.request(
                f"$SYS.REQ.SERVER.{server_id}.CONNZ",
                json.dumps({**options, "offset": offset}).encode(),
                timeout=wait,
            )
            page = json.loads(reply.data)["data"]
            _, offset, total = snapshot.add_page(page)
            if offset >= total or not page.get("connections"):
                break
    return snapshot
