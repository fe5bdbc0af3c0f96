"""API version 0, translated to and from v1 (its successor).

v0's differences (ADR 0041, "v0's changelog"):

1. A device's type is ``type``; v1 calls it ``deviceType``. Applies to request and response
   bodies and to query parameters (field filters ``type``, ``type__eq``…, and the name
   ``type`` in ``$filter``, ``$select`` and ``$orderby``).
2. A device's tags are one object ``{"site": "north"}``; v1 has a list
   ``[{"key": "site", "value": "north"}]`` (the order of the object's keys is kept).
3. Lists say ``has_more`` (snake case); v1 says ``hasMore``.

Everything else is v1's. Each function takes the *v1* path template-free path (the layer
has already rewritten ``/api/v0`` to ``/api/v1``) and translates one way; a later version is
one more module like this one.
"""

from __future__ import annotations

import re
from typing import Any

VERSION = "v0"

_DEVICES = re.compile(
    r"^/api/v1/devices(?:/by-key/.+|/(?!registration|provision|by-key)[^/]+|\(.*\))?/?$"
)
_FILTER_FIELD = re.compile(r"^type(__[a-z]+)?$")
_STRING = re.compile(r"('(?:[^']|'')*')")
_WORD_OLD = re.compile(r"(?<![\w/.$])type(?![\w(])")


def _is_devices(path: str) -> bool:
    return _DEVICES.fullmatch(path) is not None


# --- requests: v0 → v1 ----------------------------------------------------------------------


def request_body(method: str, path: str, body: Any) -> Any:
    if method in ("POST", "PUT", "PATCH") and _is_devices(path) and isinstance(body, dict):
        return _device_to_v1(body)
    return body


def _device_to_v1(device: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in device.items():
        if name == "type":
            out["deviceType"] = value
        elif name == "tags" and isinstance(value, dict):
            out["tags"] = [{"key": k, "value": v} for k, v in value.items()]
        else:
            out[name] = value
    return out


def query(method: str, path: str, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not _is_devices(path):
        return items
    out: list[tuple[str, str]] = []
    for name, value in items:
        m = _FILTER_FIELD.fullmatch(name)
        if m is not None:
            out.append((f"deviceType{m.group(1) or ''}", value))
        elif name in ("$filter", "$select", "$orderby"):
            out.append((name, _rename_outside_strings(value)))
        else:
            out.append((name, value))
    return out


def _rename_outside_strings(expression: str) -> str:
    """``type`` → ``deviceType`` where it is a name, not inside a quoted literal."""
    parts = _STRING.split(expression)
    return "".join(
        part if i % 2 else _WORD_OLD.sub("deviceType", part) for i, part in enumerate(parts)
    )


# --- responses: v1 → v0 ---------------------------------------------------------------------


def response_body(method: str, path: str, status: int, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    if body.get("object") == "list":
        body = {("has_more" if k == "hasMore" else k): v for k, v in body.items()}
        if _is_devices(path) and isinstance(body.get("data"), list):
            body["data"] = [_device_to_v0(d) for d in body["data"]]
        return body
    if _is_devices(path):
        return _device_to_v0(body)
    return body


def _device_to_v0(device: Any) -> Any:
    if not isinstance(device, dict):
        return device
    out: dict[str, Any] = {}
    for name, value in device.items():
        if name == "deviceType":
            out["type"] = value
        elif name == "tags" and isinstance(value, list):
            out["tags"] = {
                t["key"]: t.get("value", "") for t in value if isinstance(t, dict) and "key" in t
            }
        else:
            out[name] = value
    return out
