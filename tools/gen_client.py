#!/usr/bin/env python3
"""Generate the Python client's models and operations from the gateway's OpenAPI document.

The document comes from a gateway built in this process (the default: no platform needed,
every route the gateway mounts) or from a running one (``--url http://…``, which fetches
``/api/v3/api-docs``). The output, ``libs/client/src/outpost_client/_generated.py``, holds:

- every component schema that is an object as a ``msgspec.Struct`` (snake_case attributes,
  the wire's camelCase as the field name; unknown response fields are ignored, defaults are
  omitted when encoding); every enum schema as a ``Literal``; ``ListOf_…`` schemas as the
  client's generic ``Page[T]``. In a PATCH body (a schema used only as the body of PATCH
  operations), a field that is optional, nullable and has no default in the document is
  ``T | msgspec.UnsetType | None = msgspec.UNSET``: left out while UNSET (unchanged), sent
  as ``null`` when None (cleared), the difference docs/api.md's PATCH makes (decision 73);
- ``OPERATIONS``: every operation (method, path, path parameters, query parameters, body
  and response types), and ``SyncOperations`` / ``AsyncOperations`` with one typed method
  per operation, named after the gateway's handler (``list_devices``, ``get_device``).

The output depends only on the document (sorted, no timestamps), so regenerating from the
same document gives the same bytes; ``tests/e2e/test_cli_client_drift.py`` regenerates from
a running platform's document and compares with the committed file.

Usage: ``uv run python tools/gen_client.py [--url URL] [--check] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "libs" / "client" / "src" / "outpost_client" / "_generated.py"
METHODS = ("get", "post", "put", "patch", "delete")
LIST_PREFIX = "ListOf_"
REF = "#/components/schemas/"
# Query parameters with Python names of their own (the rest go through ``params=``).
TYPED_QUERY = {
    "limit": ("limit", "int | None"),
    "after": ("after", "str | None"),
    "order": ("order", 'Literal["ASC", "DESC"] | None'),
    "include": ("include", "str | None"),
    "deviceId": ("device_id", "UUID | str | None"),
    "groupId": ("group_id", "UUID | str | None"),
    "siteId": ("site_id", "UUID | str | None"),
    "sensor": ("sensor", "str | None"),
    "from": ("from_", "datetime | str | None"),
    "to": ("to", "datetime | str | None"),
    "interval": ("interval", "str | None"),
    "fn": ("fn", "str | None"),
    "timezone": ("timezone", "str | None"),
    "$filter": ("filter", "str | None"),
    "$select": ("select", "str | None"),
}
TYPED_HEADERS = {
    "If-Match": ("if_match", "str | None"),
    "X-Expected-Count": ("expected_count", "int | None"),
}


# -- the document -------------------------------------------------------------------------


def document_from_app() -> dict[str, Any]:
    """The document of a gateway app built here: its routes need no backend to be
    described (the platform's services are not contacted)."""
    from typing import cast

    from litestar.testing import TestClient

    from outpost_gateway.bootstrap import create_app
    from outpost_gateway.domain.credentials import CredentialCache
    from outpost_gateway.settings import GatewaySettings

    app = create_app(GatewaySettings(), cast(Any, None), CredentialCache())
    with TestClient(app) as client:
        resp = client.get("/api/v3/api-docs")
        resp.raise_for_status()
        return dict(resp.json())


def document_from_url(url: str) -> dict[str, Any]:
    import httpx

    resp = httpx.get(url.rstrip("/") + "/api/v3/api-docs", timeout=30)
    resp.raise_for_status()
    return dict(resp.json())


# -- names --------------------------------------------------------------------------------


def snake(name: str) -> str:
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    out = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", out)
    out = re.sub(r"[^0-9a-zA-Z_]", "_", out).lower()
    return out + "_" if keyword.iskeyword(out) else out


def camel_words(segment: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[-_{}]", segment) if w)


def method_name(path: str, operation_id: str) -> str:
    """The handler's name: the operationId without the path-derived prefix Litestar puts
    in front of it (``ApiV1DevicesIdGetDevice`` on ``/api/v1/devices/{id}`` → get_device)."""
    prefix = ""
    for segment in (s for s in path.split("/") if s):
        longer = prefix + camel_words(segment)
        if not operation_id.startswith(longer) or longer == operation_id:
            break
        prefix = longer
    return snake(operation_id[len(prefix) :])


def ref_name(ref: str) -> str:
    return ref[len(REF) :]


def model_name(name: str) -> str:
    if name.startswith(LIST_PREFIX):
        inner = name[len(LIST_PREFIX) :].rstrip("_").rsplit(".", 1)[-1]
        return f"Page[{inner}]"
    return name


# -- types --------------------------------------------------------------------------------


def annotation(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    if not schema:
        return "Any"
    if "$ref" in schema:
        return model_name(ref_name(schema["$ref"]))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            parts: list[str] = []
            for member in schema[key]:
                rendered = annotation(member, schemas)
                if rendered not in parts:
                    parts.append(rendered)
            if "Any" in parts:
                return "Any"
            nullable = "None" in parts
            parts = [p for p in parts if p != "None"]
            joined = " | ".join(parts) if parts else "None"
            return f"{joined} | None" if nullable and parts else joined
    if "const" in schema:
        return f"Literal[{json.dumps(schema['const'])}]"
    if "enum" in schema:
        return "Literal[" + ", ".join(json.dumps(v) for v in schema["enum"]) + "]"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(annotation({**schema, "type": k}, schemas) for k in kind)
    if kind == "string":
        fmt = schema.get("format")
        return {"date-time": "datetime", "uuid": "UUID"}.get(fmt or "", "str")
    if kind == "integer":
        return "int"
    if kind == "number":
        return "float"
    if kind == "boolean":
        return "bool"
    if kind == "null":
        return "None"
    if kind == "array":
        return f"list[{annotation(schema.get('items', {}), schemas)}]"
    if kind == "object":
        return "dict[str, Any]"
    return "Any"


def is_enum(schema: dict[str, Any]) -> bool:
    return "enum" in schema and schema.get("type") in ("string", "integer", None)


# Names the annotations use: a field of that name would shadow them in its class body.
ANNOTATION_NAMES = frozenset(
    {"list", "dict", "str", "int", "float", "bool", "datetime", "UUID", "Any", "Literal", "Page"}
)


def clears(schema: dict[str, Any], required: bool, schemas: dict[str, Any]) -> bool:
    """A PATCH body's field whose ``null`` means something else than its absence: optional,
    nullable, and with no default in the document (a field the server defaults to null,
    such as ``SetRateLimits.single``, is the same absent or null)."""
    return (
        not required
        and "default" not in schema
        and "None" in annotation(schema, schemas).split(" | ")
    )


def field_line(
    wire: str,
    schema: dict[str, Any],
    required: bool,
    schemas: dict[str, Any],
    patch: bool = False,
) -> str:
    attr = snake(wire)
    if attr in ANNOTATION_NAMES or attr in schemas:
        attr += "_"
    kind = annotation(schema, schemas)
    options: list[str] = []
    if attr != wire:
        options.append(f"name={wire!r}")
    if patch and clears(schema, required, schemas):
        parts = [p for p in kind.split(" | ") if p != "None"]
        kind = " | ".join([*parts, "msgspec.UnsetType", "None"])
        options.append("default=msgspec.UNSET")
    elif not required:
        default = schema.get("default")
        if isinstance(default, list):
            options.append("default_factory=list")
        elif isinstance(default, dict):
            options.append("default_factory=dict")
        else:
            if default is None and "None" not in kind.split(" | ") and kind != "Any":
                kind = f"{kind} | None"
            options.append(f"default={default!r}")
    if not options:
        return f"    {attr}: {kind}"
    if options == [o for o in options if o.startswith("default=")]:
        return f"    {attr}: {kind} = {options[0][len('default=') :]}"
    return f"    {attr}: {kind} = msgspec.field({', '.join(options)})"


PATCH_NOTE = (
    "A field typed ``… | UnsetType | None`` is left out while UNSET (unchanged) and sent as"
    " null when None (cleared); any other field is left out when None."
)


def struct_source(
    name: str, schema: dict[str, Any], schemas: dict[str, Any], patch: bool = False
) -> str:
    required = set(schema.get("required", []))
    props = schema.get("properties", {})
    lines = [f"class {name}(msgspec.Struct, kw_only=True, omit_defaults=True):"]
    paragraph = (schema.get("description") or "").strip().split("\n\n")[0]
    doc = " ".join(paragraph.split()) or f"``{name}`` of the API."
    if patch and any(clears(props[w], w in required, schemas) for w in props):
        doc = f"{doc} {PATCH_NOTE}"
    lines.append(f'    """{doc.replace(chr(92), "").replace(chr(34), chr(39))}"""')
    lines.append("")
    for wire in sorted(props, key=lambda w: (w not in required, w)):
        lines.append(field_line(wire, props[wire], wire in required, schemas, patch))
    return "\n".join(lines)


def refs(node: Any) -> list[str]:
    """Every schema name a part of the document refers to, as often as it does."""
    if isinstance(node, dict):
        found = [ref_name(node["$ref"])] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def patch_bodies(doc: dict[str, Any]) -> set[str]:
    """The schemas used only as the JSON body of PATCH operations, nowhere else in the
    document (a response model keeps None for an absent field)."""
    bodies: list[str] = []
    for item in doc.get("paths", {}).values():
        op = item.get("patch")
        if isinstance(op, dict):
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema") or {}
            if isinstance(schema.get("$ref"), str):
                bodies.append(ref_name(schema["$ref"]))
    everywhere = refs(doc)
    return {name for name in bodies if everywhere.count(name) == bodies.count(name)}


# -- operations ---------------------------------------------------------------------------


def response_type(operation: dict[str, Any]) -> tuple[str, str]:
    for status in ("200", "201", "202", "204"):
        answer = operation.get("responses", {}).get(status)
        if answer is None:
            continue
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        return status, annotation(schema, {}) if schema else "None"
    return "200", "Any"


def body_type(operation: dict[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        return "dict[str, Any]" if content else None
    return annotation(schema, {})


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(doc.get("paths", {})):
        item = doc["paths"][path]
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = op.get("parameters", [])
            status, returns = response_type(op)
            found.append(
                {
                    "name": method_name(path, op["operationId"]),
                    "method": method.upper(),
                    "path": path,
                    "path_params": [p["name"] for p in params if p.get("in") == "path"],
                    "query": sorted(p["name"] for p in params if p.get("in") == "query"),
                    "headers": sorted(p["name"] for p in params if p.get("in") == "header"),
                    "body": body_type(op),
                    "status": int(status),
                    "returns": returns,
                    "summary": (op.get("summary") or op.get("description") or "").strip(),
                }
            )
    names = [o["name"] for o in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"operation names are not unique: {duplicates}")
    return sorted(found, key=lambda o: o["name"])


def method_source(op: dict[str, Any], asynchronous: bool) -> str:
    args = ["self"]
    args += [f"{snake(p)}: UUID | str" for p in op["path_params"]]
    kwargs: list[str] = []
    if op["body"] is not None:
        optional = "None" in op["body"].split(" | ")
        kind = op["body"]
        if kind.startswith("dict"):
            kwargs.append(f"body: {kind} | None = None")
        else:
            base = " | ".join(p for p in kind.split(" | ") if p != "None")
            default = " = None" if optional else ""
            none = " | None" if optional else ""
            kwargs.append(f"body: {base} | Mapping[str, Any]{none}{default}")
    query_map: list[str] = []
    for wire in op["query"]:
        if wire in TYPED_QUERY:
            attr, kind = TYPED_QUERY[wire]
            kwargs.append(f"{attr}: {kind} = None")
            query_map.append(f"{wire!r}: {attr}")
    header_map: list[str] = []
    for wire in op["headers"]:
        if wire in TYPED_HEADERS:
            attr, kind = TYPED_HEADERS[wire]
            kwargs.append(f"{attr}: {kind} = None")
            header_map.append(f"{wire!r}: {attr}")
    kwargs.append("params: Mapping[str, Any] | None = None")
    kwargs.append("headers: Mapping[str, str] | None = None")
    signature = ", ".join([*args, "*", *kwargs])
    returns = op["returns"]
    head = "async def" if asynchronous else "def"
    call = "await self._call" if asynchronous else "self._call"
    path_args = "(" + "".join(f"{snake(p)}, " for p in op["path_params"]) + ")"
    summary = f"``{op['method']} {op['path']}``"
    return "\n".join(
        [
            f"    {head} {op['name']}({signature}) -> {returns}:",
            f'        """{summary}"""',
            f"        return {call}(  # type: ignore[no-any-return]",
            f"            OPERATIONS[{op['name']!r}],",
            f"            {path_args},",
            f"            {'body' if op['body'] is not None else 'None'},",
            f"            {{{', '.join(query_map)}}},",
            f"            {{{', '.join(header_map)}}},",
            "            params,",
            "            headers,",
            f"            {returns if returns != 'None' else 'None'},",
            "        )",
        ]
    )


# -- the module ---------------------------------------------------------------------------

HEADER = '''"""Generated by ``tools/gen_client.py`` from the gateway's ``/api/v3/api-docs``: do not
edit. Regenerate with ``uv run python tools/gen_client.py`` (decision 68)."""

# ruff: noqa: E501, RUF100
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from outpost_client.base import AsyncBase, Operation, Page, SyncBase
'''


def render(doc: dict[str, Any]) -> str:
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    out = [HEADER]
    out.append(f"API_VERSION = {doc.get('info', {}).get('version', '')!r}\n")
    modeled: list[str] = []
    aliases: list[str] = []
    patches = patch_bodies(doc)
    for name in sorted(schemas):
        schema = schemas[name]
        if name.startswith(LIST_PREFIX) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        if is_enum(schema):
            out.append(f"{name} = {annotation(schema, schemas)}\n")
            aliases.append(name)
        elif schema.get("type") == "object" or "properties" in schema:
            out.append(struct_source(name, schema, schemas, name in patches) + "\n\n")
            modeled.append(name)
    out.append("# The object schemas modeled above, by name: their wire field names.")
    out.append("SCHEMAS: dict[str, tuple[str, ...]] = {")
    for name in modeled:
        fields = ", ".join(repr(f) for f in sorted(schemas[name].get("properties", {})))
        out.append(f"    {name!r}: ({fields}{',' if fields else ''}),")
    out.append("}\n")
    ops = operations(doc)
    out.append("OPERATIONS: dict[str, Operation] = {")
    for op in ops:
        out.append(
            f"    {op['name']!r}: Operation({op['name']!r}, {op['method']!r}, {op['path']!r},"
            f" {tuple(op['path_params'])!r}, {tuple(op['query'])!r}, {op['status']}),"
        )
    out.append("}\n\n")
    for asynchronous, cls, base in (
        (False, "SyncOperations", "SyncBase"),
        (True, "AsyncOperations", "AsyncBase"),
    ):
        out.append(f"class {cls}({base}):")
        out.append(f'    """One {"awaitable " if asynchronous else ""}method per operation."""\n')
        out.append("\n\n".join(method_source(op, asynchronous) for op in ops))
        out.append("\n\n")
    # Every model and enum, so that ``from outpost_client.models import DevicePatch`` works.
    names = {*modeled, *aliases, "OPERATIONS", "SCHEMAS", "AsyncOperations", "SyncOperations"}
    out.append("__all__ = [")
    exported = sorted({*names, "Page"}, key=lambda n: (not n.isupper(), n))  # ruff's order
    out.extend(f"    {name!r}," for name in exported)
    out.append("]")
    return "\n".join(out).rstrip() + "\n"


def format_source(source: str) -> str:
    """ruff's formatting, so the committed file passes ``ruff format --check``."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(OUT), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff format failed: {done.stderr}")
    return done.stdout


def generate(doc: dict[str, Any]) -> str:
    return format_source(render(doc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running gateway (default: one built in-process)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs")
    args = parser.parse_args(argv)
    doc = document_from_url(args.url) if args.url else document_from_app()
    source = generate(doc)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != source:
            print(f"{args.out} is out of date: run tools/gen_client.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(source)
    print(f"wrote {args.out} ({len(source.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
