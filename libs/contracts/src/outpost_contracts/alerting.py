"""Alerting: rules, alerts and channels arrive with their issue; the service exists now."""

from __future__ import annotations

SERVICE = "alerting"
