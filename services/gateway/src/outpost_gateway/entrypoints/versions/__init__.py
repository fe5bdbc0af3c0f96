"""Older API versions, served by translation (docs/api.md "Versioning"; ADR 0041).

``/api/v1`` is current. A request to an older version ``/api/vN/...`` is rewritten to
``/api/v1/...``: its query parameters and JSON body pass through the translators from vN up to
v1, the request is served as a v1 request (the same routes, policies, rate limits and
Idempotency-Key records), and a successful JSON response passes back down from v1 to vN.
Error responses pass through unchanged (the error model is the same in every version; field
names in them are v1's). The OpenAPI document describes v1 only.

A version is one module with ``VERSION``, ``request_body``, ``query`` and ``response_body``
(see ``v0``), translating between it and the next newer version; ``TRANSLATORS`` lists them
oldest first. Adding a version means adding its module there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from litestar.types import Message, Receive, Scope, Send

from outpost_gateway.entrypoints.versions import v0

CURRENT = "v1"
TRANSLATORS: Sequence[ModuleType] = (v0,)
_VERSIONED = re.compile(r"^/api/(v\d+)(/.*|\(.*)?$", re.DOTALL)


def chain_for(version: str) -> list[ModuleType] | None:
    """The translators from ``version`` up to the current one; None when not an older one."""
    names = [t.VERSION for t in TRANSLATORS]
    if version not in names:
        return None
    return list(TRANSLATORS[names.index(version) :])


def translate_query(chain: Sequence[ModuleType], method: str, path: str, query: bytes) -> bytes:
    if not query:
        return query
    items = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    for t in chain:
        items = t.query(method, path, items)
    return urlencode(items, quote_via=quote, safe="$,()'*:").encode("latin-1")


def translate_request(chain: Sequence[ModuleType], method: str, path: str, body: Any) -> Any:
    for t in chain:
        body = t.request_body(method, path, body)
    return body


def translate_response(
    chain: Sequence[ModuleType], method: str, path: str, status: int, body: Any
) -> Any:
    for t in reversed(chain):
        body = t.response_body(method, path, status, body)
    return body


def _is_json(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for k, v in headers:
        if k.lower() == b"content-type":
            media = v.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


async def translated(
    scope: Scope, receive: Receive, send: Send, *, max_body_bytes: int
) -> tuple[Receive, Send] | None:
    """For ``/api/vN/...`` (N older than current): rewrite ``scope`` in place to the
    ``/api/v1/...`` request (in place, so that the edge sees what the route records: its
    template, the rate-limit decision) and return the ``receive`` and ``send`` that
    translate its body and response. None for any other request."""
    m = _VERSIONED.match(scope["path"])
    chain = chain_for(m.group(1)) if m is not None else None
    if m is None or chain is None:
        return None
    path = f"/api/{CURRENT}{m.group(2) or ''}"
    method = str(scope.get("method", "GET")).upper()
    headers = list(scope.get("headers", []))
    if method in ("POST", "PUT", "PATCH") and _is_json(headers):
        receive, headers = await _translated_body(
            chain, method, path, receive, headers, max_body_bytes
        )
    scope["path"] = path
    scope["raw_path"] = quote(path, safe="/:@!$&'()*+,;=").encode()
    scope["query_string"] = translate_query(chain, method, path, scope.get("query_string", b""))
    scope["headers"] = headers
    return receive, _translating_send(send, chain, method, path)


async def _translated_body(
    chain: Sequence[ModuleType],
    method: str,
    path: str,
    receive: Receive,
    headers: list[tuple[bytes, bytes]],
    max_body_bytes: int,
) -> tuple[Receive, list[tuple[bytes, bytes]]]:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # disconnected: let the app see it
            return _replay([b"".join(chunks)], message, receive), headers
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if size > max_body_bytes:  # too large: untranslated, the app answers 413
            return _replay([b"".join(chunks)], None, receive, more=more), headers
    raw = b"".join(chunks)
    try:
        body = json.loads(raw) if raw else None
        if body is not None:
            raw = json.dumps(
                translate_request(chain, method, path, body), separators=(",", ":")
            ).encode()
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than the decoder follows: untranslated, the app answers
        # it as v1 would (400; decision 77).
        return _replay([raw], None, receive), headers
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(raw)).encode()))
    return _replay([raw], None, receive), headers


def _replay(chunks: list[bytes], then: Any, receive: Receive, *, more: bool = False) -> Receive:
    """A ``receive`` that hands out the buffered body first, then the original stream."""
    pending: list[Any] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}]
    if then is not None:
        pending.append(then)

    async def replay() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay  # type: ignore[return-value]


def _translating_send(send: Send, chain: Sequence[ModuleType], method: str, path: str) -> Send:
    start: dict[str, Any] | None = None
    chunks: list[bytes] = []

    async def send_translated(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            status = int(message["status"])
            if status < 400 and _is_json(list(message.get("headers", []))):
                start = dict(message)  # hold it: the body's length changes
                return
            await send(message)
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(bytes(message.get("body", b"")))
        if message.get("more_body", False):
            return
        status = int(start["status"])
        raw = b"".join(chunks)
        try:
            translated = translate_response(chain, method, path, status, json.loads(raw))
            raw = json.dumps(translated, separators=(",", ":")).encode()
        except (ValueError, RecursionError):  # sent as v1 wrote it
            pass
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await send({**start, "headers": headers})  # type: ignore[arg-type]
        await send({"type": "http.response.body", "body": raw, "more_body": False})

    return send_translated  # type: ignore[return-value]
