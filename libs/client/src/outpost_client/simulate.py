"""Simulated devices: provision them through the gateway, connect them to the broker over
NATS or MQTT with their certificates (mutual TLS + the devices service's auth callout), and
publish telemetry at a rate (docs/api.md, "Registration and provisioning", "Device protocol").

This is ``outpost device simulate`` (``outpost_client.cli``) and the load generator of
``bench/devices.py`` (decision 68): nothing here knows about the benchmark. The MQTT side
is a minimal MQTT 3.1.1 client on asyncio streams (CONNECT, PUBLISH at QoS 0 and 1, PUBACK,
DISCONNECT) rather than paho-mqtt, whose thread per client and per-message objects would
cost more CPU than the broker it loads on a 2-core machine (the same reason
``bench/loadgen.py`` speaks HTTP/1.1 by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import ssl
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outpost_client.errors import OutpostError

TOKENS = "/api/v1/devices/registration/tokens"
PROVISION = "/api/v1/devices/provision"


# -- provisioning ---------------------------------------------------------------------


class ProvisioningError(OutpostError, RuntimeError):
    """The gateway refused a registration token or a CSR."""


def key_and_csr() -> tuple[bytes, str]:
    """A new P-256 key (PKCS#8 PEM) and a CSR for it. The subject is a placeholder: the
    server chooses the certificate's subject and SANs, never copying the CSR's."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, csr


@dataclass(frozen=True)
class SimDevice:
    """A provisioned device: its ids, files (key; certificate followed by its organization's
    CA) and subject. Plain data, so it can be handed to another process."""

    device_id: str
    name: str
    key_file: str
    chain_file: str
    telemetry_subject: str
    nats_url: str = ""
    mqtt_url: str = ""
    command_subject: str = ""

    @property
    def mqtt_topic(self) -> str:
        return self.telemetry_subject.replace(".", "/")

    def tls(self, broker_ca: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=broker_ca)
        context.load_cert_chain(self.chain_file, self.key_file)
        return context


async def provision_one(http: Any, api_key: str, name: str, directory: Path) -> SimDevice:
    """Issue a registration token for ``name`` (creating the device), redeem it with a CSR
    and keep the key and certificate chain under ``directory``. ``http`` is an
    ``httpx.AsyncClient`` on the gateway."""
    issued = await http.post(
        TOKENS, json={"deviceName": name}, headers={"Authorization": f"Bearer {api_key}"}
    )
    if issued.status_code != 201:
        raise ProvisioningError(
            f"registration token for {name}: {issued.status_code} {issued.text}"
        )
    key_pem, csr = key_and_csr()
    resp = await http.post(PROVISION, json={"token": issued.json()["token"], "csr": csr})
    if resp.status_code != 201:
        raise ProvisioningError(f"provisioning {name}: {resp.status_code} {resp.text}")
    body = resp.json()
    key_file = directory / f"{body['deviceId']}.key"
    chain_file = directory / f"{body['deviceId']}.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    chain_file.write_text(body["certificate"] + body["caChain"])
    device = SimDevice(
        device_id=body["deviceId"],
        name=name,
        key_file=str(key_file),
        chain_file=str(chain_file),
        telemetry_subject=body["telemetrySubject"],
        nats_url=body.get("natsUrl", ""),
        mqtt_url=body.get("mqttUrl", ""),
        command_subject=body.get("commandSubject", ""),
    )
    # Kept beside its key, so a later run connects with these credentials (``kept``).
    (directory / f"{body['deviceId']}.json").write_text(json.dumps(dataclasses.asdict(device)))
    return device


def kept(directory: Path) -> list[SimDevice]:
    """The devices provisioned earlier into ``directory`` (their credentials and subjects),
    by name."""
    found = []
    for path in sorted(directory.glob("*.json")):
        fields = json.loads(path.read_text())
        found.append(SimDevice(**fields))
    return sorted(found, key=lambda d: d.name)


async def provision(
    gateway_url: str,
    api_key: str,
    count: int,
    directory: Path,
    *,
    concurrency: int = 16,
    prefix: str = "",
    names: Sequence[str] = (),
) -> list[SimDevice]:
    """Provision ``count`` devices named ``<prefix>-<n>`` (default ``sim-<run>``), or the
    devices ``names`` (created if missing), ``concurrency`` at a time."""
    import httpx

    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    run = prefix or f"sim-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as http:

        async def one(n: int) -> SimDevice:
            async with gate:
                return await provision_one(http, api_key, f"{run}-{n:05d}", directory)

        if names:

            async def named(name: str) -> SimDevice:
                async with gate:
                    return await provision_one(http, api_key, name, directory)

            return list(await asyncio.gather(*(named(n) for n in names)))
        return list(await asyncio.gather(*(one(n) for n in range(count))))


# -- telemetry --------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def telemetry_payload(seq: int, ts: str, value: float, sensor: str = "temperature") -> bytes:
    """One message of the device protocol with one reading (docs/api.md, "Device protocol")."""
    return (
        f'{{"seq":{seq},"readings":[{{"sensor":"{sensor}","ts":"{ts}","value":{value:.2f}}}]}}'
    ).encode()


# -- MQTT 3.1.1, the few packets a device needs ------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def mqtt_connect_packet(
    client_id: str, *, username: str = "", password: str = "", keepalive: int = 600
) -> bytes:
    flags = 0x02  # clean session
    payload = _string(client_id)
    if username:
        flags |= 0x80
        payload += _string(username)
    if password:
        flags |= 0x40
        payload += _string(password)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return bytes([0x10]) + _varint(len(body)) + body


