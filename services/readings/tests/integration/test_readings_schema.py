"""rls-audit of the readings schema as its migrations build it, through its own role."""

from __future__ import annotations

import pytest

from outpost_devkit.testing.audit import audit_service
from outpost_kit.cli import migrations_dir
from outpost_readings import bootstrap

pytestmark = pytest.mark.integration


async def test_readings_schema_has_no_rls_bypass(postgres_dsn: str) -> None:
    assert await audit_service(postgres_dsn, "readings", migrations_dir(bootstrap.__file__)) == []
