"""Exports' use cases on the fake unit of work (``exports_fakes.py``): what they decide and
append through the port, without Postgres. The SQL behind the port is the integration
tests' (``tests/integration/test_exports_jobs.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from exports_fakes import FakeArtifacts, FakeExports, FakeSources

from outpost_contracts import exports as api
from outpost_contracts.errors import Conflict, NotFound
from outpost_contracts.query import ListQuery
from outpost_devkit.testing.fakes import api_key_context as ctx
from outpost_exports.app import handlers
from outpost_exports.app.expiry import expire_due, requeue_stuck
from outpost_exports.app.handlers import Deps, Policy
from outpost_exports.app.worker import Runner, Stopped, Verdict, WorkerConfig
from outpost_exports.domain import exports as domain

pytestmark = pytest.mark.unit


def request() -> api.CreateExport:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return api.CreateExport(
        scope_type=api.ScopeType.ORGANIZATION,
        scope_id=None,
        from_=start,
        to=start + timedelta(days=1),
    )


def deps(uow: FakeExports, store: FakeArtifacts, **policy: object) -> Deps:
    return Deps(uow, FakeSources(), store, Policy(**policy))  # type: ignore[arg-type]


def runner(uow: FakeExports, store: FakeArtifacts, worker: str) -> Runner:
    config = WorkerConfig(worker_id=worker, lease=timedelta(seconds=30))
    return Runner(uow, FakeSources(), store, config)  # type: ignore[arg-type]


async def test_creations_are_limited_per_organization_and_a_refusal_leaves_nothing() -> None:
    uow, store = FakeExports(), FakeArtifacts()
    org, other = uuid.uuid4(), uuid.uuid4()
    made = [await handlers.create_export(deps(uow, store, max_concurrent=2), ctx(org), request())]
    made.append(
        await handlers.create_export(deps(uow, store, max_concurrent=2), ctx(org), request())
    )
    with pytest.raises(Conflict):
        await handlers.create_export(deps(uow, store, max_concurrent=2), ctx(org), request())
    await handlers.create_export(deps(uow, store, max_concurrent=2), ctx(other), request())
    # Each accepted creation: one stream, one work item named after the job; none for the refusal.
    assert len(uow.world.streams) == 3
    mine = [w.msg_id for w in uow.world.outbox if w.org_id == org]
    assert mine == [f"work-{v.id}" for v in made]
    assert all(v.status == api.ExportStatus.PENDING and v.version == 1 for v in made)
    page = await handlers.list_exports(
        deps(uow, store), ctx(org), api.ListExports(query=ListQuery())
    )
    assert [v.id for v in page.data] == sorted(v.id for v in made)
    with pytest.raises(NotFound):  # another organization's export does not exist for it
        await handlers.get_export(deps(uow, store), ctx(other), api.ExportById(id=made[0].id))


async def test_a_worker_takes_a_job_over_only_once_the_lease_lapsed() -> None:
    uow, store = FakeExports(), FakeArtifacts()
    org = uuid.uuid4()
    view = await handlers.create_export(deps(uow, store), ctx(org), request())
    first, second = runner(uow, store, "w1"), runner(uow, store, "w2")
    state, outcome = await first.claim(org, view.id)
    assert outcome is None and state.attempt == 1
    _, outcome = await second.claim(org, view.id)
    assert outcome is not None and outcome.verdict is Verdict.RETRY
    assert outcome.delay == pytest.approx(30.5)
    uow.advance(timedelta(seconds=31))
    state, outcome = await second.claim(org, view.id)
    assert outcome is None and state.attempt == 2
    # The first worker finds out at its next progress write, and at completion.
    from outpost_exports.app.worker import Heartbeat

    async def nothing() -> None:
        return None

    beat = Heartbeat(uow, org, view.id, 1, first.config, nothing)  # type: ignore[arg-type]
    with pytest.raises(Stopped):
        await beat.tick(10, force=True)
    work = api.ExportWork(org_id=org, export_id=view.id)
    with pytest.raises(Stopped):
        await first._complete(work, 1, domain.object_name(org, view.id, 1), 1, "x", 1, 0)
    got = await handlers.get_export(deps(uow, store), ctx(org), api.ExportById(id=view.id))
    assert got.status == api.ExportStatus.RUNNING and got.attempt == 2


async def test_a_ready_archive_expires_once_and_its_files_are_deleted() -> None:
    uow, store = FakeExports(), FakeArtifacts()
    org = uuid.uuid4()
    view = await handlers.create_export(deps(uow, store), ctx(org), request())
    worker = runner(uow, store, "w1")
    await worker.claim(org, view.id)
    work = api.ExportWork(org_id=org, export_id=view.id)
    name = domain.object_name(org, view.id, 1)
    await worker._complete(work, 1, name, 123, "sha", 10, 0)
    location = await handlers.get_artifact(deps(uow, store), ctx(org), api.ExportById(id=view.id))
    assert (location.object_name, location.size_bytes) == (name, 123)
    assert uow.world.runs == {} and uow.world.queue == {}
    later = datetime.now(UTC) + timedelta(days=2)
    assert await expire_due(uow, store, later) == 1  # type: ignore[arg-type]
    assert store.deleted == [name]
    got = await handlers.get_export(deps(uow, store), ctx(org), api.ExportById(id=view.id))
    assert got.status == api.ExportStatus.EXPIRED
    with pytest.raises(NotFound):
        await handlers.get_artifact(deps(uow, store), ctx(org), api.ExportById(id=view.id))
    assert await expire_due(uow, store, later) == 0  # type: ignore[arg-type]


async def test_a_stuck_job_is_published_again_and_a_cancelled_one_leaves_the_queue() -> None:
    uow, store = FakeExports(), FakeArtifacts()
    org = uuid.uuid4()
    stuck = await handlers.create_export(deps(uow, store), ctx(org), request())
    cancelled = await handlers.create_export(deps(uow, store), ctx(org), request())
    await handlers.delete_export(deps(uow, store), ctx(org), api.DeleteExport(id=cancelled.id))
    assert set(uow.world.queue) == {stuck.id}
    now = uow.world.now
    assert await requeue_stuck(uow, now, timedelta(minutes=10)) == 0  # type: ignore[arg-type]
    later = now + timedelta(minutes=11)
    assert await requeue_stuck(uow, later, timedelta(minutes=10)) == 1  # type: ignore[arg-type]
    stamp = int(later.timestamp())
    assert uow.world.outbox[-1].msg_id == f"work-{stuck.id}-{stamp}"
    assert uow.world.queue[stuck.id][1] == later  # not swept again before another ten minutes
    # Deleting the cancelled (finished) export deletes it and every archive it may have.
    await handlers.delete_export(deps(uow, store), ctx(org), api.DeleteExport(id=cancelled.id))
    with pytest.raises(NotFound):
        await handlers.get_export(deps(uow, store), ctx(org), api.ExportById(id=cancelled.id))
