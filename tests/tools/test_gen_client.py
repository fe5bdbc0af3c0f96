"""tools/gen_client.py: the committed client is what the gateway's document gives (checked
here offline, from a gateway built in-process; the e2e drift test checks the running
platform's), the output is deterministic, and names and types come out as designed."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

_TOOL = Path(__file__).resolve().parents[2] / "tools" / "gen_client.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_client", _TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(gen.document_from_app())


def test_the_committed_client_is_the_generated_one(doc: dict[str, Any]) -> None:
    assert gen.generate(doc) == gen.OUT.read_text(), "run: uv run python tools/gen_client.py"


def test_generation_does_not_depend_on_the_documents_order(doc: dict[str, Any]) -> None:
    shuffled = copy.deepcopy(doc)
    shuffled["paths"] = dict(reversed(list(doc["paths"].items())))
    shuffled["components"]["schemas"] = dict(reversed(list(doc["components"]["schemas"].items())))
    assert gen.render(shuffled) == gen.render(doc)


@pytest.mark.parametrize(
    ("path", "operation_id", "name"),
    [
        ("/api/v1/devices/{id}", "ApiV1DevicesIdGetDevice", "get_device"),
        ("/api/v1/devices/by-key/{key}", "ApiV1DevicesByKeyGetDeviceByKey", "get_device_by_key"),
        (
            "/api/v1/devices/{id}/commands/{command_id}",
            "ApiV1DevicesIdCommandsCommandIdGetCommand",
            "get_command",
        ),
        ("/api/v1/alert-rules", "ApiV1AlertRulesListAlertRules", "list_alert_rules"),
        ("/auth/oauth/token", "AuthOauthTokenToken", "token"),
    ],
)
def test_method_names_are_the_handlers(path: str, operation_id: str, name: str) -> None:
    assert gen.method_name(path, operation_id) == name


def test_types_of_schemas() -> None:
    ann = gen.annotation
    assert ann({"oneOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}, {}) == (
        "UUID | None"
    )
    assert ann({"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}, {}) == "list[Tag]"
    assert ann(
        {"$ref": "#/components/schemas/ListOf_outpost_contracts.devices.DeviceView_"}, {}
    ) == ("Page[DeviceView]")
    assert ann({"enum": ["ASC", "DESC"], "type": "string"}, {}) == 'Literal["ASC", "DESC"]'
    assert ann({"type": "string", "format": "date-time"}, {}) == "datetime"
    assert ann({}, {}) == "Any"


def test_a_field_that_would_shadow_a_type_is_renamed_on_the_python_side() -> None:
    line = gen.field_line("list", {"type": "integer"}, True, {})
    assert line == "    list_: int = msgspec.field(name='list')"
    assert gen.field_line("deviceId", {"type": "string"}, False, {}) == (
        "    device_id: str | None = msgspec.field(name='deviceId', default=None)"
    )
