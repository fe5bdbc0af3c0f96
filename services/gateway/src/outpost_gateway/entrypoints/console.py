"""The web console (decision 99): its page and assets at ``/`` and ``/console/…``, and the
session routes that keep its refresh token in an HttpOnly cookie.

The console is plain ES modules calling the public API with the session's access token,
which the page keeps in memory only; ``/console/session/login`` and ``/refresh`` answer the
access token in the body and the refresh token as a cookie script cannot read
(``domain/console.py``). The assets are the files of the package's ``console/`` directory,
read once; a name outside that set is 404.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.base import Contract
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import LOGIN, LOGOUT, REFRESH, Login, Logout, Refresh, TokenIssued
from outpost_gateway.domain import console
from outpost_gateway.domain.public_throttle import PublicRoute
from outpost_gateway.entrypoints.public import call_public
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "console"
INDEX = "index.html"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file under ``console/`` by its path relative to it, read once."""
    found: dict[str, Asset] = {}
    for path in sorted(ASSETS_DIR.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.relative_to(ASSETS_DIR).as_posix()
        body = path.read_bytes()
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if media.startswith("text/") or media in ("application/javascript", "text/javascript"):
            media += "; charset=utf-8"
        if name.endswith((".js", ".mjs")):
            media = "text/javascript; charset=utf-8"
        found[name] = Asset(body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def _serve(request: Req, name: str) -> Response[bytes]:
    asset = assets().get(name)
    if asset is None:
        raise OutpostError("no such console file", type=ErrorType.NOT_FOUND)
    headers = {**console.PAGE_HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, headers={**headers, "Content-Type": asset.media_type})


@get("/", include_in_schema=False)
async def console_page(request: Req) -> Response[bytes]:
    return _serve(request, INDEX)


@get("/console/{path:path}", include_in_schema=False)
async def console_asset(request: Req, path: FromPath[Path]) -> Response[bytes]:
    return _serve(request, str(path).lstrip("/"))


class ConsoleToken(Contract, kw_only=True, frozen=True):
    """The access token for the page's memory; the refresh token went into the cookie."""

    access_token: str
    token_type: str
    expires_in: int


def _secure(request: Req) -> bool:
    return console.cookie_is_secure(request.scope.get("scheme", "http"), _host(request))


def _host(request: Req) -> str:
    return request.headers.get("host", "")


def _check_csrf(request: Req) -> None:
    refusal = console.csrf_refusal(request.headers, _host(request))
    if refusal is not None:
        raise OutpostError(refusal, type=ErrorType.ACCESS_DENIED)


def _issued(request: Req, issued: TokenIssued) -> Response[ConsoleToken]:
    body = ConsoleToken(
        access_token=issued.access_token,
        token_type=issued.token_type,
        expires_in=issued.expires_in,
    )
    cookie = console.refresh_cookie(issued.refresh_token, secure=_secure(request))
    return Response(body, headers={"Set-Cookie": cookie, "Cache-Control": "no-store"})


@post("/console/session/login", include_in_schema=False, status_code=200)
async def console_login(request: Req, data: JSONBody[Login]) -> Response[ConsoleToken]:
    _check_csrf(request)
    issued = await call_public(request, PublicRoute.LOGIN, data.email, LOGIN, data)
    return _issued(request, issued)


@post("/console/session/refresh", include_in_schema=False, status_code=200)
async def console_refresh(request: Req) -> Response[ConsoleToken]:
    _check_csrf(request)
    token = request.cookies.get(console.REFRESH_COOKIE, "")
    if not token:
        raise OutpostError("no console session: sign in", type=ErrorType.INVALID_TOKEN)
    issued = await call_public(
        request, PublicRoute.REFRESH, token, REFRESH, Refresh(refresh_token=token)
    )
    return _issued(request, issued)


@post("/console/session/logout", include_in_schema=False, status_code=204)
async def console_logout(request: Req, ctx: Ctx, backend: BackendDep) -> Response[None]:
    """Ends the session (its refresh token and, within seconds, its access tokens) and
    clears the cookie. Authenticated by the access token, as ``/api/v1/auth/logout``."""
    await backend.call(LOGOUT, ctx, Logout())
    return Response(
        None,
        status_code=204,
        headers={"Set-Cookie": console.cleared_cookie(secure=_secure(request))},
    )


ROUTES = [console_page, console_asset, console_login, console_refresh, console_logout]
