"""nats-server's auth callout protocol (nats-server docs, "Auth Callout").

nats-server sends every connection that is not a service user to ``$SYS.REQ.USER.AUTH`` as
an ``authorization_request`` JWT; the answer is an ``authorization_response`` JWT signed by
the issuer account nkey, carrying either a user JWT (same issuer) with the connection's
permissions, or an error. JWTs here are ``ed25519-nkey`` JWTs, encoded by hand: a header, the
claims and an nkey signature, each base64url without padding.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import nkeys
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from outpost_contracts import subjects
from outpost_contracts.errors import OutpostError
from outpost_devices.adapters import presence_store

CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
QUEUE = "outpost-devices-callout"
GLOBAL_ACCOUNT = "$G"  # the account of a server without operator mode: services and devices
_log = logging.getLogger(__name__)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class CalloutRequest:
    user_nkey: str
    server_id: str
    chain_pems: list[str]  # the presented certificate first, then its chain
    kind: str  # "Client", or the listener's kind for MQTT/WebSocket/leafnode connections
    client_id: int = 0  # the connection's id on that server (what a KICK names)
    user: str = ""  # the user and password of the CONNECT (an integration's, ADR 0097)
    password: str = ""


def parse_request(token: str) -> CalloutRequest:
    """The parts of an ``authorization_request`` the decision needs. nats-server's signature
    is not checked: only service users (trusted) can publish on the callout subject."""
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
        nats = claims["nats"]
        tls = nats.get("client_tls") or {}
        chains = tls.get("verified_chains") or []
        chain = list(chains[0]) if chains else list(tls.get("certs") or [])
        return CalloutRequest(
            user_nkey=nats["user_nkey"],
            server_id=nats["server_id"]["id"],
            chain_pems=chain,
            kind=str((nats.get("client_info") or {}).get("kind", "")),
            client_id=int((nats.get("client_info") or {}).get("id", 0)),
            user=str((nats.get("connect_opts") or {}).get("user") or ""),
            password=str((nats.get("connect_opts") or {}).get("pass") or ""),
        )
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an authorization request: {exc}") from None


class Issuer:
    """Signs JWTs with the issuer account nkey (``OUTPOST_DEVICES_BROKER_ISSUER_SEED``)."""

    def __init__(self, seed: str) -> None:
        self._pair = nkeys.from_seed(seed.encode())
        self.public_key = self._pair.public_key.decode()

    def sign(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        body = dict(claims, iss=self.public_key, iat=int(time.time()))
        body["jti"] = ""
        body["jti"] = _b64(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest())
        payload = _b64(json.dumps(body).encode())
        signature = self._pair.sign(f"{header}.{payload}".encode())
        return f"{header}.{payload}.{_b64(signature)}"

    def user(self, request: CalloutRequest, name: str, perms: dict[str, Any], exp: datetime) -> str:
        return self.sign(
            {
                "sub": request.user_nkey,
                "name": name,
                "aud": GLOBAL_ACCOUNT,
                "exp": int(exp.timestamp()),
                "nats": {**perms, "type": "user", "version": 2},
            }
        )

    def response(self, request: CalloutRequest, *, jwt: str = "", error: str = "") -> str:
        nats: dict[str, Any] = {"type": "authorization_response", "version": 2}
        if jwt:
            nats["jwt"] = jwt
        else:
            nats["error"] = error or "not authorized"
        return self.sign({"sub": request.user_nkey, "aud": request.server_id, "nats": nats})


Decide = Callable[[CalloutRequest], Awaitable[tuple[str, dict[str, Any], datetime]]]


class CalloutResponder:
    """Answers ``$SYS.REQ.USER.AUTH`` (a queue group: any devices replica may answer)."""

    def __init__(self, nc: NATS, issuer: Issuer, decide: Decide) -> None:
        self.nc = nc
        self.issuer = issuer
        self.decide = decide

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.nc.subscribe(CALLOUT_SUBJECT, queue=QUEUE, cb=self._on_request)
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()

    async def _on_request(self, msg: Msg) -> None:
        try:
            request = parse_request(msg.data.decode())
        except ValueError as exc:
            _log.warning("ignoring a malformed auth callout request: %s", exc)
            return
        try:
            name, perms, exp = await self.decide(request)
            answer = self.issuer.response(request, jwt=self.issuer.user(request, name, perms, exp))
            _log.info("broker: admitted %s", name)
        except OutpostError as exc:
            _log.info("broker: refused a connection: %s", exc)
            answer = self.issuer.response(request, error=str(exc))
        except Exception:
            _log.exception("broker: the auth callout failed")
            answer = self.issuer.response(request, error="authorization failed")
        if msg.reply:
            await msg.respond(answer.encode())


class _DeviceEvent(msgspec.Struct, rename="camel"):
    """What a device event's envelope says about whose it is (the rest is not needed)."""

    org_id: UUID
    stream_id: UUID


