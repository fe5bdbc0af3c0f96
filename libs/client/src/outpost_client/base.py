"""The client's core, under the generated operations: one request with the credential,
retries (``retry.py``), the error model raised as exceptions (``errors.py``), responses
decoded into the models, and pagination that follows ``after``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import httpx
import msgspec

from outpost_client import errors
from outpost_client.retry import RetryPolicy

T = TypeVar("T")
USER_AGENT = "outpost-client/0.1"


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a collection (docs/api.md, "Collections")."""

    data: list[T]
    has_more: bool = msgspec.field(name="hasMore")
    limit: int
    after: str | None = None
    order: Literal["ASC", "DESC"] = "ASC"
    object: Literal["list"] = "list"
    total_count: int | None = msgspec.field(name="totalCount", default=None)


@dataclass(frozen=True)
class Operation:
    """One operation of the OpenAPI document: what the client sends it."""

    name: str
    method: str
    path: str
    path_params: tuple[str, ...]
    query: tuple[str, ...]
    status: int

    def url(self, args: tuple[Any, ...]) -> str:
        path = self.path
        for name, value in zip(self.path_params, args, strict=True):
            path = path.replace("{" + name + "}", str(value))
        return path


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def query(typed: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {k: _wire(v) for k, v in typed.items() if v is not None}
    out.update({k: _wire(v) for k, v in (extra or {}).items() if v is not None})
    return out


def encode_body(body: Any) -> bytes | None:
    if body is None:
        return None
    return msgspec.json.encode(body)


def decode(resp: httpx.Response, kind: Any) -> Any:
    if kind is None or resp.status_code == 204 or not resp.content:
        return None
    return msgspec.json.decode(resp.content, type=kind)


def expired(resp: httpx.Response) -> bool:
    """A 401 ``invalid_token``: a session's access token that a refresh may renew."""
    if resp.status_code != 401:
        return False
    try:
        return bool(resp.json().get("type") == "invalid_token")
    except (ValueError, AttributeError):
        return False


def raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    raise errors.from_response(resp.status_code, body, dict(resp.headers))


class _Settings:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        organization: str | None,
        retry: RetryPolicy,
        idempotent_posts: bool,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.organization = organization
        self.retry = retry
        self.idempotent_posts = idempotent_posts

    def headers(self, method: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        if self.organization:
            out["X-Organization"] = self.organization
        # A POST retried after a 503 may have been applied the first time: the same
        # Idempotency-Key makes the retry return the first answer (docs/api.md, Single resources).
        if method == "POST" and self.idempotent_posts and self.token:
            out["Idempotency-Key"] = uuid.uuid4().hex
        out.update(extra or {})
        return out


class SyncBase:
    """A blocking client. ``token``: an API key (``sk_live_…``) or a session access token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        organization: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        idempotent_posts: bool = True,
        refresh: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = _Settings(
            base_url,
            token=token,
            organization=organization,
            retry=retry or RetryPolicy(),
            idempotent_posts=idempotent_posts,
        )
        self.http = httpx.Client(
            base_url=self.settings.base_url, timeout=timeout, transport=transport
        )
        self._sleep = sleep
        self._refresh = refresh

    def __enter__(self) -> SyncBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, retried on 429 and 503 as the policy says; an error answer raises."""
        sent_headers = self.settings.headers(method, headers)
        content = encode_body(json)
        if content is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            try:
                resp = self.http.request(
                    method, path, params=query({}, params), content=content, headers=sent_headers
                )
            except httpx.TransportError as exc:
                raise errors.TransportError(f"{method} {path}: {exc!r}") from exc
            if expired(resp) and self._refresh is not None and not refreshed:
                refreshed = True  # a session's access token expired: renew it, once
                token = self._refresh()
                if token:
                    self.settings.token = token
                    sent_headers["Authorization"] = f"Bearer {token}"
                    continue
            wait = self.settings.retry.delay(
                attempt, resp.status_code, resp.headers.get("retry-after")
            )
            if wait is None:
                raise_for(resp)
                return resp
            self._sleep(wait)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        return resp.json() if resp.content else None

    def _call(
        self,
        op: Operation,
        args: tuple[Any, ...],
        body: Any,
        typed: Mapping[str, Any],
        typed_headers: Mapping[str, Any],
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        kind: Any,
    ) -> Any:
        extra = {k: str(v) for k, v in typed_headers.items() if v is not None}
        extra.update(headers or {})
        resp = self.request(
            op.method, op.url(args), params=query(typed, params), json=body, headers=extra
        )
        return decode(resp, kind)

    def paginate(self, method: Callable[..., Page[T]], *args: Any, **kwargs: Any) -> Iterator[T]:
        """Every item of a collection, page after page (``after`` = the previous page's)."""
        while True:
            page = method(*args, **kwargs)
            yield from page.data
            if not page.has_more or not page.after:
                return
            kwargs["after"] = page.after

    def iterate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a collection as JSON (for ``$select``, which leaves fields out)."""
        wanted = dict(params or {})
        while True:
            page = self.json("GET", path, params=wanted)
            yield from page.get("data", [])
            if not page.get("hasMore") or not page.get("after"):
                return
            wanted["after"] = page["after"]


class AsyncBase:
    """The asyncio client: the same operations, awaited."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        organization: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        idempotent_posts: bool = True,
        refresh: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.settings = _Settings(
            base_url,
            token=token,
            organization=organization,
            retry=retry or RetryPolicy(),
            idempotent_posts=idempotent_posts,
        )
        self.http = httpx.AsyncClient(
            base_url=self.settings.base_url, timeout=timeout, transport=transport
        )
        self._sleep = sleep
        self._refresh = refresh

    async def __aenter__(self) -> AsyncBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent_headers = self.settings.headers(method, headers)
        content = encode_body(json)
        if content is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            try:
                resp = await self.http.request(
                    method, path, params=query({}, params), content=content, headers=sent_headers
                )
            except httpx.TransportError as exc:
                raise errors.TransportError(f"{method} {path}: {exc!r}") from exc
            if expired(resp) and self._refresh is not None and not refreshed:
                refreshed = True
                token = await self._refresh()
                if token:
                    self.settings.token = token
                    sent_headers["Authorization"] = f"Bearer {token}"
                    continue
            wait = self.settings.retry.delay(
                attempt, resp.status_code, resp.headers.get("retry-after")
            )
            if wait is None:
                raise_for(resp)
                return resp
            await self._sleep(wait)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.request(method, path, **kwargs)
        return resp.json() if resp.content else None

    async def _call(
        self,
        op: Operation,
        args: tuple[Any, ...],
        body: Any,
        typed: Mapping[str, Any],
        typed_headers: Mapping[str, Any],
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        kind: Any,
    ) -> Any:
        extra = {k: str(v) for k, v in typed_headers.items() if v is not None}
        extra.update(headers or {})
        resp = await self.request(
            op.method, op.url(args), params=query(typed, params), json=body, headers=extra
        )
        return decode(resp, kind)

    async def paginate(
        self, method: Callable[..., Awaitable[Page[T]]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[T]:
        while True:
            page = await method(*args, **kwargs)
            for item in page.data:
                yield item
            if not page.has_more or not page.after:
                return
            kwargs["after"] = page.after

    async def iterate(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[Any]:
        wanted = dict(params or {})
        while True:
            page = await self.json("GET", path, params=wanted)
            for item in page.get("data", []):
                yield item
            if not page.get("hasMore") or not page.get("after"):
                return
            wanted["after"] = page["after"]