def mqtt_publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


class MqttError(Exception):
    pass


class MqttClient:
    """One MQTT 3.1.1 connection over TLS: connect (CONNACK awaited), publish at QoS 0 or 1
    (PUBACKs counted, at most ``window`` unacknowledged), disconnect."""

    def __init__(self, window: int = 64) -> None:
        self.window = window
        self.inflight = 0
        self.acked = 0
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connack: asyncio.Future[int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.room = asyncio.Event()  # set when a PUBACK frees the window
        self.closed = False

    async def connect(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        client_id: str,
        *,
        username: str = "",
        password: str = "",
        connect_timeout: float = 10,
    ) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls), connect_timeout
        )
        self._reader, self._writer = reader, writer
        self._connack = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._read())
        writer.write(mqtt_connect_packet(client_id, username=username, password=password))
        try:
            code = await asyncio.wait_for(self._connack, connect_timeout)
        except BaseException:
            await self.close()
            raise
        if code != 0:
            await self.close()
            raise MqttError(f"CONNACK return code {code}")

    async def _read(self) -> None:
        assert self._reader is not None
        reader = self._reader
        try:
            while True:
                head = await reader.readexactly(2)
                length, shift, byte = 0, 0, head[1]
                while True:
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    byte = (await reader.readexactly(1))[0]
                body = await reader.readexactly(length) if length else b""
                kind = head[0] >> 4
                if kind == 2 and self._connack and not self._connack.done():  # CONNACK
                    self._connack.set_result(body[1])
                elif kind == 4:  # PUBACK
                    self.inflight -= 1
                    self.acked += 1
                    self.room.set()
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError) as exc:
            if self._connack and not self._connack.done():
                self._connack.set_exception(MqttError(f"connection closed: {exc!r}"))
        finally:
            self.closed = True
            self.room.set()

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Queue one PUBLISH; False (nothing sent) when QoS 1 and the window is full."""
        assert self._writer is not None
        if self.closed:
            raise MqttError("connection closed")
        packet_id = 0
        if qos:
            if self.inflight >= self.window:
                self.room.clear()
                return False
            self._next_id = self._next_id % 65535 + 1
            packet_id = self._next_id
            self.inflight += 1
        self._writer.write(mqtt_publish_packet(topic, payload, qos, packet_id))
        return True

    async def drain(self) -> None:
        assert self._writer is not None
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(Exception):
            self._writer.write(b"\xe0\x00")  # DISCONNECT
            await self._writer.drain()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._writer = None


# -- connecting and publishing ------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect: a device (its certificate; the callout decides) or a
    service user (``user``/``password``, with the service certificate, or none on a plain
    server)."""

    protocol: str  # "nats" or "mqtt"
    host: str
    port: int
    tls: bool = True
    broker_ca: str = ""
    cert_file: str = ""
    key_file: str = ""
    user: str = ""
    password: str = ""

    def context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.broker_ca or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class Client:
    """One connection to open: an endpoint and a client id, publishing on ``subject``."""

    endpoint: Endpoint
    client_id: str
    subject: str


