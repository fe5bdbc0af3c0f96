"""rls-audit of the exports schema as its migrations build it, through its own role."""

from __future__ import annotations

import pytest

from outpost_devkit.testing.audit import audit_service
from outpost_exports import bootstrap
from outpost_kit.cli import migrations_dir

pytestmark = pytest.mark.integration


async def test_exports_schema_has_no_rls_bypass(postgres_dsn: str) -> None:
    assert await audit_service(postgres_dsn, "exports", migrations_dir(bootstrap.__file__)) == []
