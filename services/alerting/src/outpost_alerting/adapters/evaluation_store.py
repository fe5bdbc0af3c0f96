"""Evaluation's state in Postgres: the rules that apply to a device and sensor, the watches
per rule and device (locked for the batch), their timers, and the unresolved alert of a
rule and device. Every query runs in the tenant's transaction, under RLS, except the timer
claim, which reads plumbing (ids and times) before it knows the tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_alerting.domain.evaluation import Rule, Watch
from outpost_contracts import alerting as api
from outpost_kit.db.uow import cached_text as _text

_watch_decoder = msgspec.json.Decoder(Watch)
_condition_decoder = msgspec.json.Decoder(api.Condition)

_RULE_COLUMNS = "id, version, sensor, condition, for_seconds, clear, hysteresis, enabled"


def _condition(raw: Any) -> api.Condition:
    if isinstance(raw, dict):
        return msgspec.convert(raw, api.Condition)
    return _condition_decoder.decode(raw)


def rule_of(row: Mapping[str, Any]) -> Rule:
    clear = row["clear"]
    return Rule(
        id=row["id"],
        version=row["version"],
        sensor=row["sensor"],
        condition=_condition(row["condition"]),
        for_seconds=row["for_seconds"],
        clear=None if clear is None else _condition(clear),
        hysteresis=row["hysteresis"],
        enabled=row["enabled"],
    )


class Scoped(msgspec.Struct, frozen=True, kw_only=True):
    """A device as scopes see it."""

    id: UUID
    group_id: UUID | None
    site_id: UUID | None
    status: str


async def devices(conn: AsyncConnection, ids: Iterable[UUID]) -> dict[UUID, Scoped]:
    rows = await conn.execute(
        text("SELECT id, group_id, site_id, status FROM devices WHERE id = ANY(:ids)"),
        {"ids": list(ids)},
    )
    return {
        r.id: Scoped(id=r.id, group_id=r.group_id, site_id=r.site_id, status=r.status) for r in rows
    }


class RuleRow(msgspec.Struct, frozen=True, kw_only=True):
    """A rule with what evaluation needs beside its condition: whom it covers, how severe."""

    rule: Rule
    scope_type: api.ScopeType
    scope_id: UUID | None
    severity: api.Severity

    def covers(self, device: Scoped) -> bool:
        if device.status == "DECOMMISSIONED":
            return False
        if self.scope_type == api.ScopeType.ORGANIZATION:
            return True
        if self.scope_type == api.ScopeType.DEVICE:
            return self.scope_id == device.id
        if self.scope_type == api.ScopeType.GROUP:
            return self.scope_id is not None and self.scope_id == device.group_id
        return self.scope_id is not None and self.scope_id == device.site_id


def _rule_row(row: Any) -> RuleRow:
    return RuleRow(
        rule=rule_of(row._mapping),
        scope_type=api.ScopeType(row.scope_type),
        scope_id=row.scope_id,
        severity=api.Severity(row.severity),
    )


# Devices and the rules that may cover them, in one round trip: the devices' rows (kind
# 'd', rule columns null) then the rules (kind 'r', device columns null). The rules are
# found through ``alert_rules_scope`` (org, scope type, scope id): the organization's, then
# one index probe per scope key the batch names (its devices' ids, groups and sites: a
# lateral join, so no plan scans every rule of the organization instead). ``offline`` rules
# are judged on presence, never on readings, whatever sensor they name.
_RULE_SELECT = (
    f"SELECT 'r' AS kind, r.id, NULL::uuid, NULL::uuid, NULL,"
    f" {', '.join('r.' + c for c in _RULE_COLUMNS.split(', ')[1:])},"
    " r.scope_type, r.scope_id, r.severity FROM alert_rules r"
)
_DEVICES_AND_RULES = (
    "WITH d AS (SELECT id, group_id, site_id, status FROM devices WHERE id = ANY(:ids)),"
    " k(scope_type, scope_id) AS (SELECT 'DEVICE', i FROM unnest(CAST(:ids AS uuid[])) AS i"
    " UNION SELECT 'GROUP', group_id FROM d WHERE group_id IS NOT NULL"
    " UNION SELECT 'SITE', site_id FROM d WHERE site_id IS NOT NULL)"
    " SELECT 'd' AS kind, id, group_id, site_id, status, NULL::integer AS version,"
    " NULL::text AS sensor, NULL::jsonb AS condition, NULL::integer AS for_seconds,"
    " NULL::jsonb AS clear, NULL::double precision AS hysteresis, NULL::boolean AS enabled,"
    " NULL::text AS scope_type, NULL::uuid AS scope_id, NULL::text AS severity FROM d"
    f" UNION ALL {_RULE_SELECT} WHERE r.scope_type = 'ORGANIZATION'"
    " AND r.enabled AND r.sensor = ANY(:sensors) AND r.condition->>'op' <> 'offline'"
    " UNION ALL SELECT r.* FROM k CROSS JOIN LATERAL"
    f" ({_RULE_SELECT} WHERE r.scope_type = k.scope_type AND r.scope_id = k.scope_id"
    " AND r.enabled AND r.sensor = ANY(:sensors) AND r.condition->>'op' <> 'offline')"
    " r ORDER BY 1, 2"
)


async def devices_and_rules(
    conn: AsyncConnection, ids: Iterable[UUID], sensors: Iterable[str]
) -> tuple[dict[UUID, Scoped], list[RuleRow]]:
    """The batch's devices that alerting knows, and the tenant's enabled rules on any of
    ``sensors`` whose scope may cover one of ``ids``: the organization's, and those naming
    one of the ids (known here or not yet), or a known device's group or site (not every
    rule of the organization: 1,000 device rules are 1,000 rows otherwise). One statement:
    a batch's first read."""
    rows = await conn.execute(
        _text(_DEVICES_AND_RULES), {"ids": list(ids), "sensors": list(sensors)}
    )
    found: dict[UUID, Scoped] = {}
    rules: list[RuleRow] = []
    for r in rows:
        if r.kind == "d":
            found[r.id] = Scoped(id=r.id, group_id=r.group_id, site_id=r.site_id, status=r.status)
        else:
            rules.append(_rule_row(r))
    return found, rules


