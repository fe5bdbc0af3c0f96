"""The broker docker compose and Kubernetes run: a real nats-server started with the
committed ``deploy/k8s/base/nats.conf`` (only its ports and store moved, to run beside other
tests) and the ``security.conf`` ``outpost-admin deploy init`` generated. A service connects
with nothing but its generated env file, as its container would; a client without a
certificate, or with a wrong password, is refused; JetStream and MQTT are up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import NoServersError

from outpost_contracts import access, subjects
from outpost_devkit.infra._process import free_port
from outpost_devkit.infra.nats import find_nats_server
from outpost_kit import deploy, ids
from outpost_kit.material import SECRETS_NAME, rotate_nats_password
from outpost_kit.messaging import client_tls

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[4]


def _init(material: Path, mqtt: int) -> dict[str, dict[str, str]]:
    """``outpost-admin deploy init`` (again: it re-renders from secrets.json), with the MQTT
    listener moved to this machine's free port."""
    envs = deploy.init(
        material,
        broker_hosts=["localhost"],
        nats_url="tls://nats:4222",
        admin_dsn="postgresql://postgres:x@postgres:5432/outpost",
        mount=str(material),  # where "the container" sees it: here, the same place
    )
    security = material / "nats" / "security.conf"
    security.write_text(
        security.read_text().replace("listen: 0.0.0.0:1883", f"listen: 127.0.0.1:{mqtt}")
    )
    return envs


class Broker:
    def __init__(
        self,
        material: Path,
        port: int,
        mqtt_port: int,
        envs: dict[str, dict[str, str]],
        process: subprocess.Popen[bytes],
        log_path: Path,
    ):
        self.material = material
        self.port = port
        self.mqtt_port = mqtt_port
        self.envs = envs
        self.process = process
        self.log_path = log_path

    def _reloads(self) -> int:
        return self.log_path.read_text().count("Reloaded server configuration")

    async def reinit_and_reload(self) -> None:
        """``deploy init`` again, then nats-server's configuration reload (SIGHUP); returns
        once nats-server says it reloaded (new logins wait while it reloads)."""
        self.envs = _init(self.material, self.mqtt_port)
        before = self._reloads()
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while self._reloads() == before:
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            await asyncio.sleep(0.1)

    def url_for(self, process: str) -> str:
        """The env file's URL, with the container host name swapped for this machine's."""
        return self.envs[process]["OUTPOST_NATS_URL"].replace(
            "@nats:4222", f"@localhost:{self.port}"
        )

    def tls_for(self, process: str) -> ssl.SSLContext:
        env = self.envs[process]
        context = client_tls(
            env["OUTPOST_NATS_TLS_CA"], env["OUTPOST_NATS_TLS_CERT"], env["OUTPOST_NATS_TLS_KEY"]
        )
        assert context is not None
        return context


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp("deploy-broker")
    material = tmp / "etc-outpost"
    port, monitor, mqtt = free_port(), free_port(), free_port()
    envs = _init(material, mqtt)
    conf = (_ROOT / "deploy" / "k8s" / "base" / "nats.conf").read_text()
    for old, new in (
        ("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}"),
        ("http: 0.0.0.0:8222", f"http: 127.0.0.1:{monitor}"),
        ('store_dir: "/data/jetstream"', f'store_dir: "{tmp / "js"}"'),
    ):
        assert old in conf
        conf = conf.replace(old, new)
    (material / "nats" / "nats.conf").write_text(conf)
    log = (tmp / "nats.log").open("wb")
    process = subprocess.Popen(
        [str(find_nats_server()), "-c", str(material / "nats" / "nats.conf")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts nats-server slowly
        while True:
            try:
                url = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, (tmp / "nats.log").read_text()
            assert time.monotonic() < deadline, (tmp / "nats.log").read_text()
            time.sleep(0.1)
        yield Broker(material, port, mqtt, envs, process, tmp / "nats.log")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class _Violations:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc).lower())


