"""Delivery rules, pure: the webhook signature, what an attempt's result means, the back-off
with jitter and the retry budget, and the text of an alert e-mail. Time and randomness are
passed in."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outpost_contracts.notifications import DeliveryOutcome

SIGNATURE_HEADER = "X-Outpost-Signature"
EVENT_ID_HEADER = "X-Outpost-Event-Id"
EVENT_TYPE_HEADER = "X-Outpost-Event-Type"
MAX_ERROR = 500  # characters of an error kept in the log


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the exact body with the secret>`` (docs/api.md)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True)
class Budget:
    """How long a delivery is retried: at most ``max_attempts`` attempts, and no attempt
    starts later than ``max_age`` after the delivery was made. Back-off between attempts
    doubles from ``backoff_min`` up to ``backoff_max``, with "full jitter" over its upper
    half (so retries of many deliveries spread out but never come back at once)."""

    max_attempts: int = 8
    max_age: timedelta = timedelta(hours=1)
    backoff_min: timedelta = timedelta(seconds=1)
    backoff_max: timedelta = timedelta(minutes=5)

    def backoff(self, attempts: int, jitter: float) -> timedelta:
        """The wait after the ``attempts``-th failed attempt; ``jitter`` in [0, 1)."""
        base = min(self.backoff_min * 2 ** max(attempts - 1, 0), self.backoff_max)
        return base / 2 + base / 2 * jitter

    def next_attempt(
        self, attempts: int, created_at: datetime, now: datetime, jitter: float
    ) -> datetime | None:
        """When to try again after ``attempts`` failed attempts; None when the budget is
        spent (the delivery is dead-lettered)."""
        if attempts >= self.max_attempts:
            return None
        due = now + self.backoff(attempts, jitter)
        if due - created_at > self.max_age:
            return None
        return due


@dataclass(frozen=True)
class Result:
    """What one attempt came to. ``permanent``: trying again cannot help (the URL now points
    somewhere refused, the channel cannot be sent to as configured)."""

    ok: bool
    latency_ms: float
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False


def http_result(status_code: int, latency_ms: float) -> Result:
    """2xx succeeds. A 3xx is a failure: redirects are not followed (the target of a
    redirect was never checked). Anything else fails and is retried within the budget."""
    if 200 <= status_code < 300:
        return Result(ok=True, latency_ms=latency_ms, status_code=status_code)
    if 300 <= status_code < 400:
        error = f"HTTP {status_code}: redirects are not followed"
    else:
        error = f"HTTP {status_code}"
    return Result(ok=False, latency_ms=latency_ms, status_code=status_code, error=error)


def failed(error: str, latency_ms: float, *, permanent: bool = False) -> Result:
    return Result(ok=False, latency_ms=latency_ms, error=error[:MAX_ERROR], permanent=permanent)


def outcome(result: Result, next_due: datetime | None) -> DeliveryOutcome:
    if result.ok:
        return DeliveryOutcome.SUCCEEDED
    if result.permanent or next_due is None:
        return DeliveryOutcome.DEAD
    return DeliveryOutcome.FAILED


# --- e-mail -----------------------------------------------------------------------------

_VERBS = {
    "AlertOpened": "opened",
    "AlertAcknowledged": "acknowledged",
    "AlertResolved": "resolved",
    "NotificationTest": "test",
}


def event_name(event_type: str) -> str:
    """``alerting.AlertOpened.v1`` → ``AlertOpened``."""
    parts = event_type.split(".")
    return parts[1] if len(parts) == 3 else event_type


def _line(label: str, value: Any) -> str | None:
    return None if value is None or value == "" else f"{label}: {value}"


def email_text(
    envelope: dict[str, Any], *, rule_name: str | None, device_name: str | None
) -> tuple[str, str]:
    """(subject, plain-text body) of an alert event, from its envelope as JSON (camelCase)."""
    data = envelope.get("data") or {}
    name = event_name(str(data.get("type", "")))
    verb = _VERBS.get(name, name)
    alert_id = envelope.get("streamId")
    if name == "NotificationTest":
        subject = "[Outpost] Test notification"
        body = [
            str(data.get("message") or "This is a test notification from Outpost."),
            "",
            f"Channel: {data.get('channelId')}",
            f"Event: {envelope.get('id')}",
            f"Time: {envelope.get('occurredAt')}",
        ]
        return subject, "\n".join(body) + "\n"
    trigger = data.get("trigger") or {}
    severity = data.get("severity")
    what = rule_name or (f"rule {data['ruleId']}" if data.get("ruleId") else "an alert")
    on = device_name or data.get("deviceId")
    subject = f"[Outpost] {severity + ' ' if severity else ''}alert {verb}: {what}"
    if on:
        subject += f" on {on}"
    lines = [
        f"The alert {alert_id} was {verb}.",
        "",
        _line("Rule", (rule_name and f"{rule_name} ({data.get('ruleId')})") or data.get("ruleId")),
        _line("Rule version", data.get("ruleVersion")),
        _line(
            "Device",
            (device_name and f"{device_name} ({data.get('deviceId')})") or data.get("deviceId"),
        ),
        _line("Sensor", data.get("sensor")),
        _line("Severity", severity),
        _line("Condition", trigger.get("condition")),
        _line("Value", trigger.get("value")),
        _line("Reading time", trigger.get("ts")),
        _line("Holding since", trigger.get("since")),
        _line("Resolution", data.get("resolution")),
        _line("Clearing value", data.get("value")),
        _line("Comment", data.get("comment")),
        _line("Time", envelope.get("occurredAt")),
        _line("Event", envelope.get("id")),
    ]
    return subject, "\n".join(line for line in lines if line is not None) + "\n"
