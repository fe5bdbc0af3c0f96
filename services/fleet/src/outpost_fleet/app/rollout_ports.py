"""What the rollout needs of storage (ADR 0093), as ports: the fleet's view of devices, the
effective states and their delivery queue, the devices' reports and the profile-change jobs.
Postgres implements them in ``adapters/rollout_store.py``. No SQL and no driver type here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from outpost_contracts import device_config
from outpost_contracts.fleet import Target
from outpost_fleet.domain.compliance import DeviceCompliance
from outpost_fleet.domain.desired_state import DeviceFacts, ResolvedBinding
from outpost_fleet.domain.placement import Placement
from outpost_fleet.domain.profile_jobs import ProfileJob
from outpost_fleet.domain.rollout import Selection
from outpost_kit.aggregate import EventStream

Clock = Callable[[], datetime]  # the time now (``ids.now``; a test's own)


class StateRow(msgspec.Struct, frozen=True, kw_only=True):
    """A device's effective state as computed, to store (and deliver)."""

    desired: device_config.FleetDesiredState
    applied: tuple[UUID, ...]
    artefact_versions: list[str]
    size: int


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """A device's stored effective state, with what was delivered and reported of it."""

    device_id: UUID
    document: dict[str, Any]
    sources: dict[str, Any]  # JSON Pointer -> {bindingId, artefactId, ...} as delivered
    digest: str
    delivered_at: datetime | None
    compliance: DeviceCompliance | None
    compliance_version: int
    reported: dict[str, Any] | None = None
    reported_at: datetime | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    reported: dict[str, Any]
    reported_at: datetime


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """Deliveries due, of one organization, leased to one worker."""

    org_id: UUID
    digests: dict[UUID, str]  # device -> the digest queued


class RolloutTx(Protocol):
    """One transaction; ``set_tenant`` moves it to an organization (a consumer's batch
    spans several)."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    async def set_tenant(self, org_id: UUID) -> None: ...

    # --- devices ---------------------------------------------------------------------------

    async def placements(self, device_ids: Sequence[UUID]) -> dict[UUID, Placement]:
        """What the fleet knows of these devices (tombstones included)."""
        ...

    async def save_placements(self, placements: Sequence[Placement], now: datetime) -> None:
        """Upsert them; a decommissioned one loses its effective state and queued delivery."""
        ...

    async def devices(
        self, selection: Selection, after: UUID | None, limit: int
    ) -> list[DeviceFacts]:
        """The tenant's live devices in ``selection``, in id order after ``after``."""
        ...

    async def count_devices(self, selection: Selection) -> int: ...

    # --- the configuration (artefacts and bindings, fleetcore's read models) ----------------

    async def resolved_bindings(self) -> list[ResolvedBinding]:
        """Every binding of the tenant with the document of the version it means now."""
        ...

    async def binding_target(self, binding_id: UUID) -> Target | None: ...

    async def artefact_version_exists(self, artefact_id: UUID, version: int) -> bool: ...

    async def latest_targets_of_artefact(self, artefact_id: UUID) -> list[Target]:
        """The targets of the artefact's bindings on its latest version."""
        ...

    # --- effective states and their delivery -------------------------------------------------

    async def digests(self, device_ids: Sequence[UUID]) -> dict[UUID, str]: ...

    async def save_states(self, rows: Sequence[StateRow], now: datetime) -> None:
        """Upsert the effective states and queue their delivery (due now)."""
        ...

    async def claim_deliveries(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> Claim | None:
        """Up to ``limit`` deliveries due, all of the organization with the oldest one."""
        ...

    async def desired_states(
        self, device_ids: Sequence[UUID]
    ) -> list[device_config.FleetDesiredState]: ...

    async def delivered(
        self, sent: Mapping[UUID, str], outcome: Mapping[UUID, str], now: datetime
    ) -> None:
        """Record each sent digest's outcome (DELIVERED, MISSING, TOO_LARGE) and take it off
        the queue (unless a newer digest was queued meanwhile)."""
        ...

    async def delivery_failed(
        self, device_ids: Sequence[UUID], due: Callable[[int], datetime]
    ) -> None:
        """Give the deliveries back: each due again at ``due(attempts)``, ``attempts`` its
        failures in a row."""
        ...

    async def forget_deliveries(self, device_ids: Sequence[UUID]) -> None: ...

    # --- reports and compliance ---------------------------------------------------------------

    async def save_reports(self, reports: Sequence[Report]) -> list[Report]:
        """Keep each device's newest report; the reports that were newer than the stored."""
        ...

    async def stored(self, device_ids: Sequence[UUID]) -> list[Stored]:
        """The effective states of these devices, with their newest report."""
        ...

    async def applying(self, binding_id: UUID | None, artefact_version: str | None) -> list[Stored]:
        """The effective states one binding (or one ``artefactId@version``) was merged into."""
        ...

    async def set_compliance(self, values: Mapping[UUID, tuple[DeviceCompliance, int]]) -> None:
        """Each device's compliance, and its drift stream's version."""
        ...

    # --- profile-change jobs -------------------------------------------------------------------

    async def profile_job(self, profile_id: UUID) -> ProfileJob | None: ...

    async def save_profile_job(self, job: ProfileJob) -> None:
        """Write the job; queue it when it has work left (due at ``run_after`` or now)."""
        ...

    async def claim_profile_job(
        self, now: datetime, lease_until: datetime
    ) -> tuple[UUID, UUID] | None:
        """(organization, profile) of a job due, leased to one worker."""
        ...

    async def devices_with_profile(
        self, profile_id: UUID, after: UUID | None, limit: int
    ) -> list[UUID]: ...


class RolloutUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[RolloutTx]: ...