async def test_a_service_connects_with_its_generated_env_within_its_permissions(
    broker: Broker,
) -> None:
    """The deployment's broker users have the contracts' permissions too (decision 74)."""
    violations = _Violations()
    nc = await nats.connect(
        broker.url_for("readings"),
        tls=broker.tls_for("readings"),
        allow_reconnect=False,
        inbox_prefix=access.inbox_prefix("readings"),
        error_cb=violations.record,
    )
    try:
        await nc.publish(subjects.event("readings.AnnotationClassCreated.v1", ids.new_id()), b"{}")
        await nc.subscribe(nc.new_inbox())
        await nc.flush()
        assert violations.seen == []
        await nc.publish("$JS.API.INFO", b"", reply=nc.new_inbox())
        await nc.publish("$JS.API.STREAM.DELETE.IDENTITY", b"", reply=nc.new_inbox())
        await nc.flush()
        await _eventually(lambda: len(violations.seen) == 2)
        assert all("permissions violation" in v for v in violations.seen), violations.seen
    finally:
        await nc.close()


async def _eventually(probe: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not probe():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def test_a_broker_password_rotates_without_a_restart(broker: Broker) -> None:
    """docs/runbook.md, "Rotating a broker credential": the new password works after a
    reload, the connection made with the old one stays up, and the old one stops working
    once retired; nats-server is never restarted (its auth_callout block never changes)."""
    pid = broker.process.pid
    old_url = broker.url_for("alerting")
    tls = broker.tls_for("alerting")
    before = await nats.connect(old_url, tls=tls, allow_reconnect=False)
    try:
        rotate_nats_password(broker.material / SECRETS_NAME, "alerting")
        await broker.reinit_and_reload()
        new_url = broker.url_for("alerting")
        assert new_url != old_url and "tls://alerting-b:" in new_url
        assert not await _refused(new_url, tls)
        assert not await _refused(old_url, tls)  # both until the old one is retired
        await before.flush(timeout=5)
        assert before.is_connected

        rotate_nats_password(broker.material / SECRETS_NAME, "alerting", retire=True)
        await broker.reinit_and_reload()
        assert await _refused(old_url, tls)
        assert not await _refused(new_url, tls)
        assert 'authentication error - User "alerting"' in broker.log_path.read_text()
        assert broker.process.poll() is None and broker.process.pid == pid
    finally:
        await before.close()


async def test_the_admin_env_applies_the_streams(broker: Broker) -> None:
    from outpost_contracts.streams import CONSUMERS, STREAMS
    from outpost_kit.messaging import apply_streams

    nc = await nats.connect(
        broker.url_for("admin"), tls=broker.tls_for("admin"), allow_reconnect=False
    )
    try:
        js = nc.jetstream()
        await apply_streams(js, STREAMS, CONSUMERS)
        names = {s.config.name for s in await js.streams_info()}
        assert {s.name for s in STREAMS} <= names
    finally:
        await nc.close()


async def _refused(url: str, tls: ssl.SSLContext | None) -> bool:
    try:
        nc = await asyncio.wait_for(
            nats.connect(
                url,
                tls=tls,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
                error_cb=_ignore,
            ),
            timeout=10,
        )
    except (NoServersError, OSError, TimeoutError, nats.errors.Error, ssl.SSLError):
        return True
    with contextlib.suppress(Exception):
        await nc.close()
    return False


async def _ignore(_exc: Exception) -> None:
    return None


async def test_without_a_client_certificate_or_with_a_wrong_password_it_is_refused(
    broker: Broker,
) -> None:
    env = broker.envs["gateway"]
    ca_only = client_tls(env["OUTPOST_NATS_TLS_CA"])
    assert await _refused(broker.url_for("gateway"), ca_only)
    wrong = broker.url_for("gateway").replace("tls://gateway:", "tls://gateway:x")
    assert await _refused(wrong, broker.tls_for("gateway"))


def test_the_mqtt_listener_requires_tls(broker: Broker) -> None:
    import socket

    context = ssl.create_default_context(cafile=broker.envs["gateway"]["OUTPOST_NATS_TLS_CA"])
    context.load_cert_chain(
        broker.envs["gateway"]["OUTPOST_NATS_TLS_CERT"],
        broker.envs["gateway"]["OUTPOST_NATS_TLS_KEY"],
    )
    with (
        socket.create_connection(("127.0.0.1", broker.mqtt_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() is not None  # the handshake with a client certificate succeeds