def device_client(device: SimDevice, protocol: str, host: str, port: int, ca: str) -> Client:
    endpoint = Endpoint(
        protocol, host, port, broker_ca=ca, cert_file=device.chain_file, key_file=device.key_file
    )
    return Client(endpoint, device.device_id, device.telemetry_subject)


class Connected:
    """An open connection of either protocol, with the one operation a device needs."""

    def __init__(self, client: Client, handle: Any) -> None:
        self.client = client
        self.handle = handle
        self.topic = client.subject.replace(".", "/")
        self.seq = 0

    @property
    def is_mqtt(self) -> bool:
        return isinstance(self.handle, MqttClient)


async def open_connection(
    client: Client, context: ssl.SSLContext | None, connect_timeout: float = 10
) -> Connected:
    """Connect (TLS handshake, the broker's authentication, the callout for a device) and
    return once the broker has admitted the connection: nats-py's connect returns after
    the server's PONG, MQTT after a successful CONNACK."""
    ep = client.endpoint
    if ep.protocol == "mqtt":
        mqtt = MqttClient()
        await mqtt.connect(
            ep.host,
            ep.port,
            context,
            client.client_id,
            username=ep.user,
            password=ep.password,
            connect_timeout=connect_timeout,
        )
        return Connected(client, mqtt)
    import nats

    auth = f"{ep.user}:{ep.password}@" if ep.user else ""
    scheme = "tls" if ep.tls else "nats"

    async def ignore(exc: Exception) -> None:
        pass

    nc = await nats.connect(
        f"{scheme}://{auth}{ep.host}:{ep.port}",
        tls=context,
        name=client.client_id,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=connect_timeout,
        error_cb=ignore,
    )
    return Connected(client, nc)


async def close_connection(conn: Connected) -> None:
    with contextlib.suppress(Exception):
        await conn.handle.close()


@dataclass
class Published:
    sent: int = 0  # handed to the connection (QoS 0 and NATS: all a publisher can know)
    acked: int = 0  # QoS 1: PUBACKs received
    refused: int = 0  # connections that closed under us


