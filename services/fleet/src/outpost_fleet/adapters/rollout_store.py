"""The Postgres adapter of ``app/rollout_ports.py`` (ADR 0093): the kit's ``UnitOfWork`` with
the rollout's statements. Writes of many rows are one statement each over ``unnest`` of
arrays (10,000 effective states are a handful of statements, not 10,000); the queues
(``delivery_queue``, ``profile_job_queue``) are plumbing without row-level security, claimed
with ``FOR UPDATE SKIP LOCKED`` and a lease."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text

from outpost_contracts import device_config
from outpost_contracts.fleet import ApplicationStatus, Target, TargetType
from outpost_fleet.app.rollout_ports import Claim, Report, StateRow, Stored
from outpost_fleet.domain.compliance import DeviceCompliance
from outpost_fleet.domain.desired_state import BindingRef, DeviceFacts, ResolvedBinding
from outpost_fleet.domain.placement import Placement
from outpost_fleet.domain.profile_jobs import ProfileJob
from outpost_fleet.domain.rollout import Selection
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

_json = msgspec.json.Encoder()
_sources = msgspec.json.Decoder(dict[str, device_config.Source])


def _array(values: Iterable[object]) -> str:
    """A Postgres array literal of uuids or plain tokens (no quotes or commas inside)."""
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


def _doc(raw: str | None) -> Any:
    return None if raw is None else msgspec.json.decode(raw)


_SELECTED = (
    "NOT d.decommissioned AND (CAST(:everything AS boolean)"
    " OR d.site_id = ANY(CAST(:sites AS uuid[])) OR d.group_id = ANY(CAST(:groups AS uuid[]))"
    " OR d.profile_id = ANY(CAST(:profiles AS uuid[])) OR d.id = ANY(CAST(:ids AS uuid[]))"
    " OR d.id IN (SELECT e.device_id FROM effective_states e"
    "  WHERE e.applied && CAST(:applied AS uuid[])))"
)


def _selection(selection: Selection) -> dict[str, Any]:
    return {
        "everything": selection.everything,
        "sites": list(selection.site_ids),
        "groups": list(selection.group_ids),
        "profiles": list(selection.profile_ids),
        "ids": list(selection.device_ids),
        "applied": list(selection.applied),
    }


_DEVICES = text(
    "SELECT d.id, d.site_id, d.group_id, d.profile_id FROM fleet_devices d WHERE "
    + _SELECTED
    + " AND (CAST(:after AS uuid) IS NULL OR d.id > CAST(:after AS uuid))"
    " ORDER BY d.id LIMIT :limit"
)
_COUNT = text("SELECT count(*) FROM fleet_devices d WHERE " + _SELECTED)

_PLACEMENTS = text(
    "SELECT org_id, id, site_id, group_id, profile_id, event_version, decommissioned"
    " FROM fleet_devices WHERE id = ANY(CAST(:ids AS uuid[]))"
)
_SAVE_PLACEMENTS = text(
    "INSERT INTO fleet_devices (org_id, id, site_id, group_id, profile_id, event_version,"
    " decommissioned, updated_at)"
    " SELECT :org, t.id, t.site, t.grp, t.profile, t.v, t.gone, :now FROM unnest("
    " CAST(:ids AS uuid[]), CAST(:sites AS uuid[]), CAST(:groups AS uuid[]),"
    " CAST(:profiles AS uuid[]), CAST(:versions AS integer[]), CAST(:gone AS boolean[]))"
    " AS t(id, site, grp, profile, v, gone)"
    " ON CONFLICT (id) DO UPDATE SET site_id = EXCLUDED.site_id, group_id = EXCLUDED.group_id,"
    " profile_id = EXCLUDED.profile_id, event_version = EXCLUDED.event_version,"
    " decommissioned = EXCLUDED.decommissioned, updated_at = EXCLUDED.updated_at"
    " WHERE fleet_devices.event_version < EXCLUDED.event_version"
)
_FORGET_STATES = text("DELETE FROM effective_states WHERE device_id = ANY(CAST(:ids AS uuid[]))")
_FORGET_QUEUED = text("DELETE FROM delivery_queue WHERE device_id = ANY(CAST(:ids AS uuid[]))")

_BINDINGS = text(
    "SELECT b.id, b.target_type, b.target_id, b.priority, b.artefact_id, v.version,"
    " v.document::text AS document FROM desired_state_bindings b"
    " JOIN LATERAL (SELECT version, document FROM config_artefact_versions v"
    "  WHERE v.artefact_id = b.artefact_id"
    "  AND (b.artefact_version IS NULL OR v.version = b.artefact_version)"
    "  ORDER BY v.version DESC LIMIT 1) v ON true"
    # A device profile's default configuration: an implicit binding on the profile (its id),
    # below every binding made on it (priority -1001; theirs are -1000..1000).
    " UNION ALL SELECT p.id, 'PROFILE', p.id, -1001, p.config_artefact_id, v.version,"
    " v.document::text FROM device_profiles p"
    " JOIN LATERAL (SELECT version, document FROM config_artefact_versions v"
    "  WHERE v.artefact_id = p.config_artefact_id ORDER BY v.version DESC LIMIT 1) v ON true"
    " WHERE p.config_artefact_id IS NOT NULL"
)
_BINDING_TARGET = text("SELECT target_type, target_id FROM desired_state_bindings WHERE id = :id")
_LATEST_TARGETS = text(
    "SELECT target_type, target_id FROM desired_state_bindings"
    " WHERE artefact_id = :id AND artefact_version IS NULL"
    " UNION ALL SELECT 'PROFILE', id FROM device_profiles WHERE config_artefact_id = :id"
)
_VERSION_EXISTS = text(
    "SELECT 1 FROM config_artefact_versions WHERE artefact_id = :id AND version = :version"
)

_DIGESTS = text(
    "SELECT device_id, digest FROM effective_states WHERE device_id = ANY(CAST(:ids AS uuid[]))"
)
_SAVE_STATES = text(
    "INSERT INTO effective_states (org_id, device_id, document, sources, applied,"
    " artefact_versions, digest, size, computed_at)"
    " SELECT :org, t.id, t.doc::jsonb, t.src::jsonb, t.ap::uuid[], t.av::text[], t.dg, t.sz,"
    " :now FROM unnest(CAST(:ids AS uuid[]), CAST(:docs AS text[]), CAST(:srcs AS text[]),"
    " CAST(:aps AS text[]), CAST(:avs AS text[]), CAST(:dgs AS text[]),"
    " CAST(:szs AS integer[])) AS t(id, doc, src, ap, av, dg, sz)"
    " ON CONFLICT (device_id) DO UPDATE SET document = EXCLUDED.document,"
    " sources = EXCLUDED.sources, applied = EXCLUDED.applied,"
    " artefact_versions = EXCLUDED.artefact_versions, digest = EXCLUDED.digest,"
    " size = EXCLUDED.size, computed_at = EXCLUDED.computed_at"
)
_QUEUE = text(
    "INSERT INTO delivery_queue (device_id, tenant_id, digest, due_at)"
    " SELECT t.id, :org, t.dg, :now FROM unnest(CAST(:ids AS uuid[]), CAST(:dgs AS text[]))"
    " AS t(id, dg)"
    " ON CONFLICT (device_id) DO UPDATE SET digest = EXCLUDED.digest,"
    " due_at = EXCLUDED.due_at, attempts = 0"
)
_CLAIM = text(
    "WITH first AS (SELECT tenant_id FROM delivery_queue"
    "  WHERE due_at <= :now AND (leased_until IS NULL OR leased_until <= :now)"
    "  ORDER BY due_at LIMIT 1),"
    " picked AS (SELECT q.device_id FROM delivery_queue q, first"
    "  WHERE q.tenant_id = first.tenant_id AND q.due_at <= :now"
    "  AND (q.leased_until IS NULL OR q.leased_until <= :now)"
    "  ORDER BY q.due_at, q.device_id LIMIT :limit FOR UPDATE OF q SKIP LOCKED)"
    " UPDATE delivery_queue q SET leased_until = :lease FROM picked"
    " WHERE q.device_id = picked.device_id RETURNING q.tenant_id, q.device_id, q.digest"
)
_DESIRED = text(
    "SELECT device_id, document::text AS document, sources::text AS sources, digest"
    " FROM effective_states WHERE device_id = ANY(CAST(:ids AS uuid[])) ORDER BY device_id"
)
_DELIVERED = text(
    "UPDATE effective_states e SET delivered_digest = t.dg, delivery = t.oc,"
    " delivered_at = CASE WHEN t.oc = 'UNCHANGED' THEN coalesce(e.delivered_at, :now)"
    "  ELSE :now END,"
    " compliance = CASE WHEN t.oc = 'DELIVERED' THEN 'PENDING' ELSE e.compliance END"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:dgs AS text[]), CAST(:ocs AS text[]))"
    " AS t(id, dg, oc) WHERE e.device_id = t.id AND e.digest = t.dg"
)
_DEQUEUE = text(
    "DELETE FROM delivery_queue q USING unnest(CAST(:ids AS uuid[]), CAST(:dgs AS text[]))"
    " AS t(id, dg) WHERE q.device_id = t.id AND q.digest = t.dg"
)
_RELEASE = text(
    "UPDATE delivery_queue SET leased_until = NULL WHERE device_id = ANY(CAST(:ids AS uuid[]))"
)
_FAILED = text(
    "UPDATE delivery_queue SET attempts = attempts + 1, leased_until = NULL"
    " WHERE device_id = ANY(CAST(:ids AS uuid[])) RETURNING device_id, attempts"
)
_DUE = text(
    "UPDATE delivery_queue q SET due_at = t.due FROM unnest(CAST(:ids AS uuid[]),"
    " CAST(:dues AS timestamptz[])) AS t(id, due) WHERE q.device_id = t.id"
)

_SAVE_REPORTS = text(
    "INSERT INTO device_reports (org_id, device_id, reported, reported_at)"
    " SELECT :org, t.id, t.r::jsonb, t.at FROM unnest(CAST(:ids AS uuid[]),"
    " CAST(:reports AS text[]), CAST(:ats AS timestamptz[])) AS t(id, r, at)"
    " WHERE EXISTS (SELECT 1 FROM fleet_devices d WHERE d.id = t.id)"
    " ON CONFLICT (device_id) DO UPDATE SET reported = EXCLUDED.reported,"
    " reported_at = EXCLUDED.reported_at"
    " WHERE device_reports.reported_at <= EXCLUDED.reported_at RETURNING device_id"
)
_STORED = (
    "SELECT e.device_id, e.document::text AS document, e.sources::text AS sources, e.digest,"
    " e.delivered_at, e.compliance, e.compliance_version, r.reported::text AS reported,"
    " r.reported_at FROM effective_states e"
    " LEFT JOIN device_reports r ON r.device_id = e.device_id WHERE "
)
_STORED_OF = text(_STORED + "e.device_id = ANY(CAST(:ids AS uuid[]))")
_STORED_OF_BINDING = text(_STORED + "e.applied @> ARRAY[CAST(:id AS uuid)]")
_STORED_OF_VERSION = text(_STORED + "e.artefact_versions @> ARRAY[CAST(:av AS text)]")
_SET_COMPLIANCE = text(
    "UPDATE effective_states e SET compliance = t.c, compliance_version = t.v"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:cs AS text[]), CAST(:vs AS integer[]))"
    " AS t(id, c, v) WHERE e.device_id = t.id"
)

_JOB = text(
    "SELECT profile_id, profile_version, status, total, done, missing, cursor, attempts,"
    " run_after, error, requested_at, finished_at FROM profile_applications"
    " WHERE profile_id = :id"
)
_SAVE_JOB = text(
    "INSERT INTO profile_applications (org_id, profile_id, profile_version, status, total,"
    " done, missing, cursor, attempts, run_after, error, requested_at, finished_at)"
    " VALUES (:org, :profile_id, :profile_version, :status, :total, :done, :missing,"
    " :cursor, :attempts, :run_after, :error, :requested_at, :finished_at)"
    " ON CONFLICT (profile_id) DO UPDATE SET profile_version = EXCLUDED.profile_version,"
    " status = EXCLUDED.status, total = EXCLUDED.total, done = EXCLUDED.done,"
    " missing = EXCLUDED.missing, cursor = EXCLUDED.cursor, attempts = EXCLUDED.attempts,"
    " run_after = EXCLUDED.run_after, error = EXCLUDED.error,"
    " requested_at = EXCLUDED.requested_at, finished_at = EXCLUDED.finished_at"
)
_QUEUE_JOB = text(
    "INSERT INTO profile_job_queue (profile_id, tenant_id, due_at) VALUES (:id, :org, :due)"
    " ON CONFLICT (profile_id) DO UPDATE SET due_at = EXCLUDED.due_at, leased_until = NULL"
)
_DEQUEUE_JOB = text("DELETE FROM profile_job_queue WHERE profile_id = :id")
_CLAIM_JOB = text(
    "UPDATE profile_job_queue q SET leased_until = :lease FROM (SELECT profile_id"
    "  FROM profile_job_queue WHERE due_at <= :now"
    "  AND (leased_until IS NULL OR leased_until <= :now)"
    "  ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED) p"
    " WHERE q.profile_id = p.profile_id RETURNING q.tenant_id, q.profile_id"
)
_WITH_PROFILE = text(
    "SELECT id FROM fleet_devices WHERE profile_id = :profile AND NOT decommissioned"
    " AND (CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid)) ORDER BY id LIMIT :limit"
)


def _target(row: Any) -> Target:
    return Target(type=TargetType(row.target_type), id=row.target_id)


def _stored(row: Any) -> Stored:
    return Stored(
        device_id=row.device_id,
        document=_doc(row.document),
        sources=_doc(row.sources),
        digest=row.digest,
        delivered_at=row.delivered_at,
        compliance=None if row.compliance is None else DeviceCompliance(row.compliance),
        compliance_version=row.compliance_version,
        reported=_doc(row.reported),
        reported_at=row.reported_at,
    )


class PgRolloutTx(UnitOfWork):
    """One transaction with the rollout's statements."""

    async def __aenter__(self) -> PgRolloutTx:
        await super().__aenter__()
        return self

    async def _rows(self, statement: Any, params: Mapping[str, Any]) -> list[Any]:
        return list((await self.conn.execute(statement, params)).all())

    @property
    def _org(self) -> UUID:
        assert self.org_id is not None, "a tenant's statement outside a tenant"
        return self.org_id

    # --- devices -----------------------------------------------------------------------------

    async def placements(self, device_ids: Sequence[UUID]) -> dict[UUID, Placement]:
        rows = await self._rows(_PLACEMENTS, {"ids": list(device_ids)})
        return {
            r.id: Placement(
                org_id=r.org_id,
                id=r.id,
                site_id=r.site_id,
                group_id=r.group_id,
                profile_id=r.profile_id,
                version=r.event_version,
                decommissioned=r.decommissioned,
            )
            for r in rows
        }

    async def save_placements(self, placements: Sequence[Placement], now: datetime) -> None:
        if not placements:
            return
        await self.conn.execute(
            _SAVE_PLACEMENTS,
            {
                "org": self._org,
                "now": now,
                "ids": [p.id for p in placements],
                "sites": [p.site_id for p in placements],
                "groups": [p.group_id for p in placements],
                "profiles": [p.profile_id for p in placements],
                "versions": [p.version for p in placements],
                "gone": [p.decommissioned for p in placements],
            },
        )
        gone = [p.id for p in placements if p.decommissioned]
        if gone:
            await self.conn.execute(_FORGET_STATES, {"ids": gone})
            await self.conn.execute(_FORGET_QUEUED, {"ids": gone})

    async def devices(
        self, selection: Selection, after: UUID | None, limit: int
    ) -> list[DeviceFacts]:
        params = _selection(selection) | {"after": after, "limit": limit}
        return [
            DeviceFacts(
                id=r.id,
                site_id=r.site_id,
                group_ids=frozenset() if r.group_id is None else frozenset({r.group_id}),
                profile_id=r.profile_id,
            )
            for r in await self._rows(_DEVICES, params)
        ]

    async def count_devices(self, selection: Selection) -> int:
        return int((await self.conn.execute(_COUNT, _selection(selection))).scalar_one())

    # --- the configuration -------------------------------------------------------------------

    async def resolved_bindings(self) -> list[ResolvedBinding]:
        return [
            ResolvedBinding(
                binding=BindingRef(id=r.id, target=_target(r), priority=r.priority),
                artefact_id=r.artefact_id,
                artefact_version=r.version,
                document=_doc(r.document),
            )
            for r in await self._rows(_BINDINGS, {})
        ]

    async def binding_target(self, binding_id: UUID) -> Target | None:
        row = (await self.conn.execute(_BINDING_TARGET, {"id": binding_id})).first()
        return None if row is None else _target(row)

    async def artefact_version_exists(self, artefact_id: UUID, version: int) -> bool:
        params = {"id": artefact_id, "version": version}
        return (await self.conn.execute(_VERSION_EXISTS, params)).first() is not None

    async def latest_targets_of_artefact(self, artefact_id: UUID) -> list[Target]:
        return [_target(r) for r in await self._rows(_LATEST_TARGETS, {"id": artefact_id})]

    # --- effective states and their delivery -------------------------------------------------

    async def digests(self, device_ids: Sequence[UUID]) -> dict[UUID, str]:
        rows = await self._rows(_DIGESTS, {"ids": list(device_ids)})
        return {r.device_id: r.digest for r in rows}

    async def save_states(self, rows: Sequence[StateRow], now: datetime) -> None:
        if not rows:
            return
        ids = [r.desired.device_id for r in rows]
        digests = [r.desired.digest for r in rows]
        await self.conn.execute(
            _SAVE_STATES,
            {
                "org": self._org,
                "now": now,
                "ids": ids,
                "docs": [_json.encode(r.desired.document).decode() for r in rows],
                "srcs": [_json.encode(r.desired.sources).decode() for r in rows],
                "aps": [_array(r.applied) for r in rows],
                "avs": [_array(r.artefact_versions) for r in rows],
                "dgs": digests,
                "szs": [r.size for r in rows],
            },
        )
        await self.conn.execute(_QUEUE, {"org": self._org, "now": now, "ids": ids, "dgs": digests})

    async def claim_deliveries(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> Claim | None:
        rows = await self._rows(_CLAIM, {"now": now, "limit": limit, "lease": lease_until})
        if not rows:
            return None
        return Claim(org_id=rows[0].tenant_id, digests={r.device_id: r.digest for r in rows})

    async def desired_states(
        self, device_ids: Sequence[UUID]
    ) -> list[device_config.FleetDesiredState]:
        return [
            device_config.FleetDesiredState(
                device_id=r.device_id,
                document=_doc(r.document),
                sources=_sources.decode(r.sources),
                digest=r.digest,
            )
            for r in await self._rows(_DESIRED, {"ids": list(device_ids)})
        ]

    async def delivered(
        self, sent: Mapping[UUID, str], outcome: Mapping[UUID, str], now: datetime
    ) -> None:
        if not sent:
            return
        ids = list(sent)
        digests = [sent[d] for d in ids]
        params = {"ids": ids, "dgs": digests, "ocs": [outcome[d] for d in ids], "now": now}
        await self.conn.execute(_DELIVERED, params)
        await self.conn.execute(_DEQUEUE, {"ids": ids, "dgs": digests})
        await self.conn.execute(_RELEASE, {"ids": ids})  # a newer digest queued meanwhile

    async def delivery_failed(
        self, device_ids: Sequence[UUID], due: Callable[[int], datetime]
    ) -> None:
        rows = await self._rows(_FAILED, {"ids": list(device_ids)})
        if rows:
            params = {"ids": [r.device_id for r in rows], "dues": [due(r.attempts) for r in rows]}
            await self.conn.execute(_DUE, params)

    async def forget_deliveries(self, device_ids: Sequence[UUID]) -> None:
        await self.conn.execute(_FORGET_QUEUED, {"ids": list(device_ids)})

    # --- reports and compliance --------------------------------------------------------------

    async def save_reports(self, reports: Sequence[Report]) -> list[Report]:
        if not reports:
            return []
        params = {
            "org": self._org,
            "ids": [r.device_id for r in reports],
            "reports": [_json.encode(r.reported).decode() for r in reports],
            "ats": [r.reported_at for r in reports],
        }
        written = {r.device_id for r in await self._rows(_SAVE_REPORTS, params)}
        return [r for r in reports if r.device_id in written]

    async def stored(self, device_ids: Sequence[UUID]) -> list[Stored]:
        return [_stored(r) for r in await self._rows(_STORED_OF, {"ids": list(device_ids)})]

    async def applying(self, binding_id: UUID | None, artefact_version: str | None) -> list[Stored]:
        if binding_id is not None:
            rows = await self._rows(_STORED_OF_BINDING, {"id": binding_id})
        else:
            rows = await self._rows(_STORED_OF_VERSION, {"av": artefact_version})
        return [_stored(r) for r in rows]

    async def set_compliance(self, values: Mapping[UUID, tuple[DeviceCompliance, int]]) -> None:
        if not values:
            return
        ids = list(values)
        params = {
            "ids": ids,
            "cs": [values[d][0].value for d in ids],
            "vs": [values[d][1] for d in ids],
        }
        await self.conn.execute(_SET_COMPLIANCE, params)

    # --- profile-change jobs -----------------------------------------------------------------

    async def profile_job(self, profile_id: UUID) -> ProfileJob | None:
        row = (await self.conn.execute(_JOB, {"id": profile_id})).first()
        if row is None:
            return None
        return ProfileJob(
            profile_id=row.profile_id,
            profile_version=row.profile_version,
            status=ApplicationStatus(row.status),
            total=row.total,
            done=row.done,
            missing=row.missing,
            cursor=row.cursor,
            attempts=row.attempts,
            run_after=row.run_after,
            error=row.error,
            requested_at=row.requested_at,
            finished_at=row.finished_at,
        )

    async def save_profile_job(self, job: ProfileJob) -> None:
        values = msgspec.structs.asdict(job)
        values["status"] = job.status.value
        await self.conn.execute(_SAVE_JOB, values | {"org": self._org})
        if job.status in (ApplicationStatus.PENDING, ApplicationStatus.RUNNING):
            due = job.run_after or job.requested_at
            await self.conn.execute(
                _QUEUE_JOB, {"id": job.profile_id, "org": self._org, "due": due}
            )
        else:
            await self.conn.execute(_DEQUEUE_JOB, {"id": job.profile_id})

    async def claim_profile_job(
        self, now: datetime, lease_until: datetime
    ) -> tuple[UUID, UUID] | None:
        row = (await self.conn.execute(_CLAIM_JOB, {"now": now, "lease": lease_until})).first()
        return None if row is None else (row.tenant_id, row.profile_id)

    async def devices_with_profile(
        self, profile_id: UUID, after: UUID | None, limit: int
    ) -> list[UUID]:
        params = {"profile": profile_id, "after": after, "limit": limit}
        return [r.id for r in await self._rows(_WITH_PROFILE, params)]


class PgRollout(UnitOfWorkFactory):
    """The ``RolloutUnitOfWork`` bootstrap hands to the rollout (``PgRollout.over(uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgRolloutTx:
        return PgRolloutTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
