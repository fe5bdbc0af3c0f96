"""Read models of alert rules and alerts, and the timeline entries of alert transitions,
updated in the transaction that appends the events."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_alerting.adapters import timeline
from outpost_contracts import alerting as api
from outpost_contracts.envelope import EventEnvelope
from outpost_kit.db.uow import cached_text

_RULE_COLUMNS = (
    "name",
    "scope_type",
    "scope_id",
    "sensor",
    "condition",
    "severity",
    "for_seconds",
    "clear",
    "hysteresis",
    "enabled",
    "channel_ids",
    "description",
)


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _rule_values(data: api.AlertRuleCreated | api.AlertRuleUpdated) -> dict[str, Any]:
    return {
        "name": data.name,
        "scope_type": data.scope.type.value,
        "scope_id": data.scope.id,
        "sensor": data.sensor,
        "condition": _json(data.condition),
        "severity": data.severity.value,
        "for_seconds": data.for_seconds,
        "clear": _json(data.clear),
        "hysteresis": data.hysteresis,
        "enabled": data.enabled,
        "channel_ids": list(data.channel_ids),
        "description": data.description,
    }


def _placeholder(column: str) -> str:
    return f"CAST(:{column} AS jsonb)" if column in ("condition", "clear") else f":{column}"


class AlertingProjector:
    @staticmethod
    async def _alert_row(
        conn: AsyncConnection, e: EventEnvelope, change: str, params: dict[str, Any]
    ) -> None:
        """Change an alert's row and record the event on the timeline, in one statement
        (``change`` returns the alert's ``device_id``)."""
        result = await conn.execute(
            cached_text(
                f"WITH a AS ({change}),{timeline.INSERT_FROM_ALERT} SELECT count(*) FROM a"
            ),
            {**params, **timeline.alert_entry_params(e)},
        )
        if result.scalar_one() != 1:
            raise LookupError(f"no row of alert {e.stream_id} for {e.type}")

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.AlertRuleCreated):
            cols = ", ".join(_RULE_COLUMNS)
            values = ", ".join(_placeholder(c) for c in _RULE_COLUMNS)
            await conn.execute(
                text(
                    f"INSERT INTO alert_rules (org_id, id, version, {cols}, created_at,"
                    f" updated_at) VALUES (:org, :id, :v, {values}, :at, :at)"
                ),
                {**key, **_rule_values(data)},
            )
        elif isinstance(data, api.AlertRuleUpdated):
            sets = ", ".join(f"{c} = {_placeholder(c)}" for c in _RULE_COLUMNS)
            await conn.execute(
                text(
                    f"UPDATE alert_rules SET {sets}, version = :v, updated_at = :at"
                    " WHERE org_id = :org AND id = :id"
                ),
                {**key, **_rule_values(data)},
            )
        elif isinstance(data, api.AlertRuleDeleted):
            await conn.execute(
                text("DELETE FROM alert_rules WHERE org_id = :org AND id = :id"), key
            )
        elif isinstance(data, api.AlertOpened):
            await self._alert_row(
                conn,
                e,
                "INSERT INTO alerts (org_id, id, version, rule_id, rule_version, device_id,"
                " sensor, status, severity, opened_at, trigger, updated_at) VALUES (:org,"
                " :id, :v, :rule, :rule_v, :device, :sensor, 'OPEN', :severity, :at,"
                " CAST(:trigger AS jsonb), :at) RETURNING device_id",
                {
                    **key,
                    "rule": data.rule_id,
                    "rule_v": data.rule_version,
                    "device": data.device_id,
                    "sensor": data.sensor,
                    "severity": data.severity.value,
                    "trigger": _json(data.trigger),
                },
            )
        elif isinstance(data, api.AlertAcknowledged):
            await self._alert_row(
                conn,
                e,
                "UPDATE alerts SET status = 'ACKNOWLEDGED', acknowledged_at = :at,"
                " acknowledged_by = :by, acknowledge_comment = :comment, version = :v,"
                " updated_at = :at WHERE org_id = :org AND id = :id RETURNING device_id",
                {**key, "by": data.by, "comment": data.comment},
            )
        elif isinstance(data, api.AlertResolved):
            await self._alert_row(
                conn,
                e,
                "UPDATE alerts SET status = 'RESOLVED', resolved_at = :at, resolved_by = :by,"
                " resolve_comment = :comment, resolution = :resolution,"
                " clear_value = :value, version = :v, updated_at = :at"
                " WHERE org_id = :org AND id = :id RETURNING device_id",
                {
                    **key,
                    "by": data.by,
                    "comment": data.comment,
                    "resolution": data.resolution.value,
                    "value": data.value,
                },
            )
