"""``make check-deploy``'s look at what an image installs: the locked dependencies of each
service carry no development tool (ADR 0087), read from ``uv.lock`` as the Dockerfile's
``uv export --no-dev --package outpost-<service>`` reads it."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

_ROOT = Path(__file__).resolve().parents[2]
_TOOL = _ROOT / "tools" / "check_deploy.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_deploy", _TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cd = _load()


def _problems(root: Path) -> list[str]:
    problems = cd.Problems()
    cd.check_image_dependencies(root, problems)
    return list(problems)


def _write_lock(root: Path, packages: list[dict[str, Any]]) -> Path:
    lines = ["version = 1", ""]
    for package in packages:
        lines.append("[[package]]")
        lines.append(f'name = "{package["name"]}"')
        deps = ", ".join(_dep(d) for d in package.get("dependencies", []))
        lines.append(f"dependencies = [{deps}]")
        for key in ("optional-dependencies", "dev-dependencies"):
            for extra, extra_deps in package.get(key, {}).items():
                lines.append(f"[package.{key}]")
                lines.append(f"{extra} = [{', '.join(_dep(d) for d in extra_deps)}]")
        lines.append("")
    root.mkdir(parents=True, exist_ok=True)
    (root / "uv.lock").write_text("\n".join(lines))
    return root


def _dep(dep: str) -> str:
    name, _, extra = dep.partition("[")
    if extra:
        return f'{{ name = "{name}", extra = ["{extra.rstrip("]")}"] }}'
    return f'{{ name = "{name}" }}'


def _services(kit_deps: list[str], **more: Any) -> list[dict[str, Any]]:
    return [
        *({"name": f"outpost-{s}", "dependencies": ["outpost-kit"]} for s in cd.SERVICES),
        {"name": "outpost-kit", "dependencies": kit_deps},
        *more.get("packages", []),
    ]


def test_the_committed_lock_keeps_dev_tools_out_of_every_image() -> None:
    assert _problems(_ROOT) == []
    lock = tomllib.loads((_ROOT / "uv.lock").read_text())
    assert "outpost-kit" in cd.locked_closure(lock, "outpost-identity")


def test_a_dev_tool_in_the_runtime_kit_is_refused_for_every_image(tmp_path: Path) -> None:
    root = _write_lock(tmp_path, _services(["msgspec", "typer"], packages=[{"name": "typer"}]))
    found = _problems(root)
    assert len(found) == len(cd.SERVICES)
    assert all("would install typer" in f for f in found)


def test_extras_are_followed(tmp_path: Path) -> None:
    packages = [
        {"name": "nats-py"},
        {"name": "kitx", "optional-dependencies": {"bench": ["faststream"]}},
        {"name": "faststream"},
    ]
    root = _write_lock(tmp_path, _services(["nats-py", "kitx[bench]"], packages=packages))
    assert all("would install faststream" in f for f in _problems(root))
    plain = _write_lock(tmp_path / "plain", _services(["kitx"], packages=packages))
    assert _problems(plain) == []


def test_development_groups_are_not_followed(tmp_path: Path) -> None:
    kit = {"name": "outpost-kit", "dev-dependencies": {"dev": ["pytest", "outpost-devkit"]}}
    packages = [
        *({"name": f"outpost-{s}", "dependencies": ["outpost-kit"]} for s in cd.SERVICES),
        kit,
        {"name": "pytest"},
        {"name": "outpost-devkit"},
    ]
    assert _problems(_write_lock(tmp_path, packages)) == []