# How long a replica refuses an organization on the word of a core-NATS
# ``OrganizationSuspended`` alone: its ``devices-organizations`` consumer records the
# suspension in the table well within this, and the table decides from then on.
SUSPENSION_MEMORY_SECONDS = 60.0


class Sessions:
    """Closes a device's broker connections when it is decommissioned, a certificate of it
    revoked or its organization suspended: nats-server's ``$SYS.REQ.SERVER.<id>.KICK`` over
    a system-account connection; the callout refuses the reconnection. Every replica hears
    the events (a plain subscription, no queue group) and kicks the connections it admitted
    itself (known at once, before presence has heard of them) and the ones presence
    recorded for the device, or for every online device of the suspended organization (so
    a connection admitted by a replica that has since restarted is closed too). Kicking a
    connection twice, or one already gone, is harmless. This is what lets a broker session
    last long (``OUTPOST_DEVICES_BROKER_SESSION_SECONDS``): revocation does not wait for the
    session to end.

    A suspension is also remembered here for ``SUSPENSION_MEMORY_SECONDS`` (``refuses``), so
    a kicked device reconnecting before the ``devices-organizations`` consumer has recorded
    it in ``organization_suspensions`` is refused all the same (decision 76)."""

    def __init__(
        self,
        nc: NATS,
        system: NATS,
        uow_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nc = nc
        self.system = system
        self.uow_factory = uow_factory
        self.clock = clock
        self._by_device: dict[UUID, set[tuple[str, int]]] = {}
        self._org_devices: dict[UUID, set[UUID]] = {}
        self._suspended: dict[UUID, float] = {}  # organization → until (clock)
        # Integrations (ADR 0097): the connections this replica admitted, by integration and
        # by organization, and the rotations and revocations heard a moment ago
        # (integration → (until, the new password's hash or None when revoked)).
        self._by_integration: dict[UUID, set[tuple[str, int]]] = {}
        self._org_integrations: dict[UUID, set[UUID]] = {}
        self._changed: dict[UUID, tuple[float, str | None]] = {}

    def admitted(
        self, device_id: UUID, request: CalloutRequest, org_id: UUID | None = None
    ) -> None:
        self._by_device.setdefault(device_id, set()).add((request.server_id, request.client_id))
        if org_id is not None:
            self._org_devices.setdefault(org_id, set()).add(device_id)

    def integration_admitted(
        self, integration_id: UUID, org_id: UUID, request: CalloutRequest
    ) -> None:
        connection = (request.server_id, request.client_id)
        self._by_integration.setdefault(integration_id, set()).add(connection)
        self._org_integrations.setdefault(org_id, set()).add(integration_id)

    def refuses_integration(self, integration_id: UUID, presented_hash: str) -> bool:
        """Whether this replica heard the integration revoked, or its password rotated away
        from ``presented_hash``, a moment ago (before its table may say so)."""
        found = self._changed.get(integration_id)
        if found is None:
            return False
        until, current = found
        if until <= self.clock():
            del self._changed[integration_id]
            return False
        return current is None or current != presented_hash

    def heard_password(self, integration_id: UUID) -> str | None:
        """The hash of a rotation heard a moment ago (the table may not have it yet)."""
        found = self._changed.get(integration_id)
        return None if found is None or found[0] <= self.clock() else found[1]

    async def integration_changed(self, integration_id: UUID, password_hash: str | None) -> int:
        """Revoked (``password_hash`` None) or rotated: close its connections this replica
        admitted, and refuse the old password until the table has it."""
        self._changed[integration_id] = (self.clock() + SUSPENSION_MEMORY_SECONDS, password_hash)
        kicked = await self._kick(self._by_integration.pop(integration_id, set()))
        _log.info("broker: integration %s changed: %d connections closed", integration_id, kicked)
        return kicked

    def refuses(self, org_id: UUID) -> bool:
        """Whether this replica heard the organization suspended a moment ago."""
        until = self._suspended.get(org_id)
        if until is None:
            return False
        if until <= self.clock():
            del self._suspended[org_id]
            return False
        return True

    async def recorded(self, org_id: UUID, device_id: UUID) -> set[tuple[str, int]]:
        """The live connections presence recorded for the device."""
        if self.uow_factory is None:
            return set()
        async with self.uow_factory(org_id) as uow:
            state = (await presence_store.states(uow, [device_id])).get(device_id)
        return _connections(state.connections if state is not None else ())

    async def recorded_in(self, org_id: UUID) -> set[tuple[str, int]]:
        """The live connections presence recorded for every online device of the tenant."""
        if self.uow_factory is None:
            return set()
        async with self.uow_factory(org_id) as uow:
            states = await presence_store.online_states(uow)
        return _connections(conn for state in states.values() for conn in state.connections)

    async def kick(self, device_id: UUID, org_id: UUID | None = None) -> int:
        targets = self._by_device.pop(device_id, set())
        if org_id is not None:
            try:
                targets |= await self.recorded(org_id, device_id)
            except Exception as exc:  # the database is away: the admitted ones still go
                _log.warning("broker: presence of %s unreadable for a kick: %s", device_id, exc)
        return await self._kick(targets)

    async def kick_organization(self, org_id: UUID) -> int:
        """Close every connection of the organization's devices (its suspension)."""
        targets: set[tuple[str, int]] = set()
        for device_id in self._org_devices.pop(org_id, set()):
            targets |= self._by_device.pop(device_id, set())
        for integration_id in self._org_integrations.pop(org_id, set()):
            targets |= self._by_integration.pop(integration_id, set())
        try:
            targets |= await self.recorded_in(org_id)
        except Exception as exc:  # the database is away: the admitted ones still go
            _log.warning("broker: presence of %s unreadable for a kick: %s", org_id, exc)
        return await self._kick(targets)

    async def _kick(self, targets: set[tuple[str, int]]) -> int:
        kicked = 0
        for server_id, cid in targets:
            try:
                await self.system.request(
                    f"$SYS.REQ.SERVER.{server_id}.KICK",
                    json.dumps({"cid": cid}).encode(),
                    timeout=2,
                )
                kicked += 1
            except Exception as exc:  # gone already, or the server is away: nothing to close
                _log.info("broker: kick of connection %s on %s: %s", cid, server_id, exc)
        return kicked

    async def run(self, stop: asyncio.Event) -> None:
        filters = [
            subjects.event_filter("devices", "DeviceDecommissioned"),
            subjects.event_filter("devices", "DeviceCertificateRevoked"),
        ]
        subs = [await self.nc.subscribe(f, cb=self._on_event) for f in filters]
        subs += [
            await self.nc.subscribe(subjects.event_filter("identity", name), cb=self._on_org)
            for name in (SUSPENDED, REINSTATED)
        ]
        subs += [
            await self.nc.subscribe(
                subjects.event_filter("identity", name), cb=self._on_integration
            )
            for name in (INTEGRATION_REVOKED, INTEGRATION_ROTATED)
        ]
        try:
            await stop.wait()
        finally:
            for sub in subs:
                await sub.unsubscribe()
            await self.system.close()

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = msgspec.json.decode(msg.data, type=_DeviceEvent)
        except msgspec.DecodeError:
            return
        if await self.kick(event.stream_id, event.org_id):
            _log.info("broker: disconnected device %s (%s)", event.stream_id, msg.subject)

    async def _on_org(self, msg: Msg) -> None:
        try:
            event = msgspec.json.decode(msg.data, type=_DeviceEvent)
        except msgspec.DecodeError:
            return
        await self.organization_changed(event.stream_id, suspended=f".{SUSPENDED}." in msg.subject)

    async def _on_integration(self, msg: Msg) -> None:
        try:
            event = msgspec.json.decode(msg.data, type=_IntegrationEvent)
        except msgspec.DecodeError:
            return
        await self.integration_changed(event.stream_id, event.data.password_hash)

    async def organization_changed(self, org_id: UUID, *, suspended: bool) -> int:
        """``OrganizationSuspended``: refuse and disconnect its devices; ``Reinstated``: stop
        refusing on this replica's word (the table is cleared by the consumer)."""
        if not suspended:
            self._suspended.pop(org_id, None)
            return 0
        self._suspended[org_id] = self.clock() + SUSPENSION_MEMORY_SECONDS
        kicked = await self.kick_organization(org_id)
        _log.info("broker: organization %s suspended: %d connections closed", org_id, kicked)
        return kicked


SUSPENDED = "OrganizationSuspended"
REINSTATED = "OrganizationReinstated"
INTEGRATION_REVOKED = "IntegrationRevoked"
INTEGRATION_ROTATED = "IntegrationCredentialRotated"


class _IntegrationData(msgspec.Struct, rename="camel"):
    password_hash: str | None = None  # a rotation's; a revocation has none


class _IntegrationEvent(msgspec.Struct, rename="camel"):
    stream_id: UUID
    data: _IntegrationData


def _connections(conns: Any) -> set[tuple[str, int]]:
    """(server id, client id) of presence's connection keys (``<server id>/<cid>``)."""
    found: set[tuple[str, int]] = set()
    for conn in conns:
        server_id, _, cid = conn.key.rpartition("/")
        if cid.isdigit():
            found.add((server_id, int(cid)))
    return found