async def publish(
    conns: Sequence[Connected],
    *,
    until: float,
    rate: float = 0.0,
    qos: int = 0,
    value: float = 21.5,
    values: Callable[[Connected, float], float] | None = None,
    sensor: str = "temperature",
) -> Published:
    """Every connection publishes telemetry, one message per round, until ``until``
    (``time.monotonic()``); ``rate`` is messages/s per device (0: as fast as the broker
    and this process allow). Each message has the device's next ``seq`` and the current
    time. Flow control: the NATS client's pending buffer, the MQTT stream's write buffer
    (drained each round) and, at QoS 1, each connection's window of unacknowledged
    messages."""
    out = Published()
    acked_before = sum(c.handle.acked for c in conns if c.is_mqtt)
    live = list(conns)
    start = time.monotonic()
    rounds = 0
    ts_at, ts = 0.0, ""
    while live:
        now = time.monotonic()
        if now >= until:
            break
        if rate > 0:
            due = start + rounds / rate
            if due > now:
                await asyncio.sleep(min(due, until) - now)
                continue
        if now - ts_at >= 0.001:
            ts_at, ts = now, rfc3339(time.time())
        blocked = 0
        for conn in live:
            reading = value if values is None else values(conn, now - start)
            payload = telemetry_payload(conn.seq + 1, ts, reading, sensor)
            try:
                if conn.is_mqtt:
                    if not conn.handle.publish(conn.topic, payload, qos):
                        blocked += 1
                        continue
                else:
                    await conn.handle.publish(conn.client.subject, payload)
            except Exception:
                out.refused += 1
                live.remove(conn)
                break
            conn.seq += 1
            out.sent += 1
        rounds += 1
        if blocked == len(live) and live:
            waits = [asyncio.ensure_future(c.handle.room.wait()) for c in live]
            await asyncio.wait(waits, timeout=1, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        for conn in live:
            if conn.is_mqtt:
                await conn.handle.drain()
        await asyncio.sleep(0)
    out.acked = sum(c.handle.acked for c in conns if c.is_mqtt) - acked_before
    return out


async def settle(conns: Sequence[Connected], seconds: float = 10) -> None:
    """Wait until what was published has reached the broker: a NATS flush (PING/PONG) per
    connection, every QoS 1 message acknowledged."""
    deadline = time.monotonic() + seconds
    for conn in conns:
        left = max(0.1, deadline - time.monotonic())
        with contextlib.suppress(Exception):
            if conn.is_mqtt:
                await conn.handle.drain()
                while conn.handle.inflight > 0 and not conn.handle.closed:
                    if time.monotonic() > deadline:
                        break
                    conn.handle.room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(conn.handle.room.wait(), left)
            else:
                await conn.handle.flush(timeout=left)


# -- desired state ------------------------------------------------------------------------

STATE_COMMAND = "outpost.state"  # the desired-state delivery (docs/api.md, "Device protocol")


def command_subject(device: SimDevice) -> str:
    """The device's command subject (from provisioning; from its telemetry subject for
    credentials kept before provisioning named it)."""
    if device.command_subject:
        return device.command_subject
    prefix, _tel, org, device_id = device.telemetry_subject.split(".")
    return f"{prefix}.cmd.{org}.{device_id}"


def with_drift(desired: dict[str, Any], drift: dict[str, Any]) -> dict[str, Any]:
    """What a device reports that applied ``desired`` but has ``drift`` (dotted keys, e.g.
    ``sampling.interval``) set otherwise."""
    out = copy.deepcopy(desired)
    for dotted, value in drift.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[last] = value
    return out


def report_patch(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch (RFC 7396) that turns the reported state ``previous`` into ``new``:
    what a device sends in its ``StateReport``."""
    patch: dict[str, Any] = {k: None for k in previous if k not in new}
    for key, value in new.items():
        before = previous.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = report_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in previous or before != value:
            patch[key] = value
    return patch


class StateFollower:
    """A simulated device's desired state over NATS: it subscribes to its command subject,
    applies each ``outpost.state`` it receives (kept in memory; a repeated version is
    ignored) and reports its state back on ``<commandSubject>.ack``: the desired state,
    with ``drift`` set otherwise when asked."""

    def __init__(
        self,
        conn: Connected,
        device: SimDevice,
        drift: dict[str, Any] | None = None,
        say: Callable[[str], None] = lambda _line: None,
        progress: asyncio.Event | None = None,
    ) -> None:
        self.conn, self.device, self.say = conn, device, say
        self.progress = progress
        self.drift = dict(drift or {})
        self.subject = command_subject(device)
        self.desired: dict[str, Any] = {}
        self.reported: dict[str, Any] = {}
        self.version = 0
        self.applied = 0
        self.changed = asyncio.Event()

    async def start(self) -> None:
        if self.conn.is_mqtt:
            raise OutpostError("following desired state needs NATS (--protocol nats)")
        await self.conn.handle.subscribe(self.subject, cb=self._on_message)
        await self.conn.handle.flush()

    async def _on_message(self, msg: Any) -> None:
        try:
            message = json.loads(msg.data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("name") != STATE_COMMAND:
            self.say(f"{self.device.name}: command {message.get('name')!r} (not simulated)")
            return
        params = message.get("params") or {}
        version = int(params.get("version", 0))
        if version <= self.version:
            return  # delivery is at least once
        self.version = version
        self.desired = dict(params.get("desired") or {})
        reported = with_drift(self.desired, self.drift)
        patch = report_patch(self.reported, reported)
        self.reported = reported
        body = json.dumps({"state": {"reported": patch}}).encode()
        await self.conn.handle.publish(f"{self.subject}.ack", body)
        await self.conn.handle.flush()
        self.applied += 1
        self.changed.set()
        if self.progress is not None:
            self.progress.set()
        drift = f" (drift: {json.dumps(self.drift, sort_keys=True)})" if self.drift else ""
        self.say(
            f"{self.device.name}: desired v{version} {json.dumps(self.desired, sort_keys=True)}"
            f" applied; reported {json.dumps(reported, sort_keys=True)}{drift}"
        )