async def rules_of_op(conn: AsyncConnection, op: str) -> list[RuleRow]:
    """The tenant's enabled rules of one condition operator (``nodata``: a device joining
    their scope is watched; ``offline``: a connect or disconnect is theirs to judge)."""
    rows = await conn.execute(
        text(
            f"SELECT {_RULE_COLUMNS}, scope_type, scope_id, severity FROM alert_rules"
            " WHERE enabled AND condition->>'op' = :op ORDER BY id"
        ),
        {"op": op},
    )
    return [_rule_row(r) for r in rows]


async def rule(conn: AsyncConnection, rule_id: UUID) -> RuleRow | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_RULE_COLUMNS}, scope_type, scope_id, severity FROM alert_rules"
                " WHERE id = :id"
            ),
            {"id": rule_id},
        )
    ).first()
    return None if row is None else _rule_row(row)


# The devices column a scope names (None: every device of the organization).
SCOPE_COLUMNS: dict[api.ScopeType, str | None] = {
    api.ScopeType.ORGANIZATION: None,
    api.ScopeType.DEVICE: "id",
    api.ScopeType.GROUP: "group_id",
    api.ScopeType.SITE: "site_id",
}


async def devices_in_scope(
    conn: AsyncConnection, scope_type: api.ScopeType, scope_id: UUID | None
) -> list[UUID]:
    column = SCOPE_COLUMNS[scope_type]
    where = "status <> 'DECOMMISSIONED'"
    params: dict[str, Any] = {}
    if column is not None:
        where += f" AND {column} = :scope"
        params["scope"] = scope_id
    rows = await conn.execute(text(f"SELECT id FROM devices WHERE {where} ORDER BY id"), params)
    return [r.id for r in rows]


_LOCK = (
    "SELECT w.rule_id, w.device_id, w.state, a.id AS alert_id FROM watches w"
    " JOIN unnest(CAST(:rules AS uuid[]), CAST(:devices AS uuid[])) AS p(rule_id, device_id)"
    " ON w.rule_id = p.rule_id AND w.device_id = p.device_id"
    " LEFT JOIN alerts a ON a.org_id = w.org_id AND a.rule_id = w.rule_id"
    " AND a.device_id = w.device_id AND a.status <> 'RESOLVED'"
    " ORDER BY w.rule_id, w.device_id FOR UPDATE OF w"
)

Pair = tuple[UUID, UUID]  # (rule, device)


