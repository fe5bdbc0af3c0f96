"""docs/operations.md's generated parts (configuration reference, metrics catalogue) are
what the code says now; the generator finds what it promises to find."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load("gen_config_reference")


def test_the_committed_reference_is_current() -> None:
    """Fails when a setting or a metric changed without `uv run python
    tools/gen_config_reference.py` (whoever merges regenerates it)."""
    text = (_ROOT / "docs" / "operations.md").read_text()
    assert gen.render(_ROOT, text) == text, "docs/operations.md is stale: run the generator"


def test_every_setting_of_every_service_is_in_the_reference() -> None:
    text = gen.config_reference()
    catalog = sys.modules["config_catalog"]
    for service in catalog.SERVICES:
        for setting in catalog.settings(service):
            name = setting.shared_variable if setting.inherited else setting.variable
            assert f"`{name}`" in text, name
    assert "`OUTPOST_ADMIN_DATABASE_URL`" in text


def test_a_stale_block_is_rewritten_and_check_says_so(tmp_path: Path) -> None:
    text = (_ROOT / "docs" / "operations.md").read_text()
    start = text.index("<!-- BEGIN GENERATED: config-reference -->\n") + len(
        "<!-- BEGIN GENERATED: config-reference -->\n"
    )
    stale = (
        text[:start]
        + "| `OUTPOST_GONE` | old |\n"
        + text[text.index("<!-- END GENERATED: config-reference -->") :]
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "operations.md").write_text(stale)
    for part in ("libs", "services"):
        (tmp_path / part).symlink_to(_ROOT / part)
    assert gen.main(["--check", str(tmp_path)]) == 1
    assert gen.main([str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "operations.md").read_text() == text


def test_metrics_are_found_by_their_declarations(tmp_path: Path) -> None:
    source = tmp_path / "services" / "x" / "src" / "outpost_x" / "m.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from prometheus_client import Counter, Histogram\n"
        "A = Counter('outpost_x_things', 'Things', ['kind'])\n"
        "class M:\n"
        "    def __init__(self, r):\n"
        "        self.h = Histogram('outpost_x_seconds', 'Time', labelnames=['op'], registry=r)\n"
        "B = Counter(name_from_elsewhere, 'not a literal: skipped')\n"
    )
    found = {m.exposed: m for m in gen.metrics(tmp_path)}
    assert set(found) == {"outpost_x_things_total", "outpost_x_seconds"}
    assert found["outpost_x_things_total"].labels == ("kind",)
    assert (
        found["outpost_x_seconds"].labels == ("op",)
        and found["outpost_x_seconds"].kind == "Histogram"
    )
    table = gen.metrics_catalogue(tmp_path, {"outpost_x_seconds"})
    assert "[entry](#outpost_x_seconds)" in table
    assert "| `outpost_x_things_total` | counter | `kind` | Things |" in table
