"""The client cannot drift from the API (decision 68): its models and operations are
generated from ``/api/v3/api-docs`` by ``tools/gen_client.py``; regenerating from the
running platform's document must give the committed module, and every operation (method +
path) and every modeled schema's fields must be the document's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import msgspec
import pytest

from outpost_client import _generated

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_client", ROOT / "tools" / "gen_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def doc(http: httpx.Client) -> dict[str, Any]:
    resp = http.get("/api/v3/api-docs")
    assert resp.status_code == 200
    return dict(resp.json())


def test_regenerating_from_the_live_document_gives_the_committed_client(
    doc: dict[str, Any],
) -> None:
    generated = _generator().generate(doc)
    committed = (ROOT / "libs/client/src/outpost_client/_generated.py").read_text()
    assert generated == committed, (
        "the client is out of date with the API: run `uv run python tools/gen_client.py`"
    )


def test_every_operation_of_the_document_is_a_client_method(doc: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    }
    client = {(op.method, op.path) for op in _generated.OPERATIONS.values()}
    assert client == documented
    for op in _generated.OPERATIONS.values():
        assert callable(getattr(_generated.SyncOperations, op.name))
        assert callable(getattr(_generated.AsyncOperations, op.name))


def test_every_modeled_schema_has_the_documents_fields(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert set(_generated.SCHEMAS) <= set(schemas)
    for name, fields in _generated.SCHEMAS.items():
        assert set(fields) == set(schemas[name].get("properties", {})), name
        model = getattr(_generated, name)
        wire = {f.encode_name for f in msgspec.structs.fields(model)}
        assert wire == set(fields), name
        required = {f.encode_name for f in msgspec.structs.fields(model) if f.required}
        assert required == set(schemas[name].get("required", [])), name
    objects = {
        n
        for n, s in schemas.items()
        if (s.get("type") == "object" or "properties" in s) and not n.startswith("ListOf_")
    }
    assert objects == set(_generated.SCHEMAS)