class Locked(msgspec.Struct, frozen=True):
    """The watches of a batch's pairs, locked, and the alert of each pair that is not
    resolved, read in the same statement. The alerts are as of the statement's start: a
    statement that waited for a watch's lock sees the watch as its holder left it but not
    an alert that holder opened or resolved. Evaluation relies on them only where a stale
    answer fails safe (see ``app/evaluation.py``)."""

    watches: dict[Pair, Watch]
    alerts: dict[Pair, UUID]


async def lock(conn: AsyncConnection, org_id: UUID, pairs: list[Pair]) -> Locked:
    """The watches of (rule, device) pairs, locked for this transaction, in one order on
    every replica (rule, then device) so two replicas never deadlock; a pair without a row
    yet gets one first (``ON CONFLICT DO NOTHING``: a replica that made it first wins).
    With each pair's unresolved alert, in the same round trip."""
    if not pairs:
        return Locked({}, {})
    ordered = sorted(set(pairs))
    rows = list(
        await conn.execute(
            _text(_LOCK),
            {"rules": [r for r, _ in ordered], "devices": [d for _, d in ordered]},
        )
    )
    seen = {(r.rule_id, r.device_id) for r in rows}
    missing = [p for p in ordered if p not in seen]
    if missing:
        await conn.execute(
            _text(
                "INSERT INTO watches (org_id, rule_id, device_id, state, updated_at)"
                " SELECT :org, p.rule_id, p.device_id, CAST('null' AS jsonb), now()"
                " FROM unnest(CAST(:rules AS uuid[]), CAST(:devices AS uuid[]))"
                " AS p(rule_id, device_id) ON CONFLICT DO NOTHING"
            ),
            {"org": org_id, "rules": [r for r, _ in missing], "devices": [d for _, d in missing]},
        )
        rows += await conn.execute(
            _text(_LOCK),
            {"rules": [r for r, _ in missing], "devices": [d for _, d in missing]},
        )
    watches: dict[Pair, Watch] = {}
    alerts: dict[Pair, UUID] = {}
    for r in rows:
        pair = (r.rule_id, r.device_id)
        watch = _decode(r.state)
        if watch is not None:
            watches[pair] = watch
        if r.alert_id is not None:
            alerts[pair] = r.alert_id
    return Locked(watches, alerts)


async def lock_watches(conn: AsyncConnection, org_id: UUID, pairs: list[Pair]) -> dict[Pair, Watch]:
    """``lock``'s watches only."""
    return (await lock(conn, org_id, pairs)).watches


def _decode(raw: Any) -> Watch | None:
    if raw is None or raw == "null":
        return None
    if isinstance(raw, dict):
        return msgspec.convert(raw, Watch)
    return _watch_decoder.decode(raw)


async def save_watches(
    conn: AsyncConnection,
    org_id: UUID,
    watches: Mapping[tuple[UUID, UUID], Watch],
    timed: Iterable[tuple[UUID, UUID]] | None = None,
) -> None:
    """Store the watches and their timers (a due time, or none). ``timed``: the pairs that
    may have a timer now (their watch had a due time when it was loaded); None: any may."""
    if not watches:
        return
    keys = list(watches)
    await conn.execute(
        text(
            "INSERT INTO watches (org_id, rule_id, device_id, state, updated_at)"
            " SELECT :org, p.rule_id, p.device_id, CAST(p.state AS jsonb), now()"
            " FROM unnest(CAST(:rules AS uuid[]), CAST(:devices AS uuid[]),"
            " CAST(:states AS text[]))"
            " AS p(rule_id, device_id, state)"
            " ON CONFLICT (org_id, rule_id, device_id) DO UPDATE SET state = excluded.state,"
            " updated_at = excluded.updated_at"
        ),
        {
            "org": org_id,
            "rules": [r for r, _ in keys],
            "devices": [d for _, d in keys],
            "states": [msgspec.json.encode(watches[k]).decode() for k in keys],
        },
    )
    due = [(k, w.due_at) for k, w in watches.items() if w.due_at is not None]
    idle = [k for k, w in watches.items() if w.due_at is None]
    if timed is not None:
        could = set(timed)
        idle = [k for k in idle if k in could]
    if due:
        await conn.execute(
            text(
                "INSERT INTO watch_timers (rule_id, device_id, tenant_id, due_at)"
                " SELECT p.rule_id, p.device_id, :org, p.due_at"
                " FROM unnest(CAST(:rules AS uuid[]), CAST(:devices AS uuid[]),"
                " CAST(:dues AS timestamptz[])) AS p(rule_id, device_id, due_at)"
                " ON CONFLICT (rule_id, device_id) DO UPDATE SET due_at = excluded.due_at"
            ),
            {
                "org": org_id,
                "rules": [k[0] for k, _ in due],
                "devices": [k[1] for k, _ in due],
                "dues": [d for _, d in due],
            },
        )
    if idle:
        await forget_timers(conn, idle)


