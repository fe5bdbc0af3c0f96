"""The broker docker compose and Kubernetes run: a real nats-server started with the
committed ``deploy/k8s/base/nats.conf`` (only its ports and store moved, to run beside other
tests) and the ``security.conf`` ``outpost-admin deploy init`` generated. A service connects
with nothing but its generated env file, as its container would; a client without a
certificate, or with a wrong password, is refused; JetStream and MQTT are up."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import NoServersError

from outpost_kit import deploy
from outpost_kit.infra._process import free_port
from outpost_kit.infra.nats import find_nats_server
from outpost_kit.messaging import client_tls

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[4]


class Broker:
    def __init__(self, material: Path, port: int, mqtt_port: int, envs: dict[str, dict[str, str]]):
        self.material = material
        self.port = port
        self.mqtt_port = mqtt_port
        self.envs = envs

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
    envs = deploy.init(
        material,
        broker_hosts=["localhost"],
        nats_url="tls://nats:4222",
        admin_dsn="postgresql://postgres:x@postgres:5432/outpost",
        mount=str(material),  # where "the container" sees it: here, the same place
    )
    port, monitor, mqtt = free_port(), free_port(), free_port()
    conf = (_ROOT / "deploy" / "k8s" / "base" / "nats.conf").read_text()
    for old, new in (
        ("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}"),
        ("http: 0.0.0.0:8222", f"http: 127.0.0.1:{monitor}"),
        ('store_dir: "/data/jetstream"', f'store_dir: "{tmp / "js"}"'),
    ):
        assert old in conf
        conf = conf.replace(old, new)
    (material / "nats" / "nats.conf").write_text(conf)
    security = material / "nats" / "security.conf"
    security.write_text(
        security.read_text().replace("listen: 0.0.0.0:1883", f"listen: 127.0.0.1:{mqtt}")
    )
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
        yield Broker(material, port, mqtt, envs)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def test_a_service_connects_with_its_generated_env_and_uses_jetstream(
    broker: Broker,
) -> None:
    nc = await nats.connect(
        broker.url_for("readings"), tls=broker.tls_for("readings"), allow_reconnect=False
    )
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
        reply = await nc.request("$JS.API.INFO", b"", timeout=2)
        assert b"jetstream" in reply.data or b"memory" in reply.data
    finally:
        await nc.close()


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
