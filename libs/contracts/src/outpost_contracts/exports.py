"""Exports: jobs arrive with their issue; the service exists now."""

from __future__ import annotations

SERVICE = "exports"