async def forget_timers(conn: AsyncConnection, pairs: list[tuple[UUID, UUID]]) -> None:
    await conn.execute(
        text(
            "DELETE FROM watch_timers t USING unnest(CAST(:rules AS uuid[]),"
            " CAST(:devices AS uuid[])) AS p(rule_id, device_id)"
            " WHERE t.rule_id = p.rule_id AND t.device_id = p.device_id"
        ),
        {"rules": [r for r, _ in pairs], "devices": [d for _, d in pairs]},
    )


async def forget_device(conn: AsyncConnection, device_id: UUID) -> None:
    """A decommissioned device's watches and timers."""
    await conn.execute(text("DELETE FROM watches WHERE device_id = :d"), {"d": device_id})
    await conn.execute(text("DELETE FROM watch_timers WHERE device_id = :d"), {"d": device_id})


async def upsert_device(
    conn: AsyncConnection,
    org_id: UUID,
    device_id: UUID,
    version: int,
    **values: Any,
) -> None:
    """Insert or change alerting's row of a device (``name``, ``status``, ``group_id``,
    ``site_id``); an event older than the row changes nothing."""
    columns = ["name", "status", "group_id", "site_id"]
    given = {c: values[c] for c in columns if c in values}
    sets = ", ".join(f"{c} = :{c}" for c in given)
    await conn.execute(
        text(
            "INSERT INTO devices (org_id, id, name, status, group_id, site_id, version)"
            " VALUES (:org, :id, :name, :status, :group_id, :site_id, :v)"
            " ON CONFLICT (org_id, id) DO UPDATE SET "
            + (sets + ", " if sets else "")
            + "version = excluded.version WHERE devices.version < excluded.version"
        ),
        {
            "org": org_id,
            "id": device_id,
            "v": version,
            "name": values.get("name", ""),
            "status": values.get("status", "REGISTERED"),
            "group_id": values.get("group_id"),
            "site_id": values.get("site_id"),
        },
    )


async def forget_rule(conn: AsyncConnection, rule_id: UUID) -> None:
    """A deleted rule's watches and timers."""
    await conn.execute(text("DELETE FROM watches WHERE rule_id = :r"), {"r": rule_id})
    await conn.execute(text("DELETE FROM watch_timers WHERE rule_id = :r"), {"r": rule_id})


async def claim_due(
    conn: AsyncConnection, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[UUID, UUID, UUID]]:
    """(tenant, rule, device) of due timers, leased to this replica until ``lease_until``
    (another replica skips them; one that dies leaves them due again after the lease)."""
    rows = await conn.execute(
        text(
            "UPDATE watch_timers t SET due_at = :lease FROM ("
            " SELECT rule_id, device_id FROM watch_timers WHERE due_at <= :now"
            " ORDER BY due_at LIMIT :n FOR UPDATE SKIP LOCKED) due"
            " WHERE t.rule_id = due.rule_id AND t.device_id = due.device_id"
            " RETURNING t.tenant_id, t.rule_id, t.device_id"
        ),
        {"now": now, "lease": lease_until, "n": limit},
    )
    return [(r.tenant_id, r.rule_id, r.device_id) for r in rows]


async def next_due(conn: AsyncConnection) -> datetime | None:
    return (await conn.execute(text("SELECT min(due_at) FROM watch_timers"))).scalar()


async def unresolved_alert(conn: AsyncConnection, rule_id: UUID, device_id: UUID) -> UUID | None:
    row = (
        await conn.execute(
            text(
                "SELECT id FROM alerts WHERE rule_id = :r AND device_id = :d"
                " AND status <> 'RESOLVED'"
            ),
            {"r": rule_id, "d": device_id},
        )
    ).first()
    return None if row is None else row.id


async def unresolved_of_rule(conn: AsyncConnection, rule_id: UUID) -> list[UUID]:
    rows = await conn.execute(
        text("SELECT id FROM alerts WHERE rule_id = :r AND status <> 'RESOLVED' ORDER BY id"),
        {"r": rule_id},
    )
    return [r.id for r in rows]
