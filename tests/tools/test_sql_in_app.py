"""The SQL-in-app/ count and its check (ADR 0085), fed small synthetic trees."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

_TOOL = Path(__file__).resolve().parents[2] / "tools" / "sql_in_app.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sql_in_app", _TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = _load()


def write(root: Path, service: str, relative: str, source: str) -> None:
    path = root / "services" / service / "src" / f"outpost_{service}" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_a_service_at_zero_fails_the_check_when_sql_comes_back(tmp_path: Path) -> None:
    write(tmp_path, "devices", "app/handlers.py", "async def f(tx):\n    return await tx.find()\n")
    write(tmp_path, "devices", "adapters/store.py", 'SQL = "SELECT 1 FROM devices"\n')
    assert tool.check(tmp_path) == []
    write(
        tmp_path,
        "devices",
        "app/handlers.py",
        "from sqlalchemy.exc import IntegrityError\n"
        'SQL = ("SELECT id FROM devices"\n       " WHERE name = :n")\n',
    )
    assert tool.check(tmp_path) == [
        "services/devices/src/outpost_devices/app/handlers.py:1: imports sqlalchemy.exc",
        "services/devices/src/outpost_devices/app/handlers.py:2: an SQL statement",
    ]
    assert tool.count(tmp_path) == {"devices": 1}


def test_a_service_still_moving_is_counted_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every service has moved (ADR 0086): the test names one as still moving itself.
    monkeypatch.setattr(tool, "STILL_MOVING", frozenset({"readings"}))
    moving = sorted(tool.STILL_MOVING)[0]
    write(tmp_path, moving, "app/handlers.py", 'import asyncpg\nQ = f"UPDATE t SET a = {1}"\n')
    assert tool.check(tmp_path) == []
    assert tool.count(tmp_path) == {moving: 1}
