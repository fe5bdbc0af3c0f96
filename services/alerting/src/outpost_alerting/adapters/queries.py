"""The alert-rules, alerts and events collections: filterable fields and row → view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from outpost_contracts import alerting as api
from outpost_kit.db.listing import Collection, Field

_ENUM_OPS = frozenset({"eq", "ne", "in", "nin"})

RULES = Collection(
    table="alert_rules",
    columns=(
        "id, version, name, scope_type, scope_id, sensor, condition, severity, for_seconds,"
        " clear, hysteresis, enabled, channel_ids, description, created_at, updated_at"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "sensor": Field("sensor"),
        "severity": Field("severity", ops=_ENUM_OPS),
        "enabled": Field("enabled", "bool"),
        "scope.type": Field("scope_type", ops=_ENUM_OPS),
        "scope.id": Field("scope_id", "uuid"),
        "forSeconds": Field("for_seconds", "int32"),
        "createdAt": Field("created_at", "datetime"),
        "updatedAt": Field("updated_at", "datetime"),
    },
)

ALERTS = Collection(
    table="alerts",
    columns=(
        "id, version, rule_id, rule_version, device_id, sensor, status, severity, opened_at,"
        " trigger, acknowledged_at, acknowledged_by, acknowledge_comment, resolved_at,"
        " resolved_by, resolve_comment, resolution, clear_value"
    ),
    fields={
        "id": Field("id", "uuid"),
        "ruleId": Field("rule_id", "uuid"),
        "deviceId": Field("device_id", "uuid"),
        "sensor": Field("sensor"),
        "status": Field("status", ops=_ENUM_OPS),
        "severity": Field("severity", ops=_ENUM_OPS),
        "resolution": Field("resolution", ops=_ENUM_OPS),
        "openedAt": Field("opened_at", "datetime"),
        "acknowledgedAt": Field("acknowledged_at", "datetime"),
        "resolvedAt": Field("resolved_at", "datetime"),
    },
)

TIMELINE = Collection(
    table="timeline",
    columns="id, ts, type, device_id, alert_id, summary, data, seq",
    fields={
        "id": Field("id", "uuid"),
        "seq": Field("seq", "int"),
        "ts": Field("ts", "datetime"),
        "type": Field("type"),
        "deviceId": Field("device_id", "uuid"),
        "alertId": Field("alert_id", "uuid"),
    },
)


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def rule_view(row: Mapping[str, Any]) -> api.AlertRuleView:
    clear = _json(row["clear"])
    return api.AlertRuleView(
        id=row["id"],
        name=row["name"],
        scope=api.RuleScope(type=api.ScopeType(row["scope_type"]), id=row["scope_id"]),
        sensor=row["sensor"],
        condition=msgspec.convert(_json(row["condition"]), api.Condition),
        severity=api.Severity(row["severity"]),
        for_seconds=row["for_seconds"],
        clear=None if clear is None else msgspec.convert(clear, api.Condition),
        hysteresis=row["hysteresis"],
        enabled=row["enabled"],
        channel_ids=list(row["channel_ids"] or []),
        description=row["description"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def alert_view(row: Mapping[str, Any]) -> api.AlertView:
    resolution = row["resolution"]
    return api.AlertView(
        id=row["id"],
        version=row["version"],
        rule_id=row["rule_id"],
        rule_version=row["rule_version"],
        device_id=row["device_id"],
        sensor=row["sensor"],
        status=api.AlertStatus(row["status"]),
        severity=api.Severity(row["severity"]),
        opened_at=row["opened_at"],
        trigger=msgspec.convert(_json(row["trigger"]), api.AlertTrigger),
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        acknowledge_comment=row["acknowledge_comment"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        resolve_comment=row["resolve_comment"],
        resolution=None if resolution is None else api.Resolution(resolution),
        clear_value=row["clear_value"],
    )


def timeline_view(row: Mapping[str, Any]) -> api.TimelineEntry:
    return api.TimelineEntry(
        id=row["id"],
        ts=row["ts"],
        type=row["type"],
        summary=row["summary"],
        device_id=row["device_id"],
        alert_id=row["alert_id"],
        data=_json(row["data"]) or {},
        seq=row["seq"],
    )
