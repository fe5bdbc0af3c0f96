"""pytest plugin: one NATS and one PostgreSQL per test session, real and throwaway.

Each comes from, in order: an explicit URL in the environment (``NATS_URL`` /
``DATABASE_URL``); testcontainers, when it is installed *and* a Docker engine answers; else
a private process started from packages (``NatsServer`` / ``PostgresCluster``). The last is
what runs on machines without Docker, so no test may depend on Docker.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Generic, TypeVar

import pytest

from outpost_devkit.infra import NatsServer, PostgresCluster, docker_available

T = TypeVar("T")

NATS_IMAGE = "nats:2.10"
POSTGRES_IMAGE = "postgres:16-alpine"


@dataclass(frozen=True)
class Provided(Generic[T]):
    """A service URL, and the process object when we own it (None means external)."""

    url: str
    process: T | None
    source: str


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM (CI cancelling a job, ``timeout``) into an interrupt.

    By default SIGTERM ends Python without running fixture teardown or atexit hooks, which
    would leak the nats-server and postmaster we started. As an interrupt, pytest tears
    the session down normally. A handler someone else installed is left alone.
    """
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


CHAOS_SUFFIX = "_chaos.py"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Chaos tests (modules named ``*_chaos.py``) run last, in their collected order: they
    kill and restart the session's nats-server and Postgres, so nothing may run after them
    that could be disturbed by a restart (``make chaos`` runs just them)."""
    items.sort(key=lambda item: item.path.name.endswith(CHAOS_SUFFIX))  # stable: order kept


def _use_testcontainers() -> bool:
    return importlib.util.find_spec("testcontainers") is not None and docker_available()


@contextlib.contextmanager
def _cleanup(stop: Callable[[], None]) -> Iterator[None]:
    """Run ``stop`` at the end of the block, or at interpreter exit if we never get there."""
    atexit.register(stop)
    try:
        yield
    finally:
        stop()
        atexit.unregister(stop)


@contextlib.contextmanager
def _nats_container() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(NATS_IMAGE).with_command("-js").with_exposed_ports(4222)
    with container:
        wait_for_logs(container, "Server is ready", timeout=60)
        host, port = container.get_container_host_ip(), container.get_exposed_port(4222)
        yield f"nats://{host}:{port}"


@contextlib.contextmanager
def _postgres_container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password="postgres", dbname="outpost"
    )
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
        yield f"postgresql://postgres:postgres@{host}:{port}/outpost"


@pytest.fixture(scope="session")
def outpost_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provided[NatsServer]]:
    """The session's NATS: external, container, or a private nats-server."""
    external = os.environ.get("NATS_URL")
    if external:
        yield Provided(external, None, "NATS_URL")
        return
    if _use_testcontainers():
        with _nats_container() as url:
            yield Provided(url, None, "testcontainers")
        return
    server = NatsServer.start(tmp_path_factory.mktemp("nats"))
    with _cleanup(server.stop):
        yield Provided(server.url, server, "nats-server")


@pytest.fixture(scope="session")
def outpost_postgres() -> Iterator[Provided[PostgresCluster]]:
    """The session's PostgreSQL: external, container, or a private cluster."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield Provided(external, None, "DATABASE_URL")
        return
    if _use_testcontainers():
        with _postgres_container() as url:
            yield Provided(url, None, "testcontainers")
        return
    # Not pytest's tmp dir: that sits under a 0700 per-user dir the server account (when we
    # are root) cannot reach, and its long paths risk the unix-socket path limit.
    base = Path(tempfile.mkdtemp(prefix="outpost-pg-"))
    try:
        cluster = PostgresCluster.start(base / "data", fast=True)
        with _cleanup(cluster.stop):
            yield Provided(cluster.admin_dsn, cluster, "postgres-cluster")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url(outpost_nats: Provided[NatsServer]) -> str:
    return outpost_nats.url


@pytest.fixture(scope="session")
def nats_server(outpost_nats: Provided[NatsServer]) -> NatsServer:
    """The nats-server process, for tests that kill or restart it."""
    if outpost_nats.process is None:
        pytest.skip(f"needs a private nats-server; NATS comes from {outpost_nats.source}")
    return outpost_nats.process


@pytest.fixture(scope="session")
def postgres_dsn(outpost_postgres: Provided[PostgresCluster]) -> str:
    return outpost_postgres.url


@pytest.fixture(scope="session")
def postgres_cluster(outpost_postgres: Provided[PostgresCluster]) -> PostgresCluster:
    """The PostgreSQL cluster, for tests that stop, kill or restart it."""
    if outpost_postgres.process is None:
        pytest.skip(f"needs a private cluster; Postgres comes from {outpost_postgres.source}")
    return outpost_postgres.process
