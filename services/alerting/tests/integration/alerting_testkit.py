"""What the alerting integration tests share: a migrated alerting schema on the test cluster
with the service's own role, its unit of work and read path, a request context, real HTTP
receivers on loopback and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet

from outpost_alerting import bootstrap
from outpost_contracts import alerting as alert_api
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWorkFactory

# The webhook-secret key of every test in the session (a rotation re-seals every row).
TEST_KEY = Fernet.generate_key().decode()


def ctx(org: uuid.UUID) -> RequestContext:
    """An API key of ``org`` with every scope."""
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )


@asynccontextmanager
async def alerting_db(
    postgres_dsn: str, *, pool_size: int = 8
) -> AsyncIterator[tuple[UnitOfWorkFactory, TenantReads]]:
    """The alerting schema migrated and provisioned (its role, FORCEd RLS)."""
    dsn = await provision_service(postgres_dsn, "alerting", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "alerting", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "alerting", pool_size=pool_size)
    reads = await TenantReads.connect(dsn, "alerting", size=2)
    try:
        yield (
            UnitOfWorkFactory(engine, EventCodec(bootstrap.EVENT_TYPES), bootstrap.PROJECTORS),
            reads,
        )
    finally:
        await reads.close()
        await engine.dispose()


async def insert_rule(
    uow: UnitOfWorkFactory, org: uuid.UUID, channel_ids: list[uuid.UUID], name: str = "too hot"
) -> uuid.UUID:
    """A rule row as the rules slice's projection would write it."""
    rule_id = uuid.uuid4()
    async with uow(org) as u:
        await u.execute(
            "INSERT INTO alert_rules (org_id, id, version, name, scope_type, sensor, condition,"
            " severity, for_seconds, enabled, channel_ids, created_at, updated_at) VALUES"
            " (:org, :id, 1, :name, 'ORGANIZATION', 'temperature',"
            ' CAST(\'{"op": ">", "threshold": 40}\' AS jsonb), \'CRITICAL\', 0, true, :ch,'
            " now(), now())",
            {"org": org, "id": rule_id, "name": name, "ch": channel_ids},
        )
        await u.commit()
    return rule_id


async def open_alert(
    uow: UnitOfWorkFactory, org: uuid.UUID, rule_id: uuid.UUID, device_id: uuid.UUID | None = None
) -> EventEnvelope:
    """``AlertOpened`` appended through the kit's event store (outbox row included)."""
    now = datetime.now(UTC)
    event = alert_api.AlertOpened(
        rule_id=rule_id,
        rule_version=1,
        device_id=device_id or uuid.uuid4(),
        sensor="temperature",
        severity=alert_api.Severity.CRITICAL,
        trigger=alert_api.AlertTrigger(
            value=41.5, ts=now, since=now, condition="temperature > 40", rule_version=1
        ),
    )
    async with uow(org) as u:
        [envelope] = await u.events.append(
            org_id=org,
            stream_id=uuid.uuid4(),
            stream_type="alert",
            expected_version=0,
            events=[event],
        )
        await u.commit()
    return envelope


async def eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


# --- a real HTTP receiver ------------------------------------------------------------------


class Received:
    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body


class Receiver:
    """An HTTP server on 127.0.0.1 in its own thread. ``statuses``: the status of each
    request in turn (the last one repeats); ``delay``: seconds before answering; ``location``:
    the Location of a 3xx. Counts the requests in flight at once."""

    def __init__(
        self, statuses: list[int] | None = None, delay: float = 0.0, location: str = ""
    ) -> None:
        self.statuses = list(statuses or [200])
        self.delay = delay
        self.location = location
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                    body = self.rfile.read(length)
                    with receiver._lock:
                        receiver.requests.append(
                            Received(
                                self.path, {k.lower(): v for k, v in self.headers.items()}, body
                            )
                        )
                        index = len(receiver.requests) - 1
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.tls = False
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def serve_tls(self, context: ssl.SSLContext) -> None:
        """Answer over TLS with ``context`` (before ``__enter__``)."""
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.tls = True

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- a real SMTP server ------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=policy.default),
            )
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """``tls``: a server context; the server then requires STARTTLS before anything else."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.mailbox = Mailbox()
        with socket.socket() as probe:  # a free port (the controller checks it by connecting)
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        extra: dict[str, Any] = {}
        if tls is not None:
            extra = {"tls_context": tls, "require_starttls": True}
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **extra)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


# --- TLS for receivers --------------------------------------------------------------------


def _san(name: str) -> Any:
    import ipaddress

    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def tls_pair(server_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for ``server_name`` from a fresh CA, client context
    trusting only that CA)."""
    import tempfile
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([_san(server_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with tempfile.TemporaryDirectory() as tmp:
        chain, private = f"{tmp}/chain.pem", f"{tmp}/key.pem"
        with open(chain, "wb") as f:
            f.write(cert.public_bytes(pem) + ca.public_bytes(pem))
        with open(private, "wb") as f:
            f.write(
                key.private_bytes(
                    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(chain, private)
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client
