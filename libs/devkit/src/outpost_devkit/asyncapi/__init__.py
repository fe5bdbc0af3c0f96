"""Validation of an AsyncAPI 3.0 document against the official AsyncAPI 3.0.0 JSON Schema,
vendored beside this module (``SOURCE.md``: where it comes from, its Apache-2.0 licence).

The schema checks the document's structure; it does not follow the document's own ``$ref``s,
so ``unresolved_refs`` checks that each one points at something that exists.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_FILE = "asyncapi-3.0.0.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema (draft-07, every definition embedded)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def errors(document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks the AsyncAPI 3.0.0 schema (empty when valid), each as
    ``path: message``."""
    validator = jsonschema.Draft7Validator(schema())
    found = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in found]


def _pointer(document: Any, ref: str) -> bool:
    node = document
    for raw in ref.removeprefix("#/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False
    return True


def unresolved_refs(document: dict[str, Any]) -> list[str]:
    """The local ``$ref``s of ``document`` that point at nothing, and any non-local one."""
    bad: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and (not ref.startswith("#/") or not _pointer(document, ref)):
                bad.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return bad


def channel_of(document: dict[str, Any], subject: str) -> str | None:
    """The id of the channel whose address names ``subject`` (each ``{parameter}`` of the
    address standing for one subject token), or None."""
    for channel_id, channel in document.get("channels", {}).items():
        pattern = re.sub(r"\\\{[^.]+?\\\}", r"[^.]+", re.escape(channel["address"]))
        if re.fullmatch(pattern, subject):
            return str(channel_id)
    return None


def payload_errors(document: dict[str, Any], message_id: str, payload: Any) -> list[str]:
    """Every way ``payload`` breaks the payload schema of ``components.messages[message_id]``
    (its ``$ref``s resolved in ``document``)."""
    root = {**document, "$ref": f"#/components/messages/{message_id}/payload"}
    validator = jsonschema.Draft7Validator(root)
    found = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in found]
