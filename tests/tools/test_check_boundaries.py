"""The import-boundary check, fed small synthetic trees."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

_TOOL = Path(__file__).resolve().parents[2] / "tools" / "check_boundaries.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_boundaries", _TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


cb = _load()


def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    for parent in path.parents:
        if parent.name == "src" or parent == root:
            break
        (parent / "__init__.py").touch()
    return path


def messages(root: Path) -> list[str]:
    return [v.render(root.resolve()) for v in cb.check(root)]


DOMAIN = "services/devices/src/outpost_devices/domain"


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    write(
        tmp_path,
        f"{DOMAIN}/devices.py",
        "from __future__ import annotations\n"
        "import re\n"
        "from collections.abc import Sequence\n"
        "from datetime import datetime\n"
        "from urllib.parse import urlsplit\n"
        "from urllib import parse\n"
        "import msgspec\n"
        "from outpost_contracts.devices import DeviceRegistered\n"
        "from outpost_devices.domain.tags import Tag\n"
        "from . import tags\n"
        "from .tags import Tag as T\n",
    )
    write(tmp_path, f"{DOMAIN}/tags.py", "import enum\n")
    write(
        tmp_path,
        "services/devices/src/outpost_devices/adapters/sql.py",
        "import sqlalchemy\nimport os\nfrom outpost_kit.db import uow\n"
        "from outpost_devices.domain import devices\n",
    )
    write(tmp_path, "libs/kit/src/outpost_kit/messaging.py", "import nats\nimport asyncio\n")
    write(tmp_path, "libs/contracts/src/outpost_contracts/base.py", "import msgspec\nimport uuid\n")
    assert messages(tmp_path) == []
    assert cb.main([str(tmp_path)]) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "import sqlalchemy",
        "import asyncio",
        "import os",
        "import time",
        "import secrets",
        "import random",
        "import logging",
        "from subprocess import run",
        "import nats.aio.client",
        "from outpost_kit.ids import new_id",
        "import httpx",
        "from urllib import request",
        "from outpost_devices.adapters import sql",
        "from outpost_devices import settings",
        "from .. import settings",
        "from ..app import handlers",
    ],
)
def test_domain_refuses_io_and_outer_layers(tmp_path: Path, statement: str) -> None:
    write(tmp_path, f"{DOMAIN}/devices.py", f"import enum\n{statement}\n")
    found = messages(tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{DOMAIN}/devices.py:2: domain module imports ")


def test_nested_domain_packages_count_as_domain(tmp_path: Path) -> None:
    path = "services/gateway/src/outpost_gateway/domain/query/paging.py"
    write(tmp_path, path, "from outpost_gateway.domain.query import typed\nimport socket\n")
    assert messages(tmp_path) == [
        f"{path}:2: domain module imports socket: the domain does no I/O; allowed are pure "
        "stdlib modules, msgspec, outpost_contracts and outpost_gateway.domain"
    ]


def test_domain_may_not_use_another_services_domain(tmp_path: Path) -> None:
    write(tmp_path, f"{DOMAIN}/devices.py", "from outpost_identity.domain import organizations\n")
    found = messages(tmp_path)
    assert len(found) == 1
    assert "services may not import another service's package" in found[0]


def test_services_may_not_import_each_other(tmp_path: Path) -> None:
    path = "services/gateway/src/outpost_gateway/entrypoints/devices.py"
    write(tmp_path, path, "import json\n\nfrom outpost_devices.app import handlers\n")
    assert messages(tmp_path) == [
        f"{path}:3: outpost_gateway imports outpost_devices.app: services may not import "
        "another service's package"
    ]
    assert cb.main([str(tmp_path)]) == 1


def test_imports_inside_functions_are_found(tmp_path: Path) -> None:
    path = "services/alerting/src/outpost_alerting/bootstrap.py"
    write(tmp_path, path, "def main():\n    import outpost_readings.bootstrap\n")
    found = messages(tmp_path)
    assert found
    assert found[0].startswith(f"{path}:2: outpost_alerting imports outpost_readings")


def test_kit_and_contracts_import_no_service(tmp_path: Path) -> None:
    kit = "libs/kit/src/outpost_kit/dev/stack.py"
    contracts = "libs/contracts/src/outpost_contracts/devices.py"
    write(tmp_path, kit, "from outpost_identity.bootstrap import main\n")
    write(tmp_path, contracts, "import outpost_gateway\n")
    assert messages(tmp_path) == [
        f"{contracts}:1: outpost_contracts imports outpost_gateway: outpost_contracts may not "
        "import any service package",
        f"{kit}:1: outpost_kit imports outpost_identity.bootstrap: outpost_kit may not import "
        "any service package",
    ]


def test_contracts_import_only_msgspec_and_stdlib(tmp_path: Path) -> None:
    path = "libs/contracts/src/outpost_contracts/base.py"
    write(
        tmp_path,
        path,
        "import secrets\nimport msgspec\nfrom outpost_contracts import subjects\n"
        "import pydantic\nfrom outpost_kit import messaging\n",
    )
    found = messages(tmp_path)
    assert [f.split(": ", 1)[0] for f in found] == [f"{path}:4", f"{path}:5"]
    assert all("contracts may import only msgspec and the stdlib" in f for f in found)


def test_a_new_service_directory_is_a_service(tmp_path: Path) -> None:
    write(tmp_path, "services/billing/src/outpost_billing/__init__.py", "")
    path = "services/devices/src/outpost_devices/app/handlers.py"
    write(tmp_path, path, "import outpost_billing\n")
    assert len(messages(tmp_path)) == 1


def test_unparsable_files_are_reported(tmp_path: Path) -> None:
    path = "libs/kit/src/outpost_kit/broken.py"
    write(tmp_path, path, "def (:\n")
    found = messages(tmp_path)
    assert len(found) == 1
    assert found[0].startswith(f"{path}:1: cannot parse")


@pytest.mark.parametrize(
    "statement",
    ["import outpost_kit", "from outpost_contracts import devices", "import outpost_gateway"],
)
def test_the_client_imports_no_other_outpost_package(tmp_path: Path, statement: str) -> None:
    write(tmp_path, "libs/client/src/outpost_client/api.py", f"import httpx\n{statement}\n")
    write(tmp_path, "libs/client/src/outpost_client/cli/app.py", "from outpost_client import api\n")
    [message] = messages(tmp_path)
    assert message.startswith("libs/client/src/outpost_client/api.py:2: outpost_client imports")


@pytest.mark.parametrize(
    "path",
    [
        "services/readings/src/outpost_readings/bootstrap.py",
        "services/gateway/src/outpost_gateway/entrypoints/app.py",
        "libs/kit/src/outpost_kit/deploy.py",
        "libs/contracts/src/outpost_contracts/streams.py",
    ],
)
def test_what_the_images_install_imports_no_dev_tools(tmp_path: Path, path: str) -> None:
    source = "import os\n\ndef f():\n    from outpost_devkit.dev.stack import DevStack\n"
    write(tmp_path, path, source)
    [message] = messages(tmp_path)
    own = path.split("/")[3]
    assert message == (
        f"{path}:4: {own} imports outpost_devkit.dev.stack: the images do not install "
        "outpost_devkit (development tools); only tests, tools and the dev stack may import it"
    )


def test_the_dev_tools_may_import_the_runtime_kit(tmp_path: Path) -> None:
    write(
        tmp_path,
        "libs/devkit/src/outpost_devkit/dev/stack.py",
        "from outpost_devkit.infra import NatsServer\n"
        "from outpost_kit.material import ALL_SERVICES\n",
    )
    write(tmp_path, "libs/kit/src/outpost_kit/material.py", "import json\n")
    assert messages(tmp_path) == []
