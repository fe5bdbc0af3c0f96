"""The compose platform in real containers (``make test-containers``, decision 80).

``tools/containers.sh`` provides the engine and the images (``OUTPOST_CONTAINERS_DOCKER``
names its client); the ``platform`` fixture brings ``docker-compose.yml`` up (alone, then
with ``docker-compose.scale.yml``: two replicas of the gateway and of every service) under
a project of its own, on free host ports, waits until every service is healthy and the
credentials job has finished, and takes everything down with its volumes afterwards. The
tests reach it only as a user would: the published ports and what the credentials job
prints, plus ``docker exec`` for what is not published (health ports, Postgres).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "devices", "readings", "alerting", "exports", "fleet", "gateway")
JOBS = ("init", "streams", "credentials", *(f"migrate-{s}" for s in SERVICES))
# The operator and the demo organization set the tests' tenants up; they get the
# per-organization override an operator would give (docs/runbook.md), as in tests/e2e.
GENEROUS = 100_000
UP_TIMEOUT = 300.0
# The figures for the closing note, printed in pytest's summary (conftest.py).
REPORT: list[str] = []


def report(line: str) -> None:
    """A figure for the closing note: printed in pytest's summary."""
    REPORT.append(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` consecutive free ports (a compose port range: one per gateway replica)."""
    while True:
        first = free_port()
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return list(range(first, first + count))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()


@dataclass
class Compose:
    """One compose project: ``docker compose -p <project> -f ...`` with its environment."""

    docker: str
    project: str
    files: tuple[str, ...]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        files = [a for f in self.files for a in ("-f", str(ROOT / f))]
        return [self.docker, "compose", "-p", self.project, *files, *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            env={**os.environ, **self.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def docker_run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def containers(self) -> list[dict[str, Any]]:
        """``docker compose ps -a`` as dicts (Service, State, Health, ExitCode, ID, ...)."""
        out = self.run("ps", "-a", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def ids(self, service: str) -> list[str]:
        return [c["ID"] for c in self.containers() if c["Service"] == service]

    def copy_out(self, service: str, path: str) -> bytes:
        container = self.ids(service)[0]
        with tempfile.TemporaryDirectory() as tmp:
            got = self.docker_run("cp", f"{container}:{path}", f"{tmp}/out")
            assert got.returncode == 0, got.stderr
            return (Path(tmp) / "out").read_bytes()

    def exec(self, container: str, *args: str, timeout: float = 60) -> str:
        got = self.docker_run("exec", container, *args, timeout=timeout)
        assert got.returncode == 0, f"{args} in {container}: {got.stdout}{got.stderr}"
        return got.stdout

    def psql(self, sql: str) -> str:
        return self.run(
            "exec", "-T", "postgres", "psql", "-U", "postgres", "-d", "outpost",
            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        ).stdout  # fmt: skip

    def wait_until_up(self, timeout: float = UP_TIMEOUT, extra: tuple[str, ...] = ()) -> None:
        """Every service's containers running and healthy, every job exited 0."""
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            failed = [
                c for c in containers if c["State"] == "exited" and int(c.get("ExitCode", 0)) != 0
            ]
            if failed:
                names = sorted({c["Service"] for c in failed})
                logs = self.run("logs", "--no-color", "--tail", "60", *names, check=False)
                raise AssertionError(f"jobs failed: {names}\n{logs.stdout[-6000:]}")
            by_service: dict[str, list[dict[str, Any]]] = {}
            for c in containers:
                by_service.setdefault(c["Service"], []).append(c)
            long_running = [*SERVICES, "nats", "postgres", *extra]
            healthy = all(
                by_service.get(s) and all(c["Health"] == "healthy" for c in by_service[s])
                for s in long_running
            )
            done = all(
                by_service.get(j) and all(c["State"] == "exited" for c in by_service[j])
                for j in JOBS
            )
            if healthy and done:
                return
            if time.monotonic() > deadline:
                states = {
                    s: [(c["State"], c.get("Health", "")) for c in cs]
                    for s, cs in by_service.items()
                }
                logs = self.run("logs", "--no-color", "--tail", "40", check=False)
                raise AssertionError(
                    f"not up within {timeout:.0f} s: {states}\n{logs.stdout[-8000:]}"
                )
            time.sleep(1.0)

    def network_gateway(self) -> str:
        """The host's address on the project's network (where a container reaches the host)."""
        got = self.docker_run(
            "network", "inspect", f"{self.project}_default",
            "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        )  # fmt: skip
        assert got.returncode == 0 and got.stdout.strip(), got.stderr
        return got.stdout.strip()


@dataclass
class Platform:
    compose: Compose
    credentials: dict[str, Any]
    broker_ca: str
    gateway_urls: list[str]
    replicas: int

    @property
    def gateway_url(self) -> str:
        return self.gateway_urls[0]

    @property
    def nats_url(self) -> str:
        return f"tls://localhost:{self.compose.ports['nats']}"

    @property
    def mqtt_port(self) -> int:
        return self.compose.ports["mqtt"]

    def raise_limits(self, org_ids: list[str]) -> None:
        values = ", ".join(
            f"('{o}', '{c}', {GENEROUS})" for o in org_ids for c in ("single", "list", "write")
        )
        self.compose.psql(
            "INSERT INTO gateway.rate_limit_overrides (org_id, category, per_minute)"
            f" VALUES {values} ON CONFLICT (org_id, category)"
            " DO UPDATE SET per_minute = excluded.per_minute"
        )


VARIANTS = {
    "single": (("docker-compose.yml",), 1),
    "scaled": (("docker-compose.yml", "docker-compose.scale.yml"), 2),
}


def _docker() -> str:
    docker = os.environ.get("OUTPOST_CONTAINERS_DOCKER", "")
    if not docker:
        pytest.fail(
            "the container suite runs through `make test-containers` (tools/containers.sh),"
            " which provides the engine and the images"
        )
    return docker


@contextmanager
def compose_platform(
    variant: str, files: tuple[str, ...], replicas: int, extra: tuple[str, ...] = ()
) -> Iterator[Platform]:
    """The platform of ``files`` up (``extra``: more long-running services to wait for),
    then down with its volumes."""
    ports = {"nats": free_port(), "mqtt": free_port()}
    http_ports = free_ports(replicas)
    env = {
        "OUTPOST_TAG": os.environ.get("OUTPOST_TAG", "dev"),
        "OUTPOST_HTTP_HOST_PORT": str(http_ports[0]),
        "OUTPOST_NATS_HOST_PORT": str(ports["nats"]),
        "OUTPOST_MQTT_HOST_PORT": str(ports["mqtt"]),
        "OUTPOST_PUBLIC_API_URL": f"http://127.0.0.1:{http_ports[0]}",
        "OUTPOST_PUBLIC_NATS_URL": f"tls://localhost:{ports['nats']}",
        "OUTPOST_PUBLIC_MQTT_URL": f"mqtts://localhost:{ports['mqtt']}",
        # The webhook receiver listens on the host, a private address seen from the network.
        "OUTPOST_ALERTING_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    if replicas > 1:
        env["OUTPOST_HTTP_HOST_PORT_2"] = str(http_ports[1])
    compose = Compose(_docker(), f"outpost-ct-{variant}-{uuid.uuid4().hex[:6]}", files, env, ports)
    started = time.monotonic()
    material = Path(tempfile.mkdtemp(prefix="outpost-ct-"))
    try:
        compose.run("up", "--detach", "--no-build", "--quiet-pull", timeout=UP_TIMEOUT)
        compose.wait_until_up(extra=extra)
        report(
            f"{variant}: `up` to every service healthy and the credentials printed"
            f" in {time.monotonic() - started:.1f} s"
        )
        credentials = json.loads(
            compose.copy_out("credentials", "/var/lib/outpost/dev-credentials.json")
        )
        ca = material / "broker-ca.pem"
        ca.write_bytes(compose.copy_out("nats", "/etc/outpost/broker/broker-ca.pem"))
        platform = Platform(
            compose,
            credentials,
            str(ca),
            [f"http://127.0.0.1:{p}" for p in http_ports],
            replicas,
        )
        from outpost_contracts.envelope import PLATFORM_ORG_ID

        platform.raise_limits([str(PLATFORM_ORG_ID), credentials["organization"]["id"]])
        yield platform
    finally:
        shutil.rmtree(material, ignore_errors=True)
        compose.run("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        left = compose.docker_run(
            "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={compose.project}"
        )
        assert not left.stdout.strip(), f"containers left behind: {left.stdout}"


@pytest.fixture(scope="session", params=list(VARIANTS))
def platform(request: pytest.FixtureRequest) -> Iterator[Platform]:
    files, replicas = VARIANTS[request.param]
    with compose_platform(request.param, files, replicas) as platform:
        yield platform
