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


def test_a_patch_bodys_nullable_field_without_default_is_unset_by_default() -> None:
    """Decision 73: in a PATCH body, absent (UNSET, left out) and None (sent as null) differ
    where the field is nullable and the document gives it no default."""
    nullable = {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}
    assert gen.field_line("groupId", nullable, False, {}, patch=True) == (
        "    group_id: UUID | msgspec.UnsetType | None = msgspec.field("
        "name='groupId', default=msgspec.UNSET)"
    )
    assert gen.field_line("clear", {"anyOf": [{"$ref": "#/components/schemas/Condition"},
                                              {"type": "null"}]}, False, {}, patch=True) == (
        "    clear: Condition | msgspec.UnsetType | None = msgspec.UNSET"
    )  # fmt: skip
    # not nullable: None is left out, as in every other body
    assert gen.field_line("name", {"type": "string"}, False, {}, patch=True) == (
        "    name: str | None = None"
    )
    # null is the default: absent and null are the same
    assert gen.field_line("single", {**nullable, "default": None}, False, {}, patch=True) == (
        "    single: UUID | None = None"
    )
    # outside a PATCH body (a response, a POST body): None, as before
    assert gen.field_line("groupId", nullable, False, {}) == (
        "    group_id: UUID | None = msgspec.field(name='groupId', default=None)"
    )


def test_patch_bodies_are_the_schemas_only_patch_operations_send() -> None:
    ref = {"$ref": "#/components/schemas/"}
    body = {"content": {"application/json": {"schema": {"$ref": ref["$ref"] + "P"}}}}
    shared = {"content": {"application/json": {"schema": {"$ref": ref["$ref"] + "S"}}}}
    answer = {"200": shared}
    doc = {
        "paths": {
            "/a/{id}": {"patch": {"requestBody": body}},
            "/b/{id}": {"patch": {"requestBody": shared, "responses": answer}},
            "/c": {"post": {"requestBody": body}},
        }
    }
    # P is also a POST body, S also a response: neither is only a PATCH body
    assert gen.patch_bodies(doc) == set()
    del doc["paths"]["/c"]
    assert gen.patch_bodies(doc) == {"P"}


def test_the_committed_patch_models_leave_absent_out_and_send_null(doc: dict[str, Any]) -> None:
    import msgspec

    from outpost_client import _generated

    schemas = doc["components"]["schemas"]
    patches = gen.patch_bodies(doc)
    assert {"DevicePatch", "AlertRulePatch"} <= patches
    for name in patches:
        schema = schemas[name]
        required = set(schema.get("required", []))
        model = getattr(_generated, name)
        for field in msgspec.structs.fields(model):
            prop = schema["properties"][field.encode_name]
            clears = gen.clears(prop, field.encode_name in required, schemas)
            assert (field.default is msgspec.UNSET) == clears, (name, field.name)
            if clears:
                assert msgspec.json.encode(model()) == b"{}"
                assert msgspec.json.decode(msgspec.json.encode(model(**{field.name: None}))) == {
                    field.encode_name: None
                }
