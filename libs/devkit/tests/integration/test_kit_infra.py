"""The throwaway infrastructure really is NATS JetStream and PostgreSQL, and survives chaos."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import nats
import pytest

from outpost_devkit.infra import NatsServer, PostgresCluster

pytestmark = pytest.mark.integration


def _stream_name() -> str:
    # Unique per test so the tests also run against a shared external NATS_URL.
    return f"KIT_INFRA_{uuid.uuid4().hex[:8].upper()}"


async def test_jetstream_deduplicates_by_msg_id(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stream = _stream_name()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        headers = {"Nats-Msg-Id": "reading-1"}

        first = await js.publish(f"{stream}.readings", b"21.5", headers=headers)
        second = await js.publish(f"{stream}.readings", b"21.5", headers=headers)

        assert not first.duplicate
        assert second.duplicate
        assert second.seq == first.seq
        assert (await js.stream_info(stream)).state.messages == 1
        await js.delete_stream(stream)
    finally:
        await nc.close()


async def test_jetstream_data_survives_kill_9(nats_server: NatsServer) -> None:
    stream = _stream_name()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        ack = await js.publish(f"{stream}.x", b"persisted", headers={"Nats-Msg-Id": "p-1"})
    finally:
        await nc.close()
    old_pid = nats_server.pid

    nats_server.kill()
    assert not nats_server.running
    nats_server.restart()

    assert nats_server.running
    assert nats_server.pid != old_pid
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        assert (await js.stream_info(stream)).state.messages == 1
        assert (await js.get_msg(stream, ack.seq)).data == b"persisted"
        await js.delete_stream(stream)
    finally:
        await nc.close()


def test_nats_attach_finds_the_running_server(nats_server: NatsServer) -> None:
    attached = NatsServer.attach(nats_server.store_dir)

    assert attached is not None
    assert (attached.pid, attached.url) == (nats_server.pid, nats_server.url)
    assert NatsServer.start(nats_server.store_dir).pid == nats_server.pid  # reused, not forked


def test_nats_attach_ignores_a_stale_pid_file(tmp_path: Path) -> None:
    (tmp_path / "nats.pid").write_text("999999999\n")

    assert NatsServer.attach(tmp_path) is None


async def test_postgres_admin_is_superuser(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "outpost"
        assert await conn.fetchval("select rolsuper from pg_roles where rolname = current_user")
    finally:
        await conn.close()


def test_postmaster_does_not_run_as_root(postgres_cluster: PostgresCluster) -> None:
    pid = postgres_cluster.pid
    assert pid is not None

    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))

    assert all(uid != "0" for uid in uid_line.split()[1:])


async def _count_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from kit_infra_survivors"))
    finally:
        await conn.close()


async def test_postgres_data_survives_stop_and_kill(postgres_cluster: PostgresCluster) -> None:
    dsn = postgres_cluster.admin_dsn
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("create table if not exists kit_infra_survivors (id int)")
        await conn.execute("truncate kit_infra_survivors")
        await conn.execute("insert into kit_infra_survivors values (1), (2)")
    finally:
        await conn.close()

    postgres_cluster.stop()
    assert postgres_cluster.pid is None
    postgres_cluster.restart()
    assert await _count_rows(dsn) == 2

    postgres_cluster.kill()
    assert postgres_cluster.pid is None
    postgres_cluster.restart()  # crash recovery
    assert await _count_rows(dsn) == 2
    assert postgres_cluster.admin_dsn == dsn


def test_postgres_attach_finds_the_running_cluster(postgres_cluster: PostgresCluster) -> None:
    attached = PostgresCluster.attach(postgres_cluster.data_dir)

    assert attached is not None
    assert (attached.port, attached.pid) == (postgres_cluster.port, postgres_cluster.pid)
    assert attached.admin_dsn == postgres_cluster.admin_dsn
    assert PostgresCluster.start(postgres_cluster.data_dir).pid == postgres_cluster.pid
