"""Every test module has a basename of its own: pytest imports test modules by basename
(rootdir-relative, no packages), and two files named alike fail collection of the whole
suite ("import file mismatch"), as an e2e and an integration module named
``test_fleet_config.py`` once did."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

_ROOT = Path(__file__).resolve().parents[2]
_SKIP = {".venv", ".outpost", "node_modules", ".git", "build"}


def test_no_two_test_modules_share_a_basename() -> None:
    found: dict[str, list[str]] = defaultdict(list)
    for path in _ROOT.rglob("test_*.py"):
        if _SKIP.intersection(path.relative_to(_ROOT).parts):
            continue
        found[path.name].append(str(path.relative_to(_ROOT)))
    assert {name: paths for name, paths in found.items() if len(paths) > 1} == {}
